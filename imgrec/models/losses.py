"""Losses on logits for multi-label targets."""

from __future__ import annotations

import torch
from torch import nn


class SeedBCE(nn.Module):
    """The study's loss: the sum over classes of cross-entropy on s(p) = 0.99 p + 0.005, p = sigmoid(logit).

    Squashing keeps every log argument in [0.005, 0.995], so the loss is finite by construction.
    Averaged over the batch.
    """

    def forward(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        p = 0.99 * torch.sigmoid(logits) + 0.005
        loss = -(targets * torch.log(p) + (1 - targets) * torch.log1p(-p))
        return loss.sum(dim=1).mean()
