"""What a run prints: known-harmless third-party warnings silenced, each by its own message, and a
sweep's progress ("run k/n", then an ETA).

Lightning's info chatter (device lines, tips, the model summary table, "Restoring states...") is kept
below the console by the ``pytorch_lightning`` logger level in ``conf/hydra/default.yaml``;
``hydra.verbose=pytorch_lightning`` brings it back.
"""

from __future__ import annotations

import logging
import os
import time
import warnings
from typing import Any

from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.experimental.callback import Callback
from hydra.types import RunMode
from omegaconf import DictConfig

log = logging.getLogger(__name__)

# (category, message regex, why it is harmless here)
HARMLESS = (
    (FutureWarning, r"`isinstance\(treespec, LeafSpec\)` is deprecated",
     "torch's pytree deprecation, raised inside Lightning and torchmetrics, not by our code"),
    (UserWarning, r"Found \d+ module\(s\) in eval mode at the start of training",
     "frozen backbones are in eval mode on purpose (TransferNet.set_backbones_frozen)"),
    (UserWarning, r"The '\w+_dataloader' does not have many workers",
     "images are in memory (data.num_workers=0 measured fastest on CPU: bench loading)"),
    (UserWarning, r"The number of training batches \(\d+\) is smaller than the logging interval",
     "small data sets log once per epoch, which is what we want"),
)


def quiet() -> None:
    """Install the message-scoped filters (idempotent) and keep W&B's banner lines off the console."""
    for category, message, _ in HARMLESS:
        warnings.filterwarnings("ignore", message=message, category=category)
    os.environ.setdefault("WANDB_SILENT", "true")


def quiet_logger(logger: object) -> object:
    """Lightning's WandbLogger passes ``anonymous=None`` to ``wandb.init``, which W&B answers with a
    deprecation line on every run; leaving the argument out means the same."""
    init = getattr(logger, "_wandb_init", None)
    if isinstance(init, dict) and init.get("anonymous") is None:
        init.pop("anonymous", None)
    return logger


def sweep_size(config: DictConfig) -> int | None:
    """How many runs a sweep will launch: Optuna's ``n_trials``, or the product of the basic sweeper's
    value lists (``hydra.sweeper.params`` overridden by the command line); None when unknown."""
    sweeper = config.hydra.sweeper
    if sweeper.get("n_trials") is not None:
        return int(sweeper.n_trials)
    params = [f"{k}={v}" for k, v in (sweeper.get("params") or {}).items()]
    try:
        overrides = OverridesParser.create().parse_overrides([*params, *config.hydra.overrides.task])
        sizes = {o.get_key_element(): len(list(o.sweep_iterator())) for o in overrides if o.is_sweep_override()}
    except Exception:  # an interval or other sweep without a fixed length  # noqa: BLE001
        return None
    n = 1
    for size in sizes.values():
        n *= size
    return n


class SweepProgress(Callback):
    """Logs "sweep: run k/n" as each run starts and, from the first finished run on, the time left."""

    def __init__(self) -> None:
        self.total: int | None = None
        self.seconds: list[float] = []
        self.started = 0.0

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        self.total = sweep_size(config)

    def on_job_start(self, config: DictConfig, **kwargs: Any) -> None:
        if config.hydra.mode != RunMode.MULTIRUN:
            return
        self.started = time.monotonic()
        k = int(config.hydra.job.num) + 1
        of = f"/{self.total}" if self.total else ""
        log.info("sweep: run %d%s", k, of)

    def on_job_end(self, config: DictConfig, job_return: Any, **kwargs: Any) -> None:
        if not self.started:
            return
        self.seconds.append(time.monotonic() - self.started)
        self.started = 0.0
        k = int(config.hydra.job.num) + 1
        left = (self.total - k) if self.total else 0
        eta = f", about {eta_text(left * sum(self.seconds) / len(self.seconds))} left" if left > 0 else ""
        log.info("sweep: run %d%s done in %.0f s%s", k, f"/{self.total}" if self.total else "", self.seconds[-1],
                 eta)


def eta_text(seconds: float) -> str:
    minutes, s = divmod(round(seconds), 60)
    return f"{minutes} min {s:02d} s" if minutes else f"{s} s"
