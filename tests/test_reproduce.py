"""``make reproduce`` end to end on a small synthetic course-format folder (slow: ~40 short runs)."""

import json
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from experiments.idl2020.best_model import candidates
from experiments.idl2020.cv_findings import TRANSFER
from imgrec.data.record import Dataset
from imgrec.data.synthetic import LABELS, synthetic_image, write_course_format
from tests.conftest import ROOT, run_cli

pytestmark = pytest.mark.slow
N_IMAGES = 200
# The CV steps cut 7.5% of the images for test, and a label needs 7 positives to expect one there
# (imgrec.data.split.check_rare_labels); 200 images of the synthetic set have 1 to 6 of its rarest labels.
MIN_POSITIVES = 7


def images_with_every_label(n: int, min_positives: int, seed: int = 0) -> Dataset:
    """``n`` images of the synthetic set of ``seed``: the first ones that bring a label still under
    ``min_positives`` its positives, then the first of the others, renamed im1..im<n> in index order."""
    drawn, counts = {}, np.zeros(len(LABELS), int)
    for i in range(100 * n):
        if (counts >= min_positives).all():
            break
        image, targets = synthetic_image(i, seed)
        if (targets.astype(bool) & (counts < min_positives)).any():
            drawn[i], counts = (image, targets), counts + targets
    assert (counts >= min_positives).all() and len(drawn) <= n
    for i in (i for i in range(100 * n) if i not in drawn):
        if len(drawn) == n:
            break
        drawn[i] = synthetic_image(i, seed)
    images, targets = zip(*(drawn[i] for i in sorted(drawn)))
    return Dataset(np.stack(images), np.stack(targets), list(LABELS), [f"im{k + 1}.jpg" for k in range(n)])


def test_reproduce_writes_the_report_from_its_runs(tmp_path: Path):
    dataset = images_with_every_label(N_IMAGES, MIN_POSITIVES)
    assert dataset.targets.sum(0).min() >= MIN_POSITIVES
    data = write_course_format(dataset, tmp_path / "data")
    logs, out = tmp_path / "logs", tmp_path / "out"
    args = ["--data", str(data), "--predict", str(data), "--logs", str(logs), "--out", str(out),
            "trainer.max_epochs=2", "cache.views=2", f"paths.cache_dir={tmp_path / 'cache'}"]
    done = run_cli(["experiments.idl2020.reproduce", *args], ROOT, timeout=3000)
    assert done.returncode == 0, done.stderr[-3000:]
    report = (out / "REPORT.md").read_text()
    for finding in ("Augmentation barely matters", "Oversampling hurts precision", "The hidden layer brings little",
                    "Scratch CNNs are far behind transfer", "The ensemble is slightly better"):
        line = next(line for line in report.splitlines() if finding in line)
        assert "**holds**" in line or "**does not hold**" in line, line
    runs = pd.read_csv(out / "runs.csv")
    expected = {"preproc": 3, "transfer": 14, "balancing": 9, "scratch": 2, "finetune": 1, "seeds-0": 3,
                "seeds-1": 3, "seeds-2": 3, "seeds-3": 3, "final": 1}
    assert runs["step"].value_counts().to_dict() == expected
    # the project's final model: +experiment=best's selected ensemble, which predicted the results
    assert "## The project's final model (`+experiment=best`)" in report and "partial fine-tuning" in report
    # Its frozen candidates are transfer-cv's CVs; the best step trains only the others (partial fine-tuning).
    record = json.loads((logs / "best" / "selection" / "selection.json").read_text())
    folders = Counter(Path(c["folder"]).parent.name for c in record["candidates"])
    assert folders == {"transfer-cv": len(TRANSFER), "best": len([c for c in candidates() if c not in TRANSFER])}
    assert (out / "predictions" / "results.txt").is_file()
    # Every number of the final model's line is a run's: its test F1 appears in the report as written.
    final = runs[runs["step"] == "final"].iloc[0]
    assert f"{final['test/f1_micro']:.4f}" in report
    # The final model repeats its seeded run exactly (same config and seed): its val F1 is one of theirs.
    seeded_val = runs[runs["step"].str.startswith("seeds-")]["val/f1_micro"].to_numpy()
    assert np.isclose(seeded_val, final["val/f1_micro"], atol=1e-6).any()
    results = np.loadtxt(out / "predictions" / "results.txt")
    assert results.shape == (N_IMAGES, len(LABELS)) and set(np.unique(results)) <= {0, 1}
    assert (out / "figures" / "architectures.png").is_file() and (out / "final" / "report").is_dir()
