"""What a net is, as plain data: its preprocessing (for checkpoints and predict) and its size."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from imgrec.models.backbones import Backbone


def backbones_of(net: nn.Module) -> list[Backbone]:
    """The image-taking parts of ``net``: the backbones of a transfer net or ensemble, a scratch net's trunk."""
    return [m for m in net.modules() if isinstance(m, Backbone)]


def describe(net: nn.Module) -> dict[str, Any]:
    """Backbone names, input sizes and normalisation, one entry per backbone, in plain containers."""
    backbones = backbones_of(net)
    return {
        "backbones": [b.name for b in backbones],
        "input_sizes": [int(b.input_size) for b in backbones],
        "normalisation": [{"mean": b.mean.flatten().tolist(), "std": b.std.flatten().tolist()} for b in backbones],
    }


@torch.no_grad()
def model_size(net: nn.Module) -> dict[str, int]:
    """Parameters, trainable parameters, and FLOPs of one forward pass of one image at the input size.

    FLOPs are torch's ``FlopCounterMode`` count: 2 per multiply-add of convolutions and matrix
    products (batch norm, activations and pooling are not counted).
    """
    size = max((b.input_size for b in backbones_of(net)), default=128)
    modes = {m: m.training for m in net.modules()}
    net.eval()
    try:
        with FlopCounterMode(display=False) as counter:
            net(torch.zeros(1, 3, size, size, dtype=torch.uint8, device=next(net.parameters()).device))
    finally:
        for m, mode in modes.items():
            m.training = mode
    return {
        "params": sum(p.numel() for p in net.parameters()),
        "trainable_params": sum(p.numel() for p in net.parameters() if p.requires_grad),
        "flops": int(counter.get_total_flops()),
        "input_size": size,
    }


def format_size(size: dict[str, int]) -> str:
    return (f"{size['params']:,} parameters ({size['trainable_params']:,} trainable), "
            f"{size['flops'] / 1e9:.3f} GFLOPs per image at {size['input_size']} px")
