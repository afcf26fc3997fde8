"""RunSummary: the one writer and reader of metrics.json, failed.json and pruned.json."""

import json

from imgrec.reporting.sweep_table import collect
from imgrec.training.run_summary import (
    FAILED,
    FINISHED,
    RunSummary,
    clear_failure,
    finished_runs,
    run_folders,
    write_pruned,
)


def test_finished_and_failed_outcomes_round_trip(tmp_path):
    done = RunSummary(["seed=1"], {"val/f1_micro": 0.8}, 3, 1.5, "a.ckpt", "fp", {"threshold_rule": "global"},
                      {"params": 10})
    (tmp_path / "0").mkdir()
    done.write(tmp_path / "0")
    assert RunSummary.read(tmp_path / "0") == done and not done.failed
    assert "error" not in json.loads((tmp_path / "0" / FINISHED).read_text())
    (tmp_path / "1").mkdir()
    RunSummary(["seed=2"], error="boom").write(tmp_path / "1")
    failed = RunSummary.read(tmp_path / "1")
    assert failed.failed and failed.error == "boom" and failed.overrides == ["seed=2"]
    assert RunSummary.read(tmp_path) is None  # neither file: not a run (or still running)
    (tmp_path / "10").mkdir()
    done.write(tmp_path / "10")
    assert run_folders(tmp_path) == [tmp_path / "0", tmp_path / "1", tmp_path / "10"]  # run-number order
    assert run_folders(tmp_path, finished_only=True) == [tmp_path / "0", tmp_path / "10"]
    assert set(finished_runs(tmp_path)) == {tmp_path / "0", tmp_path / "10"}
    clear_failure(tmp_path / "1")
    assert not (tmp_path / "1" / FAILED).exists()


def test_a_finished_run_replaces_an_earlier_failure(tmp_path):
    RunSummary(["x=1"], error="first try").write(tmp_path)
    RunSummary(["x=1"], {"val/f1_micro": 0.5}).write(tmp_path)
    assert not (tmp_path / FAILED).exists() and RunSummary.read(tmp_path).metrics == {"val/f1_micro": 0.5}


def test_the_sweep_table_tells_finished_pruned_and_failed_runs_apart(tmp_path):
    for k, summary in enumerate([RunSummary(["lr=1"], {"val/f1_micro": 0.8}, 6),
                                 RunSummary(["lr=2"], {"val/f1_micro": 0.3}, 3),
                                 RunSummary(["lr=3"], error="boom")]):
        (tmp_path / str(k)).mkdir()
        summary.write(tmp_path / str(k))
    write_pruned(tmp_path / "1", trial=1, epoch=2, monitor="val/f1_micro", value=0.3)
    assert RunSummary.read(tmp_path / "1").pruned_at == 2
    assert "pruned_at" not in json.loads((tmp_path / "1" / FINISHED).read_text())  # pruned.json says it
    assert collect(tmp_path)["status"].tolist() == ["ok", "pruned after epoch 2", "failed: boom"]
