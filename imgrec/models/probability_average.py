"""One net from several trained ones: the weighted mean of the member nets' probabilities.

This is what ensemble selection (:mod:`imgrec.reporting.selection`) writes: each member is a whole net
(a transfer net with its own backbones and sizes, a scratch net, ...), rebuilt from its own config, so
the members keep every setting of theirs. It is not the study's "ensemble" (``model=ensemble``: one
:class:`~imgrec.models.transfer.TransferNet` whose backbones' features feed one head).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
import yaml
from omegaconf import OmegaConf
from torch import nn

from imgrec.models.checkpoint import CheckpointMeta
from imgrec.models.summary import backbones_of
from imgrec.utils.errors import ImgrecError

EPS = 1e-6  # the mean probability is clamped to [EPS, 1 - EPS] before its logit


class ProbabilityAverageNet(nn.Module):
    """``members``: factories taking ``num_classes`` (Hydra partials of each member's net config);
    ``weights``: one per member, normalised to sum to 1.

    ``forward`` returns the logit of the weighted mean probability, so that the sigmoid that predict and
    the ONNX graph apply to any net's output gives back the mean (up to the clamp at ``EPS``)."""

    def __init__(self, members: Sequence[Callable[..., nn.Module]], weights: Sequence[float],
                 num_classes: int) -> None:
        super().__init__()
        if not members or len(members) != len(weights) or min(weights) <= 0:
            raise ImgrecError(f"ProbabilityAverageNet: {len(members)} members need as many positive weights "
                              f"(got {list(weights)})")
        self.members = nn.ModuleList(member(num_classes=num_classes) for member in members)
        weights = torch.tensor([float(w) for w in weights], dtype=torch.float32)
        self.register_buffer("weights", weights / weights.sum(), persistent=False)  # the config holds them

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """uint8 images (N, 3, H, W) -> logits of the weighted mean probability."""
        return self._mean_logit([m(x) for m in self.members])

    def forward_head(self, features: torch.Tensor, mirrored: torch.Tensor | None = None) -> torch.Tensor:
        """The features of every member's backbones, concatenated in member order (as predict's engines
        compute them for :func:`~imgrec.models.summary.backbones_of` of this net), and those of the
        mirrored images when a member uses flip TTA -> logits."""
        logits, start = [], 0
        for member in self.members:
            end = start + sum(b.num_features for b in backbones_of(member))
            part = None if mirrored is None else mirrored[:, start:end]
            logits.append(member.forward_head(features[:, start:end], part))
            start = end
        return self._mean_logit(logits)

    def _mean_logit(self, logits: list[torch.Tensor]) -> torch.Tensor:
        mean = sum(w * torch.sigmoid(z.float()) for w, z in zip(self.weights, logits))
        p = mean.clamp(EPS, 1 - EPS)
        return torch.log(p) - torch.log(1 - p)


def average_checkpoint(members: Sequence[tuple[CheckpointMeta, dict[str, Any]]],
                       weights: Sequence[float]) -> tuple[CheckpointMeta, dict[str, Any]]:
    """The checkpoint of a :class:`ProbabilityAverageNet` over the members' checkpoints (as
    :func:`~imgrec.models.checkpoint.read_checkpoint` returns them): its net config lists theirs, its
    state dict holds theirs under ``net.members.<i>.``; no thresholds yet."""
    config = {"_target_": f"{__name__}.{ProbabilityAverageNet.__name__}", "_partial_": True,
              "_convert_": "object",  # the members reach the net as partials, not as a ListConfig
              "weights": [float(w) for w in weights],
              "members": [yaml.safe_load(meta.net_config) for meta, _ in members]}
    state = {f"net.members.{i}.{key.removeprefix('net.')}": value
             for i, (_, ckpt) in enumerate(members) for key, value in ckpt["state_dict"].items()
             if key.startswith("net.")}
    meta = CheckpointMeta.of_members([meta for meta, _ in members], OmegaConf.to_yaml(OmegaConf.create(config)))
    return meta, {"state_dict": state}
