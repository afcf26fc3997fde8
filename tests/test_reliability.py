"""Interruptions, failed runs, colliding folders, reproducibility and safe loading."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import psutil
import pytest
import torch
from hydra.utils import instantiate

from imgrec.config.compose import compose_config
from imgrec.data.batch_augment import BatchAugment
from imgrec.run import train
from imgrec.training.callbacks import AugmentationState, FiniteLoss
from imgrec.utils.errors import ImgrecError
from tests.conftest import TINY, child_env, compose_cfg, run_in_process

# Uncached, so that an epoch takes long enough to be killed in the middle of one.
SLOW_EPOCHS = [o for o in TINY if not o.startswith(("trainer.max_epochs", "data.n_images"))] + [
    "data.n_images=200", "trainer.max_epochs=4", "cache.features=false", "callbacks.early_stopping.patience=10"]


def start(args: list[str], cwd: Path) -> subprocess.Popen:
    env = {**child_env(), "WANDB_MODE": "offline"}
    return subprocess.Popen([sys.executable, "-m", "imgrec.run", *args], cwd=cwd, env=env, start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def wait_for(path: Path, proc: subprocess.Popen, timeout: float = 300) -> None:
    deadline = time.time() + timeout
    while not path.exists():
        assert proc.poll() is None, "the process ended before it could be killed"
        assert time.time() < deadline, f"{path} did not appear"
        time.sleep(0.2)


def kill(proc: subprocess.Popen, family: bool = True) -> list[psutil.Process]:
    """SIGKILL the run and every process it started (as a cluster's job kill does), W&B's service included;
    with ``family=False`` the run alone (as the kernel's OOM killer does): returns what it left running."""
    others = psutil.Process(proc.pid).children(recursive=True)
    if not family:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        return [p for p in others if p.is_running()]
    os.killpg(proc.pid, signal.SIGKILL)
    end(others)
    proc.wait()
    return []


def end(procs: list[psutil.Process]) -> None:
    for p in procs:
        with contextlib.suppress(psutil.NoSuchProcess):
            p.send_signal(signal.SIGKILL)
    psutil.wait_procs(procs, timeout=30)


def metrics_of(folder: Path) -> dict[str, float]:
    return json.loads((folder / "metrics.json").read_text())["metrics"]


def test_sigkilled_run_resumes_to_identical_metrics(tmp_path):
    """An augmented run on the image path (the augmentation RNG state is in the checkpoint), logging to
    W&B (offline): SIGKILLed alone, its W&B service still running, then resumed at once."""
    whole, broken = tmp_path / "whole", tmp_path / "broken"
    args = [*SLOW_EPOCHS, "augment=light", "logger=wandb"]
    r = run_in_process(["imgrec.run", f"hydra.run.dir={whole}", *args], cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-2000:]

    proc = start([f"hydra.run.dir={broken}", *args], cwd=tmp_path)
    wait_for(broken / "checkpoints" / "epoch_001.ckpt", proc)  # two epochs done, the third under way
    left = kill(proc, family=False)
    try:
        assert not (broken / "metrics.json").exists()
        # hydra.verbose: Lightning's own "Restored all states" line, quiet at the default level
        r = run_in_process(["imgrec.run", f"hydra.run.dir={broken}", *args, "resume=true",
                           "hydra.verbose=pytorch_lightning"], cwd=tmp_path)
    finally:
        end(left)
    assert r.returncode == 0, r.stderr[-2000:]
    assert "Restored all states from the checkpoint" in r.stderr + r.stdout
    assert metrics_of(broken) == metrics_of(whole)
    # Both attempts logged to the one W&B run whose id the run folder gives.
    attempts = sorted((broken / "wandb").glob("offline-run-*"))
    assert len(attempts) == 2 and len({a.name.rsplit("-", 1)[1] for a in attempts}) == 1, attempts


def test_wandb_run_id_follows_the_run_folder(tmp_path):
    """A run resumed in its folder gets the W&B id of the first attempt (with ``resume: allow``)."""
    first = compose_config(tmp_path / "run", ["logger=wandb"]).logger.wandb
    again = compose_config(tmp_path / "run", ["logger=wandb", "resume=true"]).logger.wandb
    other = compose_config(tmp_path / "other", ["logger=wandb"]).logger.wandb
    assert first.id == again.id != other.id and first.resume == "allow"


def test_killed_sweep_skips_finished_runs(tmp_path):
    """Killed between runs (cached features: each run takes seconds), then started again."""
    sweep = tmp_path / "sweep"
    args = ["-m", "seed=1,2,3", f"hydra.sweep.dir={sweep}", *TINY, "trainer.max_epochs=2", "data.n_images=200",
            f"paths.cache_dir={tmp_path / 'cache'}"]
    proc = start(args, cwd=tmp_path)
    wait_for(sweep / "0" / "metrics.json", proc)
    kill(proc)
    first = (sweep / "0" / "metrics.json").stat().st_mtime_ns
    assert not (sweep / "2" / "metrics.json").exists()
    r = run_in_process(["imgrec.run", *args], cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-2000:]
    assert "already finished (metrics.json), skipping" in r.stderr + r.stdout
    assert (sweep / "0" / "metrics.json").stat().st_mtime_ns == first
    assert all((sweep / str(k) / "metrics.json").is_file() for k in range(3))
    assert (sweep / "results.csv").read_text().count("\n") == 4


def test_failed_run_is_recorded_and_the_sweep_goes_on(tmp_path):
    r = run_in_process(["imgrec.run", "-m", f"paths.log_dir={tmp_path}",
                       "model.net.backbones.0.name=nope,efficientnet_lite0", *TINY], cwd=tmp_path)
    assert r.returncode != 0 and "1 of 2 runs failed" in r.stderr
    sweep = next((tmp_path / "train" / "multiruns").iterdir())
    assert "unknown backbone 'nope'" in json.loads((sweep / "0" / "failed.json").read_text())["error"]
    assert (sweep / "1" / "metrics.json").is_file()
    assert "failed: unknown backbone" in (sweep / "results.md").read_text()


def test_two_sweeps_started_together_get_their_own_folders(tmp_path):
    args = ["-m", f"paths.log_dir={tmp_path}", *TINY, "trainer.max_epochs=1", "data.n_images=80"]
    procs = [start(args, cwd=tmp_path) for _ in range(2)]
    assert [p.wait(timeout=300) for p in procs] == [0, 0]
    folders = list((tmp_path / "train" / "multiruns").iterdir())
    assert len(folders) == 2 and all((f / "0" / "metrics.json").is_file() for f in folders)


def test_augmentation_state_continues_the_draws(tmp_path):
    """The saved state makes a new pipeline (as a resumed run builds) draw what the first one would have
    drawn next; without it the new pipeline starts over from its seed."""
    cfg = compose_cfg(tmp_path, ["augment=strong"])
    image = np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)

    def draws(pipeline, n: int = 6) -> list[np.ndarray]:
        return [pipeline(image=image)["image"] for _ in range(n)]

    class Trainer:
        datamodule = type("DataModule", (), {"augment": instantiate(cfg.augment), "num_workers": 0})

    first = AugmentationState()
    first.setup(Trainer, None, "fit")
    draws(Trainer.datamodule.augment)
    state = torch.load(_saved(tmp_path, first.state_dict()), weights_only=True)  # plain data, as checkpoints load
    expected = draws(Trainer.datamodule.augment)

    Trainer.datamodule.augment = instantiate(cfg.augment)
    fresh = draws(instantiate(cfg.augment))
    assert any(not np.array_equal(a, b) for a, b in zip(fresh, expected))
    resumed = AugmentationState()
    resumed.setup(Trainer, None, "fit")
    resumed.load_state_dict(state)
    resumed.on_train_start(Trainer, None)
    assert all(np.array_equal(a, b) for a, b in zip(draws(Trainer.datamodule.augment), expected))


def test_augmentation_state_continues_the_draws_on_the_device(tmp_path):
    """augment.on_device: one generator in the training process, saved and restored; a checkpoint of
    the other kind of augmentation is refused in one line."""
    images = torch.randint(0, 256, (4, 3, 32, 32), dtype=torch.uint8)

    class Trainer:
        datamodule = type("DataModule", (), {"augment": BatchAugment(seed=3), "num_workers": 2})

    first = AugmentationState()
    first.setup(Trainer, None, "fit")
    Trainer.datamodule.augment(images)
    state = torch.load(_saved(tmp_path, first.state_dict()), weights_only=True)
    expected = Trainer.datamodule.augment(images)

    Trainer.datamodule.augment = BatchAugment(seed=3)
    resumed = AugmentationState()
    resumed.setup(Trainer, None, "fit")
    resumed.load_state_dict(state)
    resumed.on_train_start(Trainer, None)
    assert torch.equal(Trainer.datamodule.augment(images), expected)

    Trainer.datamodule.augment = instantiate(compose_cfg(tmp_path, ["augment=seed"]).augment)
    other = AugmentationState()
    other.setup(Trainer, None, "fit")
    other.load_state_dict(state)
    with pytest.raises(ImgrecError, match="augmentation state is that of augment.on_device=true"):
        other.on_train_start(Trainer, None)


def _saved(tmp_path: Path, obj: object) -> Path:
    torch.save(obj, tmp_path / "state.pt")
    return tmp_path / "state.pt"


def test_nan_loss_stops_naming_the_step():
    """Checked when the next step ends (or the epoch), so that the check never waits for the GPU."""
    class Trainer:
        current_epoch, global_step = 2, 17

    check = FiniteLoss()
    check.on_train_batch_end(Trainer(), None, {"loss": torch.tensor(0.3)}, None, 4)
    check.on_train_batch_end(Trainer(), None, {"loss": torch.tensor(float("nan"))}, None, 5)
    with pytest.raises(ImgrecError, match=r"training loss is nan at epoch 2, batch 5 \(global step 17\)"):
        check.on_train_batch_end(Trainer(), None, {"loss": torch.tensor(0.3)}, None, 6)
    check.on_train_batch_end(Trainer(), None, torch.tensor(float("inf")), None, 7)
    with pytest.raises(ImgrecError, match="training loss is inf at epoch 2, batch 7"):
        check.on_train_epoch_end(Trainer(), None)


def test_same_seed_same_metrics_and_run_records(tmp_path):
    a = train(compose_cfg(tmp_path / "a", ["trainer.max_epochs=3"]))
    b = train(compose_cfg(tmp_path / "b", ["trainer.max_epochs=3"]))
    assert a.metrics == b.metrics
    run = tmp_path / "a" / "run"
    provenance = json.loads((run / "provenance.json").read_text())
    assert provenance["versions"]["torch"] == torch.__version__.split("+")[0]
    assert provenance["data_fingerprint"] == a.data_fingerprint and "git_commit" in provenance
    assert "efficientnet_lite0" in (run / "config_resolved.yaml").read_text()
    torch.load(a.checkpoint, weights_only=True)  # loads without unpickling arbitrary objects


def test_wandb_api_key_never_written(tmp_path, monkeypatch):
    secret = "imgrec-test-secret-0123456789abcdef0123456789abcdef"
    monkeypatch.setenv("WANDB_API_KEY", secret)
    r = run_in_process(["imgrec.run", f"hydra.run.dir={tmp_path / 'run'}", *TINY, "logger=wandb",
                        "trainer.max_epochs=1"], cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-2000:]
    assert secret not in r.stdout + r.stderr
    for path in (tmp_path / "run").rglob("*"):
        if path.is_file():
            assert secret.encode() not in path.read_bytes(), path


def test_exported_weights_are_safetensors(tmp_path):
    from safetensors import safe_open

    summary = train(compose_cfg(tmp_path, ["trainer.max_epochs=2", "loss=pos_weight"]))
    with safe_open(str(tmp_path / "run" / "model.safetensors"), framework="pt") as f:
        meta = f.metadata()
        assert json.loads(meta["label_names"])[0] == "bow" and "thresholds" in meta
        assert any(k.startswith("head.") for k in f.keys())
    state = torch.load(summary.checkpoint, weights_only=True)["state_dict"]
    assert torch.equal(state["net.head.0.weight"], safe_open(str(tmp_path / "run" / "model.safetensors"),
                                                             framework="pt").get_tensor("head.0.weight"))
