"""Lightning callbacks of imgrec."""

from __future__ import annotations

from typing import Any

import pytorch_lightning as pl
import torch

from imgrec.errors import ImgrecError


class FiniteLoss(pl.Callback):
    """Stop at the first NaN or infinite training loss, naming the epoch and step."""

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, batch: Any,
                           batch_idx: int) -> None:
        loss = outputs["loss"] if isinstance(outputs, dict) else outputs
        if loss is not None and not torch.isfinite(loss).all():
            raise ImgrecError(f"training loss is {loss.item()} at epoch {trainer.current_epoch}, batch {batch_idx} "
                              f"(global step {trainer.global_step}): lower the learning rate or use loss=seed_bce")
