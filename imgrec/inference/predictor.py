"""A checkpoint of ``imgrec.run`` rebuilt for prediction: its net, metadata and threshold rule.

The checkpoint carries all it needs (:class:`imgrec.models.checkpoint.CheckpointMeta`): the net's config,
rebuilt with pretrained weights off since the checkpoint holds the weights; per backbone its input size
and normalisation; the size images were decoded at; the thresholds fitted on held-out predictions and
the rule chosen for them (``0.5``, ``global`` or ``per_label``, see :mod:`imgrec.evaluation.thresholds`).

Every net is its backbones (a scratch net's trunk is one) with a head on their concatenated features.
:meth:`Predictor.probabilities` runs each backbone through the engine the feature cache would use
(:func:`imgrec.features.engines.settle_encoder`: OpenVINO, onnxruntime or eager) and the small head
eagerly: the head sees features computed as training's cached ones were, and all inference goes
through that one method.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from hydra.utils import instantiate
from omegaconf import DictConfig, ListConfig, OmegaConf
from torch import nn

from imgrec.features.engines import check_setting, settle_encoder
from imgrec.features.extraction import Encoder
from imgrec.features.mirror import mirror
from imgrec.models.checkpoint import CheckpointMeta, read_checkpoint
from imgrec.models.summary import backbones_of
from imgrec.models.tta import uses_flip
from imgrec.utils.errors import ImgrecError

log = logging.getLogger(__name__)


@dataclass
class Predictor:
    net: nn.Module  # in eval mode, on ``device``
    meta: CheckpointMeta
    rule: str  # the threshold rule applied
    engine: str = "eager"  # what runs the backbones: a setting of imgrec.features.engines.SETTINGS
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    encoders: list[Encoder] | None = field(default=None, repr=False)  # one per distinct backbone, settled on
    order: list[int] = field(default_factory=list, repr=False)  # the first batch; per backbone, its encoder

    @property
    def label_names(self) -> list[str]:
        return self.meta.label_names

    @property
    def image_size(self) -> int:  # images are decoded at this size, as in training
        return int(self.meta.image_size)

    @property
    def thresholds(self) -> np.ndarray:  # one per label: those of ``rule``
        return self.meta.applied.applied(self.rule).astype(np.float32)

    def probabilities(self, images: np.ndarray, batch_size: int = 64) -> np.ndarray:
        """``(N, H, W, 3)`` uint8 -> ``(N, labels)`` probabilities, ``batch_size`` images at a time."""
        chunks = []
        for start in range(0, len(images), batch_size):
            batch = np.require(images[start:start + batch_size], requirements=("C", "W"))  # a memmap is read-only
            x = torch.from_numpy(batch).permute(0, 3, 1, 2)
            features = self._features(x)
            mirrored = self._features(mirror(x)) if uses_flip(self.net) else None  # flip TTA, as evaluation did
            with torch.inference_mode():
                chunks.append(torch.sigmoid(self.net.forward_head(features, mirrored)).float().cpu())
        return torch.cat(chunks).numpy()

    def _features(self, x: torch.Tensor) -> torch.Tensor:
        """The backbones' features concatenated in the net's order; each distinct backbone runs once."""
        computed = [encode(x) for encode in self._encoders(x)]
        return torch.cat([computed[k] for k in self.order], dim=1).to(self.device)

    def _encoders(self, first: torch.Tensor) -> list[Encoder]:
        """An encoder per distinct backbone (:func:`distinct`), settled once, on one image of the first batch."""
        if self.encoders is None:
            backbones = backbones_of(self.net)
            self.order = distinct(backbones)
            self.encoders = []
            for k in sorted(set(self.order)):
                backbone = backbones[self.order.index(k)]
                engine, encode = settle_encoder(backbone, self.engine, self.device, first[:1], task="predict",
                                                verb="predicting")
                log.info("predict: %s (%d px) runs on %s%s", backbone.name, backbone.input_size, engine,
                         f", once for {self.order.count(k)} of the net's backbones" if self.order.count(k) > 1 else "")
                self.encoders.append(encode)
        return self.encoders


def distinct(backbones: list[nn.Module]) -> list[int]:
    """For each backbone the number of the distinct backbone it equals, numbered in order of appearance.
    Two are equal when they are of one class, at one input size, with every parameter and buffer equal:
    the frozen members of a selected ensemble that share a pretrained backbone (a linear and a hidden-layer
    head on Lite2, say) compute the same features, so predict computes them once."""
    firsts: list[nn.Module] = []
    order = []
    for backbone in backbones:
        k = next((k for k, other in enumerate(firsts) if same_function(other, backbone)), len(firsts))
        if k == len(firsts):
            firsts.append(backbone)
        order.append(k)
    return order


def same_function(a: nn.Module, b: nn.Module) -> bool:
    if type(a) is not type(b) or getattr(a, "input_size", None) != getattr(b, "input_size", None):
        return False
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(sa[k].shape == sb[k].shape and torch.equal(sa[k], sb[k]) for k in sa)


def load_predictor(path: str | Path, rule: str | None = None, engine: str = "eager",
                   device: torch.device | None = None) -> Predictor:
    """Rebuild the net of an ``imgrec.run`` checkpoint, loaded with ``weights_only=True``, on ``device``
    (default: the CPU; :func:`imgrec.utils.device.resolve_device` turns a setting into one); ``rule``
    overrides the checkpoint's threshold rule; ``engine`` runs the backbones (``predict``'s setting)."""
    check_setting(engine, "engine")
    meta, ckpt = read_checkpoint(path)
    net = rebuild_net(meta)
    state = {k.removeprefix("net."): v for k, v in ckpt["state_dict"].items() if k.startswith("net.")}
    net.load_state_dict(state)
    rule = meta.applied.rule if rule is None else str(rule)  # thresholds=0.5 arrives as a float
    meta.applied.applied(rule)  # an unknown rule fails here, before any image is read
    device = device or torch.device("cpu")
    return Predictor(net.eval().to(device), meta, rule, engine, device)


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
