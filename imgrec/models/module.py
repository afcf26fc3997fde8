"""The multi-label LightningModule: a net with one logit per label, a loss, and the metrics."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import pytorch_lightning as pl
import torch
from omegaconf import DictConfig, OmegaConf
from torch import nn
from torchmetrics import MetricCollection

from imgrec.evaluation.metrics import build_metrics, build_per_class_f1, thresholded_metrics
from imgrec.evaluation.thresholds import Thresholds
from imgrec.models.checkpoint import CheckpointMeta
from imgrec.models.summary import backbones_of, format_size, model_size
from imgrec.models.transfer import TransferNet, UnfreezeBackbones

log = logging.getLogger(__name__)


class MultiLabelModule(pl.LightningModule):
    """``net`` is a factory taking ``num_classes`` (a Hydra ``_partial_``), so the label count comes
    from the data. ``meta`` is the run's part of what a checkpoint carries to predict (``net_config``,
    ``data_fingerprint``, ``image_size``): see :class:`imgrec.models.checkpoint.CheckpointMeta`.

    Tuned decision thresholds, once set (:meth:`set_thresholds`, or those of a loaded checkpoint), are
    applied in test beside 0.5: ``test_tuned/f1_micro`` next to ``test/f1_micro``.
    The last val/test epoch's probabilities and targets are kept for reports (:meth:`outputs`).
    ``channels_last`` and ``compile`` are the GPU switches of every backbone (:meth:`Backbone.speed_up`).
    ``finetuning`` is the schedule and learning rate of the backbone layers a :class:`TransferNet` trains
    (``freeze=False``: all; ``train_blocks=K``: those above the cuts)."""

    def __init__(self, net: Callable[..., nn.Module], optimizer: Callable[..., torch.optim.Optimizer],
                 label_names: list[str], loss: nn.Module, scheduler: Callable[..., Any] | None = None,
                 meta: dict[str, Any] | None = None, channels_last: bool = False, compile: bool = False,
                 finetuning: UnfreezeBackbones | None = None) -> None:
        super().__init__()
        # Plain containers only, so that checkpoints load with weights_only=True.
        self.label_names = [str(name) for name in label_names]
        meta = OmegaConf.to_container(meta, resolve=True) if isinstance(meta, DictConfig) else dict(meta or {})
        self.net = net(num_classes=len(self.label_names))
        self.meta = CheckpointMeta.of_net(self.label_names, self.net, **meta)
        self.save_hyperparameters(self.meta.to_hparams())
        self.size = model_size(self.net)
        for backbone in backbones_of(self.net):
            backbone.speed_up(channels_last, compile)
        self.loss, self.finetuning = loss, finetuning
        self.on_features = False
        self.optimizer, self.scheduler = optimizer, scheduler
        n = len(self.label_names)
        self.val_metrics = build_metrics(n).clone(prefix="val/")
        self.test_metrics = build_metrics(n).clone(prefix="test/")
        self.val_f1_per_class, self.test_f1_per_class = build_per_class_f1(n), build_per_class_f1(n)
        self.test_tuned_metrics = MetricCollection(thresholded_metrics(n)).clone(prefix="test_tuned/")
        self.thresholds: torch.Tensor | None = None
        self._outputs: dict[str, list[tuple[torch.Tensor, torch.Tensor]]] = {"val": [], "test": []}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits in float32 under any ``trainer.precision``, so that the loss, the probabilities the metrics
        rank and the thresholds fitted on them are not rounded to bf16's 3 significant digits. On cached
        features or activations (the net above its frozen parts) autocast is off: the cache holds what
        float32 computed. On images the net runs at the trainer's precision and its logits are cast up."""
        if self.on_features:
            with torch.autocast(x.device.type, enabled=False):
                return self.net.forward_cached(x).float()
        return self.net(x).float()

    def train_on_features(self) -> None:
        """Batches will be what the frozen parts of the backbones give, cached (imgrec.features.cache), not
        images: the steps run the rest of the net. The checkpoint's net still takes images (predict, export)."""
        self.on_features = True

    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> torch.Tensor:
        x, y = batch
        loss = self.loss(self(x), y)
        self.log("train/loss", loss, on_step=False, on_epoch=True, prog_bar=True, batch_size=len(y),
                 sync_dist=True)  # under DDP: the mean over all ranks, as torchmetrics does itself
        return loss

    def _eval_step(self, batch: tuple[torch.Tensor, torch.Tensor], stage: str) -> None:
        x, y = batch
        logits = self(x)
        self.log(f"{stage}/loss", self.loss(logits, y), on_epoch=True, batch_size=len(y), sync_dist=True)
        metrics = self.val_metrics if stage == "val" else self.test_metrics
        per_class = self.val_f1_per_class if stage == "val" else self.test_f1_per_class
        probs, targets = torch.sigmoid(logits), y.int()
        metrics.update(probs, targets)
        per_class.update(probs, targets)
        self._outputs[stage].append((probs.detach().float().cpu(), targets.detach().cpu()))
        if stage == "test" and self.thresholds is not None:
            self.test_tuned_metrics.update((probs > self.thresholds.to(probs.device)).int(), targets)

    def _eval_epoch_end(self, stage: str) -> None:
        metrics = self.val_metrics if stage == "val" else self.test_metrics
        per_class = self.val_f1_per_class if stage == "val" else self.test_f1_per_class
        for name, value in metrics.compute().items():  # the bar shows a few of the many metrics
            self.log(name, value, prog_bar=name in ("val/f1_micro", "val/f1_macro", "val/map"))
        self.log_dict({f"{stage}/f1/{name}": v for name, v in zip(self.label_names, per_class.compute())})
        metrics.reset()
        per_class.reset()
        if stage == "test" and self.thresholds is not None:
            self.log_dict(self.test_tuned_metrics.compute())
            self.test_tuned_metrics.reset()

    def on_validation_epoch_start(self) -> None:
        self._outputs["val"] = []

    def on_test_epoch_start(self) -> None:
        self._outputs["test"] = []

    def outputs(self, stage: str) -> tuple[torch.Tensor, torch.Tensor]:
        """Probabilities and int targets of the last ``stage`` ("val"/"test") epoch, in loader order."""
        pairs = self._outputs[stage]
        if not pairs:
            raise RuntimeError(f"no {stage} outputs: run trainer.validate/test first")
        return torch.cat([p for p, _ in pairs]), torch.cat([t for _, t in pairs])

    def set_thresholds(self, thresholds: Thresholds) -> None:
        """Apply the thresholds' chosen rule in test, and record them in ``meta`` for later checkpoints."""
        self.thresholds = torch.tensor(thresholds.applied(), dtype=torch.float32)
        self.meta = self.meta.with_thresholds(thresholds)
        self.hparams.update(self.meta.to_hparams())

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        thresholds = CheckpointMeta.from_hparams(checkpoint.get("hyper_parameters") or {}).thresholds
        if thresholds is not None:
            self.set_thresholds(thresholds)

    def validation_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> None:
        self._eval_step(batch, "val")

    def on_validation_epoch_end(self) -> None:
        self._eval_epoch_end("val")

    def test_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> None:
        self._eval_step(batch, "test")

    def on_test_epoch_end(self) -> None:
        self._eval_epoch_end("test")

    def on_fit_start(self) -> None:
        log.info("model: %s", format_size(self.size))
        for logger in self.loggers:
            logger.log_hyperparams({"model_size": self.size})

    def _trained_backbone(self) -> list[nn.Parameter]:
        return self.net.trained_backbone_parameters() if isinstance(self.net, TransferNet) else []

    def configure_callbacks(self) -> list[pl.Callback]:
        """Fine-tuning a transfer net (whole or above its cuts): its backbones' freeze/unfreeze schedule."""
        return [self.finetuning] if self.finetuning is not None and self._trained_backbone() else []

    def configure_optimizers(self) -> Any:
        """The head (and any other trained layer) at the optimizer's learning rate; trained backbone
        layers in a group of their own at ``finetuning.backbone_lr_scale`` times it, frozen or not yet."""
        backbone = self._trained_backbone()
        ids = {id(p) for p in backbone}
        optimizer = self.optimizer(params=[p for p in self.parameters() if p.requires_grad and id(p) not in ids])
        if backbone:
            scale = self.finetuning.backbone_lr_scale if self.finetuning is not None else 1.0
            optimizer.add_param_group({"params": backbone, "lr": optimizer.defaults["lr"] * scale})
        if self.scheduler is None:
            return optimizer
        return {"optimizer": optimizer, "lr_scheduler": self.scheduler(optimizer=optimizer)}
