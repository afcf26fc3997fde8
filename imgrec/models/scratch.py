"""CNNs trained from scratch, built from a config (the study's §4.3).

A stem, then stages of residual (ResNet basic) or Inception blocks, global average pooling and the
:class:`~imgrec.models.heads.Head`. Each stage sets its block type, number of blocks, width and
stride; the first block of a stage does the striding and the change of width.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch import nn

from imgrec.models.backbones import Backbone
from imgrec.models.heads import Head
from imgrec.models.tta import check_tta, head_tta, with_tta
from imgrec.utils.errors import ImgrecError

BLOCKS = ("residual", "inception")


def conv_bn(c_in: int, c_out: int, kernel: int, stride: int = 1, relu: bool = True) -> nn.Sequential:
    layers: list[nn.Module] = [nn.Conv2d(c_in, c_out, kernel, stride, kernel // 2, bias=False), nn.BatchNorm2d(c_out)]
    if relu:
        layers.append(nn.ReLU(inplace=True))
    return nn.Sequential(*layers)


def projection(c_in: int, c_out: int, stride: int) -> nn.Module:
    """The shortcut path: identity when the shape is kept, else a strided 1x1 convolution (ResNet's option B)."""
    return nn.Identity() if c_in == c_out and stride == 1 else conv_bn(c_in, c_out, 1, stride, relu=False)


class ResidualBlock(nn.Module):
    """ResNet's basic block: two 3x3 convolutions, plus the input when ``shortcut`` (a plain block without)."""

    def __init__(self, c_in: int, c_out: int, stride: int = 1, shortcut: bool = True) -> None:
        super().__init__()
        self.body = nn.Sequential(conv_bn(c_in, c_out, 3, stride), conv_bn(c_out, c_out, 3, relu=False))
        self.shortcut = projection(c_in, c_out, stride) if shortcut else None
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.body(x)
        return self.relu(y + self.shortcut(x) if self.shortcut is not None else y)


class InceptionBlock(nn.Module):
    """Parallel 1x1, 3x3, 5x5 and 3x3-max-pool branches (the 3x3, 5x5 and pool ones behind or followed by a
    1x1 reduction, as in GoogLeNet), concatenated to ``c_out`` channels; ``shortcut`` adds the input
    ResNet-style around the block."""

    def __init__(self, c_in: int, c_out: int, stride: int = 1, shortcut: bool = False) -> None:
        super().__init__()
        if c_out < 4:
            raise ImgrecError(f"inception block width {c_out}: needs at least 4 channels (one per branch)")
        quarter = c_out // 4
        widths = (c_out - 3 * quarter, quarter, quarter, quarter)  # 1x1 gets the remainder
        self.branches = nn.ModuleList([
            conv_bn(c_in, widths[0], 1, stride),
            nn.Sequential(conv_bn(c_in, widths[1], 1), conv_bn(widths[1], widths[1], 3, stride)),
            nn.Sequential(conv_bn(c_in, widths[2], 1), conv_bn(widths[2], widths[2], 5, stride)),
            nn.Sequential(nn.MaxPool2d(3, stride, 1), conv_bn(c_in, widths[3], 1)),
        ])
        self.shortcut = projection(c_in, c_out, stride) if shortcut else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = torch.cat([branch(x) for branch in self.branches], dim=1)
        return torch.relu(y + self.shortcut(x)) if self.shortcut is not None else y


@dataclass(frozen=True)
class Stage:
    """One stage: ``blocks`` blocks of type ``block`` with ``width`` output channels; the first one
    strides by ``stride``. ``shortcut`` adds the input around each block (default: residual yes,
    inception no). A config entry instantiates it (``_target_``); :class:`ScratchNet` checks it."""

    block: str
    blocks: int
    width: int
    stride: int = 1
    shortcut: bool | None = None

    def check(self, where: str) -> None:
        if self.block not in BLOCKS:
            raise ImgrecError(f"{where}.block={self.block!r}: expected one of {', '.join(BLOCKS)}")
        _check_sizes(where, self.blocks, self.width, self.stride)

    def build(self, c_in: int) -> nn.Sequential:
        cls = ResidualBlock if self.block == "residual" else InceptionBlock
        shortcut = (self.block == "residual") if self.shortcut is None else self.shortcut
        return nn.Sequential(*(cls(c_in if k == 0 else self.width, self.width, self.stride if k == 0 else 1, shortcut)
                               for k in range(self.blocks)))


@dataclass(frozen=True)
class Stem:
    """A ``kernel`` x ``kernel`` convolution to ``width`` channels with ``stride``; ``pool`` adds a 3x3
    stride-2 max-pool after it (ResNet's stem)."""

    width: int
    kernel: int = 3
    stride: int = 1
    pool: bool = False

    def check(self, where: str) -> None:
        _check_sizes(where, self.width, self.kernel, self.stride)

    def build(self) -> nn.Sequential:
        layers = conv_bn(3, self.width, self.kernel, self.stride)
        return nn.Sequential(*layers, nn.MaxPool2d(3, 2, 1)) if self.pool else layers


def _check_sizes(where: str, *sizes: int) -> None:
    if any(isinstance(n, bool) or not isinstance(n, int) or n < 1 for n in sizes):
        raise ImgrecError(f"{where}: sizes must be positive integers, got {sizes}")


class ScratchNet(nn.Module):
    """A CNN from a config, with no pretrained weights.

    Like a pretrained :class:`Backbone` it takes uint8 NCHW images at any size, resizes them to
    ``input_size`` and normalises inside, so checkpoints are self-contained. Having no pretrained
    statistics to follow, it maps [0, 1] to [-1, 1] with a fixed mean and std of 0.5 per channel
    (batch norm after the first convolution absorbs any remaining offset and scale).

    ``head`` builds the classifier from ``(in_features, num_classes)`` (a :class:`Head` partial).
    ``tta``: ``flip`` averages, in eval mode, the logits of each image and its mirror (:mod:`imgrec.models.tta`).
    """

    def __init__(self, num_classes: int, stem: Stem, stages: Sequence[Stage],
                 head: Callable[[int, int], nn.Module] = Head, input_size: int = 128, tta: str = "none") -> None:
        super().__init__()
        self.tta = check_tta(tta)
        if not stages:
            raise ImgrecError("model.net.stages: at least one stage is needed")
        stem.check("model.net.stem")
        layers: list[nn.Module] = [stem.build()]
        width = stem.width
        for index, stage in enumerate(stages):
            stage.check(f"model.net.stages.{index}")
            layers.append(stage.build(width))
            width = stage.width
        layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten()]
        self.trunk = Backbone(nn.Sequential(*layers), width, "scratch", int(input_size), (0.5,) * 3, (0.5,) * 3)
        self.num_features = width
        self.head = head(width, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return with_tta("none" if self.training else self.tta, lambda images: self.head(self.trunk(images)), x)

    def forward_head(self, features: torch.Tensor, mirrored: torch.Tensor | None = None) -> torch.Tensor:
        """The trunk's features (N, num_features) -> logits, as :meth:`TransferNet.forward_head`."""
        return head_tta("none" if self.training else self.tta, self.head, features, mirrored)
