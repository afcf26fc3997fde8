"""Lightning DDP (trainer=ddp_cpu: 2 processes, gloo) inside Hydra runs and sweeps."""

from __future__ import annotations

import json
import os
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from hydra.core.hydra_config import HydraConfig
from lightning_fabric.plugins.environments import LightningEnvironment
from omegaconf import read_write
from pytorch_lightning.strategies.launchers import subprocess_script
from torch.utils.data import DistributedSampler

from imgrec.run import train
from imgrec.training.distributed import HydraJobLauncher, check_lightning, end_job, gather_in_order, job_command
from tests.conftest import TINY, compose_cfg, run_cli


def test_gathered_eval_rows_are_in_loader_order():
    """Lightning deals eval items to ranks with an unshuffled DistributedSampler, padding the end."""
    n, world = 11, 2
    per_rank = [torch.tensor(list(DistributedSampler(range(n), num_replicas=world, rank=r, shuffle=False)))
                for r in range(world)]
    trainer = SimpleNamespace(world_size=world, strategy=SimpleNamespace(
        root_device=torch.device("cpu"), all_gather=lambda rows: torch.stack(per_rank)))
    assert gather_in_order(trainer, per_rank[0], n).tolist() == list(range(n))


@pytest.mark.slow
def test_ddp_sweep_matches_single_process(tmp_path):
    """A 2-job multirun with trainer=ddp_cpu (2 processes each) against one process, same data and seed.

    Comparable by construction: full-batch training (one step per epoch over all 340 train images:
    2 x 170 per rank under DDP, 340 in one process), so Lightning's re-shuffling sampler wrapper and
    the sharding cannot change which images a step sees, and DDP's gradient average over 2 equal
    shards is the single process's mean. 400 images split 340/30/30: every split is even, so the
    DistributedSampler pads nothing and the synced val/test metrics count each image once.
    """
    common = [o for o in TINY if not o.startswith(("trainer.max_epochs", "data.batch_size"))]
    common += ["trainer.max_epochs=6", "callbacks.early_stopping.patience=10"]
    sweep = tmp_path / "sweep"
    r = run_cli(["imgrec.run", "-m", "trainer=ddp_cpu", "data.batch_size=170", "model.optimizer.lr=0.02,0.01",
                 f"hydra.sweep.dir={sweep}", f"paths.log_dir={tmp_path}", *common, "logger=wandb"], cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-3000:]
    # one folder per job, written by rank 0; rank 1 re-ran the job there (its log) and made no folder
    assert sorted(p.name for p in sweep.iterdir() if p.is_dir()) == ["0", "1", "wandb"]  # wandb: the summary run
    assert not (tmp_path / "train").exists()
    for job in ("0", "1"):
        assert (sweep / job / "run_rank1.log").is_file() and (sweep / job / ".hydra" / "config.yaml").is_file()
        assert (sweep / job / "metrics.json").is_file() and (sweep / job / "predictions.npz").is_file()
        (wandb_run,) = (sweep / job / "wandb").glob("offline-run-*")  # rank 0's only, finished with its job
        assert "finishing run" in (wandb_run / "logs" / "debug.log").read_text()
    assert (sweep / "results.csv").read_text().count(",ok,") == 2

    single = train(compose_cfg(tmp_path / "single", [*common, "data.batch_size=340", "model.optimizer.lr=0.02"]))
    ddp = json.loads((sweep / "0" / "metrics.json").read_text())
    assert ddp["epochs"] == single.epochs
    for key in ("val/f1_micro", "val/map", "val/loss", "test/f1_micro", "test/map", "test/loss",
                "test_tuned/f1_micro"):
        assert ddp["metrics"][key] == pytest.approx(single.metrics[key], abs=1e-4), key
    # the outputs gathered from both ranks are the single process's, in the same order
    with np.load(sweep / "0" / "predictions.npz") as a, np.load(tmp_path / "single" / "run" / "predictions.npz") as b:
        assert np.array_equal(a["test_indices"], b["test_indices"])
        np.testing.assert_allclose(a["test_probs"], b["test_probs"], atol=1e-4)
        np.testing.assert_allclose(a["thresholds"], b["thresholds"], atol=1e-6)


@pytest.mark.slow
def test_ddp_partial_finetuning_matches_single_process(tmp_path):
    """``model.net.train_blocks=1`` under trainer=ddp_cpu: the ranks share the activations' extraction
    (each its chunks, local rank 0 writes the file), both memory-map them, and the top stage's gradients
    are averaged over the ranks: full-batch training as above gives the single process's metrics."""
    common = [o for o in TINY if not o.startswith(("trainer.max_epochs", "data.batch_size"))]
    common += ["trainer.max_epochs=4", "callbacks.early_stopping.patience=10", "model.net.train_blocks=1",
               "model.optimizer.lr=0.01"]
    r = run_cli(["imgrec.run", "trainer=ddp_cpu", "data.batch_size=170", f"hydra.run.dir={tmp_path / 'ddp'}",
                 f"paths.cache_dir={tmp_path / 'cache'}", *common], cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-3000:]
    logs = {name: (tmp_path / "ddp" / name).read_text() for name in ("run.log", "run_rank1.log")}
    assert "rank 0/2 extracted" in logs["run.log"] and "rank 1/2 extracted" in logs["run_rank1.log"]
    assert logs["run.log"].count("extracted with") == 1 and "extracted with" not in logs["run_rank1.log"]
    single = train(compose_cfg(tmp_path / "single", [*common, "data.batch_size=340"]))
    ddp = json.loads((tmp_path / "ddp" / "metrics.json").read_text())
    assert ddp["epochs"] == single.epochs == 4
    for key in ("val/f1_micro", "val/loss", "test/f1_micro", "test/loss"):
        assert ddp["metrics"][key] == pytest.approx(single.metrics[key], abs=1e-4), key


def test_ranks_start_with_the_job_command(tmp_path, monkeypatch):
    """The one place imgrec.training.distributed reaches into Lightning: its subprocess launcher must take the
    command of ranks > 0 from ``_hydra_subprocess_cmd`` (swapped for job_command). Checked with Popen
    recorded, no process started: if a Lightning release changes this, this fails, not a sweep."""
    check_lightning()
    cfg = compose_cfg(tmp_path, ["trainer=ddp_cpu", "model.optimizer.lr=0.02"])
    with read_write(cfg.hydra.runtime):
        cfg.hydra.runtime.output_dir = str(tmp_path / "run")
    HydraConfig.instance().set_config(cfg)
    started = []
    monkeypatch.setattr(subprocess_script.subprocess, "Popen",
                        lambda command, env, cwd: started.append((command, env, cwd)))
    before = {k: os.environ.get(k) for k in ("MASTER_ADDR", "MASTER_PORT", "LOCAL_RANK", "WORLD_SIZE", "NODE_RANK")}
    launcher = HydraJobLauncher(LightningEnvironment(), num_processes=2, num_nodes=1)
    try:
        launcher._call_children_scripts()
    finally:
        end_job()
    command, cwd = job_command(1)
    assert [(c, e["LOCAL_RANK"], w) for c, e, w in started] == [(command, "1", cwd)]
    assert command[1:3] == ["-m", "imgrec.run"] and "model.optimizer.lr=0.02" in command
    assert f'hydra.run.dir="{tmp_path / "run"}"' in command and "hydra.mode=RUN" in command
    assert {k: os.environ.get(k) for k in before} == before  # end_job restored what the launcher set
