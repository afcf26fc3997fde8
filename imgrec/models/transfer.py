"""Transfer learning: one or more pretrained backbones, features concatenated, one head on top.

One backbone is the study's transfer model (§4.2); two or more is its ensemble (§4.4).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import BaseFinetuning
from torch import nn
from torch.optim import Optimizer

from imgrec.models.backbones import Backbone
from imgrec.models.heads import Head
from imgrec.utils.errors import ImgrecError


class TransferNet(nn.Module):
    """``freeze=True``: the backbones stay frozen (the study's setting; the feature cache applies).
    ``freeze=False`` trains them too, on the schedule of :class:`UnfreezeBackbones` (``model.finetuning``).
    ``head`` builds the classifier from ``(num_features, num_classes)`` (a :class:`Head` partial).
    ``input_size``, when set, resizes the images to that size for every backbone (else each backbone's own)."""

    def __init__(self, backbones: Sequence[Backbone], num_classes: int,
                 head: Callable[[int, int], nn.Module] = Head, freeze: bool = True,
                 input_size: int | None = None) -> None:
        super().__init__()
        self.backbones = nn.ModuleList(backbones)
        if input_size is not None:
            for b in self.backbones:
                b.input_size = int(input_size)
        self.freeze = freeze
        self.num_features = sum(b.num_features for b in self.backbones)
        self.head = head(self.num_features, num_classes)
        self.backbones_frozen = False
        if freeze:
            self.set_backbones_frozen(True)

    def set_backbones_frozen(self, frozen: bool) -> None:
        """Freeze or unfreeze the backbones: gradients and train/eval mode together. A frozen backbone is in
        eval mode, so its batch-norm statistics stay pretrained. Lightning restores recorded per-module
        modes rather than calling ``train()``, so the mode is set here, not only in :meth:`train`."""
        self.backbones_frozen = frozen
        self.backbones.requires_grad_(not frozen)
        self.backbones.train(self.training and not frozen)

    def train(self, mode: bool = True) -> TransferNet:
        super().train(mode)
        if self.backbones_frozen:
            self.backbones.eval()
        return self

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([b(x) for b in self.backbones], dim=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """uint8 images (N, 3, H, W) -> logits."""
        return self.head(self.features(x))

    def forward_head(self, features: torch.Tensor) -> torch.Tensor:
        """Already-extracted features (N, num_features), as the feature cache serves them -> logits."""
        return self.head(features)


class UnfreezeBackbones(BaseFinetuning):
    """Fine-tuning schedule of a :class:`TransferNet` with ``freeze=False`` (``pl_module.net``; the module
    returns this callback from ``configure_callbacks``): backbones frozen before training (the optimizer
    starts with the head only), unfrozen at the start of epoch ``frozen_epochs`` and added to the
    optimizer as a param group at ``backbone_lr_scale`` times the head's learning rate. Lightning's
    ``BaseFinetuning`` records the param groups in checkpoints, so a resumed run gets them back."""

    def __init__(self, frozen_epochs: int = 0, backbone_lr_scale: float = 0.1) -> None:
        super().__init__()
        if frozen_epochs < 0 or backbone_lr_scale <= 0:
            raise ImgrecError(f"model.finetuning: frozen_epochs={frozen_epochs} must be >= 0 and "
                              f"backbone_lr_scale={backbone_lr_scale} > 0")
        self.frozen_epochs, self.backbone_lr_scale = frozen_epochs, backbone_lr_scale

    def freeze_before_training(self, pl_module: pl.LightningModule) -> None:
        pl_module.net.set_backbones_frozen(True)

    def finetune_function(self, pl_module: pl.LightningModule, epoch: int, optimizer: Optimizer) -> None:
        net: TransferNet = pl_module.net
        if epoch < self.frozen_epochs or not net.backbones_frozen:
            return
        net.set_backbones_frozen(False)
        in_optimizer = {id(p) for group in optimizer.param_groups for p in group["params"]}
        params = [p for p in net.backbones.parameters() if id(p) not in in_optimizer]
        if params:  # a resumed run already has the backbone group back from the checkpoint
            lr = optimizer.param_groups[0]["lr"] * self.backbone_lr_scale
            optimizer.add_param_group({"params": params, "lr": lr})
