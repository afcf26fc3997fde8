"""Transfer learning: one or more pretrained backbones, features concatenated, one head on top.

One backbone is the study's transfer model (§4.2); two or more is its ensemble (§4.4).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import BaseFinetuning
from torch import nn
from torch.optim import Optimizer

from imgrec.models.backbones import Backbone
from imgrec.models.cuts import Cut, cut_backbone
from imgrec.models.heads import Head
from imgrec.models.tta import check_tta, head_tta, mean_over_views, with_tta
from imgrec.utils.errors import ImgrecError


class TransferNet(nn.Module):
    """``freeze=True``: the backbones stay frozen (the study's setting; the feature cache applies), all
    of them, or (``train_blocks=K``) all but their last ``K`` stages (:mod:`imgrec.models.cuts`).
    ``freeze=False`` trains them whole. Trained backbone layers follow :class:`UnfreezeBackbones`'s
    schedule (``model.finetuning``); backbones with a cut stay in eval mode throughout, so their
    batch-norm statistics stay pretrained and cached activations equal what the images give.
    ``head`` builds the classifier from ``(num_features, num_classes)`` (a :class:`Head` partial).
    ``input_size``, when set, resizes the images to that size for every backbone (else each backbone's own).
    ``tta``: ``flip`` averages, in eval mode, the logits of each image and its mirror (:mod:`imgrec.models.tta`)."""

    def __init__(self, backbones: Sequence[Backbone], num_classes: int,
                 head: Callable[[int, int], nn.Module] = Head, freeze: bool = True,
                 input_size: int | None = None, train_blocks: int = 0, tta: str = "none") -> None:
        super().__init__()
        self.backbones = nn.ModuleList(backbones)
        if input_size is not None:
            for b in self.backbones:
                b.input_size = int(input_size)
        if train_blocks < 0 or (train_blocks and not freeze):
            raise ImgrecError(f"model.net.train_blocks={train_blocks}: must be >= 0, and 0 with freeze=false "
                              "(which trains the whole backbones)")
        self.freeze, self.train_blocks, self.tta = freeze, int(train_blocks), check_tta(tta)
        # Plain attributes, not submodules: their graphs call the backbones' own modules, so the
        # state_dict stays the ordinary one of backbones and head.
        self.cuts: list[Cut] = [cut_backbone(b, self.train_blocks) for b in self.backbones] if train_blocks else []
        self.num_features = sum(b.num_features for b in self.backbones)
        self.head = head(self.num_features, num_classes)
        self.backbones_frozen = False
        if freeze:
            self.set_backbones_frozen(not self.cuts)

    def set_backbones_frozen(self, frozen: bool) -> None:
        """Freeze or unfreeze the trained backbone layers: all (``freeze=False``) or those above the cuts.
        Gradients and train/eval mode together: a frozen backbone is in eval mode, so its batch-norm
        statistics stay pretrained; a cut one stays in eval mode unfrozen too. Lightning restores
        recorded per-module modes rather than calling ``train()``, so the mode is set here, not only in
        :meth:`train`."""
        self.backbones_frozen = frozen
        self.backbones.requires_grad_(not frozen and not self.cuts)
        for cut in self.cuts:
            cut.upper.requires_grad_(not frozen)
        self.backbones.train(self.training and not frozen and not self.cuts)

    def train(self, mode: bool = True) -> TransferNet:
        super().train(mode)
        if self.backbones_frozen or self.cuts:
            self.backbones.eval()
        return self

    def trained_backbone_parameters(self) -> list[nn.Parameter]:
        """The backbone parameters that train (at ``model.finetuning.backbone_lr_scale``), frozen or not yet."""
        if self.cuts:
            return [p for cut in self.cuts for p in cut.upper.parameters()]
        return [] if self.freeze else list(self.backbones.parameters())

    def cached_parts(self) -> list[nn.Module]:
        """What the feature cache computes once per image: each backbone whole (pooled features), or
        below its cut (:class:`imgrec.models.cuts.Trunk`, activations)."""
        return [cut.trunk() for cut in self.cuts] if self.cuts else list(self.backbones)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([b(x) for b in self.backbones], dim=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """uint8 images (N, 3, H, W) -> logits."""
        return with_tta("none" if self.training else self.tta, lambda images: self.head(self.features(images)), x)

    def forward_head(self, features: torch.Tensor, mirrored: torch.Tensor | None = None) -> torch.Tensor:
        """The whole backbones' pooled features (N, num_features), and those of the mirrored images under
        flip TTA, as predict's engines compute them -> logits."""
        return head_tta("none" if self.training else self.tta, self.head, features, mirrored)

    def forward_cached(self, cached: torch.Tensor) -> torch.Tensor:
        """What :meth:`cached_parts` computed, concatenated per image -> logits: ``(N, F)``, or
        ``(N, T, F)`` with T views of each image whose logits are averaged (the mirror under TTA)."""
        return mean_over_views(self._head_of_cached, cached)

    def _head_of_cached(self, cached: torch.Tensor) -> torch.Tensor:
        if not self.cuts:
            return self.head(cached.float())
        sizes = [math.prod(cut.activation_shape) for cut in self.cuts]
        return self.head(torch.cat([cut.features(a) for cut, a in zip(self.cuts, cached.split(sizes, dim=1))], dim=1))


class UnfreezeBackbones(BaseFinetuning):
    """Fine-tuning schedule of a :class:`TransferNet`'s trained backbone layers (``pl_module.net``: all of
    them with ``freeze=False``, those above the cuts with ``train_blocks=K``; the module returns this
    callback from ``configure_callbacks``): with ``frozen_epochs > 0`` frozen before training and
    unfrozen at the start of that epoch (one process only: DDP averages the gradients of what was
    trainable when it wrapped the model). They sit in the optimizer from the start, as a param group at
    ``backbone_lr_scale`` times the head's learning rate (:meth:`MultiLabelModule.configure_optimizers`),
    so a scheduler follows them too; a frozen parameter has no gradient, so the optimizer leaves it
    alone. Lightning's ``BaseFinetuning`` records the param groups in checkpoints, so a resumed run gets
    them back."""

    def __init__(self, frozen_epochs: int = 0, backbone_lr_scale: float = 0.1) -> None:
        super().__init__()
        if frozen_epochs < 0 or backbone_lr_scale <= 0:
            raise ImgrecError(f"model.finetuning: frozen_epochs={frozen_epochs} must be >= 0 and "
                              f"backbone_lr_scale={backbone_lr_scale} > 0")
        self.frozen_epochs, self.backbone_lr_scale = frozen_epochs, backbone_lr_scale

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        if self.frozen_epochs > 0 and trainer.world_size > 1:  # DDP syncs what is trainable when it wraps the model
            raise ImgrecError(f"model.finetuning.frozen_epochs={self.frozen_epochs}: not with {trainer.world_size} "
                              "processes (DDP would not average the gradients of layers unfrozen later); use 0")
        super().setup(trainer, pl_module, stage)

    def freeze_before_training(self, pl_module: pl.LightningModule) -> None:
        if self.frozen_epochs > 0:  # else trainable from the start, as DDP must see them when it wraps the model
            pl_module.net.set_backbones_frozen(True)

    def finetune_function(self, pl_module: pl.LightningModule, epoch: int, optimizer: Optimizer) -> None:
        if epoch >= self.frozen_epochs and pl_module.net.backbones_frozen:
            pl_module.net.set_backbones_frozen(False)
