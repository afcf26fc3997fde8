"""Hydra launchers: joblib (local jobs in parallel) and submitit (SLURM), without a cluster."""

from __future__ import annotations

import csv
import os
from datetime import datetime
from pathlib import Path

import pytest
import submitit
import yaml
from omegaconf import OmegaConf

from tests.conftest import TINY, compose_cfg, run_cli, run_in_process

QUICK = [o for o in TINY if not o.startswith(("trainer.max_epochs", "data.n_images"))] + [
    "trainer.max_epochs=1", "data.n_images=80"]


def rows(sweep: Path) -> list[dict[str, str]]:
    return list(csv.DictReader((sweep / "results.csv").open()))


def log_span(run_log: Path) -> tuple[datetime, datetime]:
    """First and last time stamp of a run's log."""
    lines = run_log.read_text().splitlines()
    return tuple(datetime.strptime(line[1:24], "%Y-%m-%d %H:%M:%S,%f") for line in (lines[0], lines[-1]))


@pytest.mark.slow
def test_joblib_runs_a_sweep_in_parallel_in_one_folder(tmp_path):
    """hydra/launcher=joblib: 2 jobs in 2 loky workers at once, in the one sweep folder that the default
    name (time + the launching process id, which the workers inherit) gives them, one W&B group."""
    r = run_cli(["imgrec.run", "-m", "hydra/launcher=joblib", "hydra.launcher.n_jobs=2", "seed=1,2",
                 f"paths.log_dir={tmp_path}", *QUICK, "logger=wandb"], cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "Joblib.Parallel(n_jobs=2" in r.stderr + r.stdout
    (sweep,) = (tmp_path / "train" / "multiruns").iterdir()
    assert [row["status"] for row in rows(sweep)] == ["ok", "ok"]
    (start0, end0), (start1, end1) = log_span(sweep / "0" / "run.log"), log_span(sweep / "1" / "run.log")
    assert start0 < end1 and start1 < end0, "the jobs did not overlap in time"
    for job in ("0", "1"):
        resolved = yaml.safe_load((sweep / job / "config_resolved.yaml").read_text())
        assert resolved["logger"]["wandb"]["group"] == sweep.name
        (debug_log,) = (sweep / job / "wandb").glob("offline-run-*/logs/debug.log")
        assert "finishing run" in debug_log.read_text()
    (summary_log,) = (sweep / "wandb").glob("offline-run-*/logs/debug.log")  # the sweep's summary run
    assert "finishing run" in summary_log.read_text()


def test_slurm_jobs_build_without_a_cluster(tmp_path, monkeypatch):
    """hydra=slurm through Hydra's submitit launcher with submitit's debug executor: the SLURM settings
    pass submitit's checks, each job runs in <sweep folder>/<k>, and the sweep folder is named after
    the sweep, not the time of launch, so a requeued job or a resubmission finds it."""
    overrides = ["hydra=slurm", "+sweep_name=study", "hydra.launcher.partition=gpu", "hydra.launcher.timeout_min=30"]
    # submitit's debug executor (jobs run in this process) stands in for SLURM: Hydra's submitit launcher
    # builds the executor and the job array exactly as on a cluster.
    auto = submitit.AutoExecutor
    monkeypatch.setattr(submitit, "AutoExecutor",
                        lambda folder, cluster=None, **kw: auto(folder, cluster="debug", **kw))
    r = run_in_process(["imgrec.run", "-m", *overrides, "seed=1,2", f"paths.log_dir={tmp_path}", *QUICK], cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-3000:]
    sweep = tmp_path / "train" / "slurm" / "study"
    assert "Submitit 'slurm' sweep output dir" in r.stderr + r.stdout
    assert [row["status"] for row in rows(sweep)] == ["ok", "ok"]
    assert (sweep / ".submitit").is_dir() and [p.name for p in (tmp_path / "train").iterdir()] == ["slurm"]

    def sweep_dir(launch_id: str, extra: list[str]) -> str:
        os.environ["IMGREC_LAUNCH_ID"] = launch_id
        return OmegaConf.select(compose_cfg(tmp_path, extra), "hydra.sweep.dir")

    saved = os.environ.get("IMGREC_LAUNCH_ID")
    try:
        assert sweep_dir("1", overrides) == sweep_dir("2", overrides) == str(sweep)
        assert sweep_dir("1", []) != sweep_dir("2", [])  # the default folder is per launch
    finally:
        os.environ.pop("IMGREC_LAUNCH_ID") if saved is None else os.environ.__setitem__("IMGREC_LAUNCH_ID", saved)
