"""start_wandb: a resumed run whose W&B id a killed run's service still holds waits, then goes on."""

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from imgrec.training.wandb_start import alive, start_wandb


class HeldId:
    """A logger whose wandb.init fails with W&B's 'in use' answer ``held`` times."""

    def __init__(self, held: int, error: str = "run ID abc is in use", save_dir: Path | None = None) -> None:
        self.held, self.error, self.calls, self.save_dir = held, error, 0, save_dir
        self._wandb_init = {"id": "abc"}

    @property
    def experiment(self) -> str:
        self.calls += 1
        if self.save_dir is not None:  # wandb.init makes a run folder, refused or not
            (self.save_dir / "wandb" / f"offline-run-{self.calls}-{self._wandb_init['id']}").mkdir(parents=True)
        if self.calls <= self.held and self._wandb_init["id"] == "abc":  # only the killed run's id is held
            raise RuntimeError(self.error)
        return self._wandb_init["id"]


def test_waits_for_the_killed_runs_service_to_let_go(tmp_path):
    logger = HeldId(held=2, save_dir=tmp_path)
    start_wandb(logger, wait_s=5, poll_s=0.01)
    assert logger.calls == 3 and logger._wandb_init["id"] == "abc"  # the same W&B run, resumed
    assert [p.name for p in (tmp_path / "wandb").iterdir()] == ["offline-run-3-abc"]  # no refused attempts left


def test_goes_on_under_a_new_id_that_names_the_old_one():
    logger = HeldId(held=10**6)
    start_wandb(logger, wait_s=0.05, poll_s=0.01)
    assert logger._wandb_init["id"].startswith("abc-") and logger._wandb_init["config"] == {"resumed_from": "abc"}


def test_other_errors_are_not_swallowed():
    with pytest.raises(RuntimeError, match="network"):
        start_wandb(HeldId(held=1, error="network down"), wait_s=5, poll_s=0.01)


def test_a_zombie_or_gone_process_is_not_alive():
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    deadline = time.monotonic() + 60
    while alive(proc.pid) and time.monotonic() < deadline:  # exited but not reaped: a zombie
        time.sleep(0.05)
    assert not alive(proc.pid) and Path(f"/proc/{proc.pid}").exists()
    proc.wait()
    assert not alive(proc.pid) and alive(os.getpid())
