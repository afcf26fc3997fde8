"""Lightning's progress bar for a terminal or a log file (the one switch: :func:`imgrec.utils.progress.live_bars`)."""

from __future__ import annotations

import logging
import time

import pytorch_lightning as pl
from pytorch_lightning.callbacks import TQDMProgressBar

from imgrec.utils.progress import live_bars

log = logging.getLogger(__name__)


class ConsoleProgressBar(TQDMProgressBar):
    """Lightning's tqdm bars in a terminal. Elsewhere (a file, SLURM, ``nohup``) no bar at all, and one
    log line per training epoch instead: its number, the progress-bar metrics (train loss, val F1...)
    and its wall time. Validation and test passes after fit are summed up by ``imgrec.run``'s own lines."""

    def __init__(self, refresh_rate: int = 1, leave: bool = False) -> None:
        super().__init__(refresh_rate=refresh_rate, leave=leave)
        self.lines = not live_bars()
        if self.lines:
            self.disable()
        self._started = 0.0

    def on_train_epoch_start(self, trainer: pl.Trainer, *args: object) -> None:
        super().on_train_epoch_start(trainer, *args)
        self._started = time.monotonic()

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        super().on_train_epoch_end(trainer, pl_module)
        if not self.lines or not trainer.is_global_zero:
            return
        metrics = {k: v for k, v in self.get_metrics(trainer, pl_module).items() if k != "v_num"}
        shown = ", ".join(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}" for k, v in metrics.items())
        of = f"/{trainer.max_epochs}" if trainer.max_epochs and trainer.max_epochs > 0 else ""
        log.info("epoch %d%s: %s (%.1f s)", trainer.current_epoch + 1, of, shown, time.monotonic() - self._started)
