"""Start a W&B run that may be resuming one killed a moment ago.

Right after a SIGKILL, the killed run's W&B service can hold its run id for a while, and ``wandb.init``
answers "run ID ... is in use". The run waits for the service to let go; if it never does, the run goes
on under a new id that records the old one (``resumed_from`` in the W&B config), rather than failing.
"""

from __future__ import annotations

import logging
import shutil
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
            log.info("W&B: run id still held by a killed run's service; waiting")
            time.sleep(poll_s)
    old = logger._wandb_init["id"]  # Lightning keeps wandb.init's arguments here until the run starts
    logger._wandb_init.update(id=f"{old}-{int(time.time())}", config={"resumed_from": old})
    log.warning("W&B: run id %s still in use after %.0f s; continuing as %s", old, wait_s, logger._wandb_init["id"])
    logger.experiment  # noqa: B018
