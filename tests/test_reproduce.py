"""``make reproduce`` end to end on a small synthetic course-format folder (slow: ~40 short runs)."""

import json
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from experiments.idl2020.best_model import candidates
from experiments.idl2020.cv_findings import TRANSFER
from tests.conftest import ROOT, run_cli

pytestmark = pytest.mark.slow


def test_reproduce_writes_the_report_from_its_runs(tmp_path: Path):
    data = tmp_path / "data"
    assert run_cli(["imgrec.cli", "synthetic", "--out", str(data), "--n-images", "200"], ROOT).returncode == 0
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
    assert results.shape == (200, 14) and set(np.unique(results)) <= {0, 1}
    assert (out / "figures" / "architectures.png").is_file() and (out / "final" / "report").is_dir()
