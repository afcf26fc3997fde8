"""Horizontal mirroring of uint8 NCHW images: flip test-time augmentation's second view.

The net's TTA (``imgrec.models.tta``) mirrors the images it is given; the feature cache caches each
frozen part's output on the mirrored images through :class:`Mirrored`, so both mirror the same way.
"""

from __future__ import annotations

import torch
from torch import nn


def mirror(images: torch.Tensor) -> torch.Tensor:
    """NCHW images mirrored left to right."""
    return images.flip(-1)


class Mirrored(nn.Module):
    """A frozen part (a :class:`~imgrec.features.extraction.FeatureBackbone`) run on the mirrored images:
    the same weights and output, its own name (so its own cache key)."""

    def __init__(self, part: nn.Module) -> None:
        super().__init__()
        self.part = part
        self.name, self.input_size = f"{part.name} mirrored", part.input_size
        self.num_features, self.feature_dtype = part.num_features, part.feature_dtype

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.part(mirror(images))
