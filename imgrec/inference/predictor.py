"""A checkpoint of ``imgrec.run`` rebuilt for prediction: its net, metadata and threshold rule.

The checkpoint carries all it needs (:class:`imgrec.models.checkpoint.CheckpointMeta`): the net's config,
rebuilt with pretrained weights off since the checkpoint holds the weights; per backbone its input size
and normalisation; the size images were decoded at; the thresholds fitted on held-out predictions and
the rule chosen for them (``0.5``, ``global`` or ``per_label``, see :mod:`imgrec.evaluation.thresholds`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from hydra.utils import instantiate
from omegaconf import DictConfig, ListConfig, OmegaConf
from torch import nn

from imgrec.models.checkpoint import CheckpointMeta, read_checkpoint
from imgrec.models.summary import backbones_of
from imgrec.utils.errors import ImgrecError


@dataclass
class Predictor:
    net: nn.Module
    meta: CheckpointMeta
    rule: str  # the threshold rule applied

    @property
    def label_names(self) -> list[str]:
        return self.meta.label_names

    @property
    def image_size(self) -> int:  # images are decoded at this size, as in training
        return int(self.meta.image_size)

    @property
    def thresholds(self) -> np.ndarray:  # one per label: those of ``rule``
        return self.meta.applied.applied(self.rule).astype(np.float32)

    @torch.inference_mode()
    def probabilities(self, images: np.ndarray, batch_size: int = 64) -> np.ndarray:
        """``(N, H, W, 3)`` uint8 -> ``(N, labels)`` probabilities, computed in float32 on the net's device
        (the uint8 batches go there: a quarter of the bytes of float ones)."""
        device = next(self.net.parameters()).device
        chunks = [torch.sigmoid(self.net(torch.from_numpy(images[i:i + batch_size]).to(device).permute(0, 3, 1, 2)))
                  .float().cpu() for i in range(0, len(images), batch_size)]
        return torch.cat(chunks).numpy()


def load_predictor(path: str | Path, rule: str | None = None, device: torch.device | None = None) -> Predictor:
    """Rebuild the net of an ``imgrec.run`` checkpoint, loaded with ``weights_only=True``, on ``device``
    (default: the CPU; :func:`imgrec.utils.device.resolve_device` turns a setting into one); ``rule``
    overrides the checkpoint's threshold rule."""
    meta, ckpt = read_checkpoint(path)
    net = rebuild_net(meta)
    state = {k.removeprefix("net."): v for k, v in ckpt["state_dict"].items() if k.startswith("net.")}
    net.load_state_dict(state)
    rule = meta.applied.rule if rule is None else str(rule)  # thresholds=0.5 arrives as a float
    meta.applied.applied(rule)  # an unknown rule fails here, before any image is read
    return Predictor(net.eval().to(device or torch.device("cpu")), meta, rule)


def rebuild_net(meta: CheckpointMeta) -> nn.Module:
    """The net from its stored config, with no pretrained weights to fetch, then the stored input sizes
    and normalisation (a backbone built without weights may default to others)."""
    cfg = OmegaConf.create(meta.net_config)
    without_weights(cfg)
    net = instantiate(cfg)(num_classes=len(meta.label_names))
    backbones = backbones_of(net)
    if len(backbones) != len(meta.input_sizes):
        raise ImgrecError(f"checkpoint describes {len(meta.input_sizes)} backbone(s), its net has {len(backbones)}")
    for b, size, norm in zip(backbones, meta.input_sizes, meta.normalisation):
        b.input_size = int(size)
        b.mean.copy_(torch.tensor(norm["mean"]).view_as(b.mean))
        b.std.copy_(torch.tensor(norm["std"]).view_as(b.std))
    return net


def without_weights(cfg: DictConfig | ListConfig) -> None:
    """Turn off fetching weights in every ``backbones`` list of a net config, also those of nets nested
    in it (the members of a :class:`~imgrec.models.probability_average.ProbabilityAverageNet`)."""
    for key, node in cfg.items() if isinstance(cfg, DictConfig) else enumerate(cfg):
        if key == "backbones" and isinstance(node, ListConfig):
            for backbone in node:
                backbone.pretrained, backbone.checkpoint = False, None
        elif isinstance(node, DictConfig | ListConfig):
            without_weights(node)
