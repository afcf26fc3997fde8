"""Start a W&B run that may be resuming one killed a moment ago.

Right after a SIGKILL, the killed run's W&B service can hold its run id for a while, and ``wandb.init``
answers "run ID ... is in use". The run waits for the service to let go; if it never does, the run goes
on under a new id that records the old one (``resumed_from`` in the W&B config), rather than failing.
"""

from __future__ import annotations

import logging
import os
import shutil
import signal
import time
from pathlib import Path

from pytorch_lightning.loggers import WandbLogger

log = logging.getLogger(__name__)


def start_wandb(logger: WandbLogger, wait_s: float = 90.0, poll_s: float = 3.0) -> None:
    deadline = time.monotonic() + wait_s
    runs = Path(logger.save_dir or ".") / "wandb"
    while True:
        before = set(runs.glob("*run-*"))
        try:
            logger.experiment  # noqa: B018 -- wandb.init, on rank 0 only
            return
        except Exception as err:
            if "is in use" not in str(err):
                raise
            for attempt in set(runs.glob("*run-*")) - before:  # the refused attempt's empty run folder
                shutil.rmtree(attempt, ignore_errors=True)
            if time.monotonic() > deadline:
                break
            stopped = stop_orphaned_services()
            log.info("W&B: run id held by a killed run's service; %s", f"stopped {stopped}" if stopped else "waiting")
            time.sleep(poll_s)
    old = logger._wandb_init["id"]  # Lightning keeps wandb.init's arguments here until the run starts
    logger._wandb_init.update(id=f"{old}-{int(time.time())}", config={"resumed_from": old})
    log.warning("W&B: run id %s still in use after %.0f s; continuing as %s", old, wait_s, logger._wandb_init["id"])
    logger.experiment  # noqa: B018


def stop_orphaned_services() -> list[int]:
    """Stop W&B services (``wandb-core --pid <run process>``) whose run process is gone: a killed run's
    service can hold its run id long after (minutes, seen on this project's CI). Linux /proc only."""
    stopped = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            args = cmdline.read_bytes().decode(errors="replace").split("\0")
        except OSError:
            continue
        if not any(a.endswith("wandb-core") for a in args[:1]) or "--pid" not in args:
            continue
        try:
            owner = int(args[args.index("--pid") + 1])
        except (ValueError, IndexError):
            continue
        if not alive(owner):  # the run that started the service is gone
            service = int(cmdline.parent.name)
            try:
                os.kill(service, signal.SIGTERM)
                stopped.append(service)
            except (ProcessLookupError, PermissionError):
                continue
    return stopped


def alive(pid: int) -> bool:
    """A process that runs: not gone, and not a zombie waiting for its parent to reap it."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"
