"""Transfer learning: one or more pretrained backbones, features concatenated, one head on top.

One backbone is the study's transfer model (§4.2); two or more is its ensemble (§4.4).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from imgrec.models.backbones import Backbone
from imgrec.models.heads import Head


class TransferNet(nn.Module):
    def __init__(self, backbones: Sequence[Backbone], num_classes: int, head: dict[str, Any] | None = None,
                 freeze: bool = True) -> None:
        super().__init__()
        self.backbones = nn.ModuleList(backbones)
        self.freeze = freeze
        self.num_features = sum(b.num_features for b in self.backbones)
        self.head = Head(self.num_features, num_classes, **(head or {}))
        if freeze:
            self.backbones.requires_grad_(False)
            self.backbones.eval()  # Lightning restores recorded per-module modes, so set it from the start

    def train(self, mode: bool = True) -> TransferNet:
        """A frozen backbone stays in eval mode, so its batch-norm statistics stay pretrained."""
        super().train(mode)
        if self.freeze:
            self.backbones.eval()
        return self

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([b(x) for b in self.backbones], dim=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Images (N, 3, H, W) or already-extracted features (N, num_features), as the feature cache gives."""
        return self.head(x if x.ndim == 2 else self.features(x))
