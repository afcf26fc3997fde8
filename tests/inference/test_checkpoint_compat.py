"""Checkpoints written by an earlier layout of the package still predict: ``tests/fixtures/checkpoint_2026_12``
holds a small scratch-CNN checkpoint written before the modules moved into subpackages (its net config
names ``_target_`` paths of that time), six images and the probabilities it gave them then."""

import csv
from pathlib import Path

import numpy as np

from tests.conftest import run_in_process

FIXTURE = Path(__file__).resolve().parent / "fixtures" / "checkpoint_2026_12"


def test_a_checkpoint_of_the_earlier_layout_predicts_as_it_did(tmp_path):
    r = run_in_process(["imgrec.cli", "predict", f"ckpt={FIXTURE / 'model.ckpt'}", f"input={FIXTURE / 'images'}",
                        f"out={tmp_path}"], cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-3000:]
    rows = list(csv.reader((tmp_path / "predictions.csv").open()))[1:]
    assert [row[0] for row in rows] == [f"im{k}.png" for k in range(1, 7)]
    probs = np.array([[float(v) for v in row[1:-2]] for row in rows])
    np.testing.assert_allclose(probs, np.loadtxt(FIXTURE / "expected_probs.txt"), atol=2e-6)
    assert np.array_equal(np.loadtxt(tmp_path / "results.txt", dtype=int), (probs > 0.5).astype(int))
