"""Test-time augmentation of a net's logits (``model.net.tta``), applied in eval mode only.

``flip`` averages the logits of each image and of its horizontal mirror. Logits, not probabilities:
the net's output stays a logit that the loss, the thresholds, predict and the ONNX graph (one more
``sigmoid``) all take as before, and with a linear head the mean of the two logits is the logit of the
mean of the two feature vectors.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from imgrec.features.mirror import mirror
from imgrec.utils.errors import ImgrecError

TTA = ("none", "flip")


def check_tta(tta: str) -> str:
    if tta not in TTA:
        raise ImgrecError(f"model.net.tta={tta}: expected one of {', '.join(TTA)}")
    return tta


def uses_flip(net: torch.nn.Module) -> bool:
    """Whether ``net``, or a net inside it (a member of a selected ensemble), averages in the mirror images."""
    return any(getattr(module, "tta", "none") == "flip" for module in net.modules())


def with_tta(tta: str, logits: Callable[[torch.Tensor], torch.Tensor], images: torch.Tensor) -> torch.Tensor:
    """``logits(images)``, averaged with the mirrored images' when ``tta`` is ``flip``."""
    if tta == "flip":
        return (logits(images) + logits(mirror(images))) / 2
    return logits(images)


def mean_over_views(logits: Callable[[torch.Tensor], torch.Tensor], cached: torch.Tensor) -> torch.Tensor:
    """Cached features ``(N, F)``, or ``(N, T, F)``: T views of each image (the plain and the mirrored
    one under TTA) whose logits are averaged, as :func:`with_tta` averages them from images."""
    if cached.ndim == 2:
        return logits(cached)
    n, views = cached.shape[:2]
    return logits(cached.flatten(0, 1)).view(n, views, -1).mean(1)


def head_tta(tta: str, head: Callable[[torch.Tensor], torch.Tensor], features: torch.Tensor,
             mirrored: torch.Tensor | None) -> torch.Tensor:
    """Logits of pooled ``features``, averaged with those of the ``mirrored`` images' features under
    ``flip``: what predict computes when an engine runs the backbones (:meth:`forward_head`)."""
    if tta != "flip":
        return head(features)
    if mirrored is None:
        raise ValueError("flip TTA needs the mirrored images' features too")
    return (head(features) + head(mirrored)) / 2
