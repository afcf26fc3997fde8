"""Predict a folder of images from a checkpoint: ``python -m imgrec.predict ckpt=<file> input=<folder> out=<folder>``.

Writes into ``out``:

- ``results.txt``, the course's submission file: one row per image (``im<N>.jpg`` in numeric order,
  then other names), one 0/1 column per label in the checkpoint's label order, as
  ``np.savetxt(path, y, fmt='%d')``;
- ``predictions.csv``: file name, the probability of each label, the predicted label names;
- ``scores.json`` when ``input`` is a course-format folder with ``annotations/``: micro F1 and more.

The checkpoint carries all it needs (:class:`imgrec.checkpoint_meta.CheckpointMeta`): the net's config,
rebuilt with pretrained weights off since the checkpoint holds the weights; per backbone its input size
and normalisation; the size images were decoded at; the thresholds fitted on held-out predictions and
the rule chosen for them (``0.5``, ``global`` or ``per_label``, see :mod:`imgrec.thresholds`), applied
by default; ``thresholds=<rule>`` applies another.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import hydra
import numpy as np
import torch
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf
from torch import nn

from imgrec.checkpoint_meta import CheckpointMeta, read_checkpoint
from imgrec.config import CONF_DIR
from imgrec.errors import ImgrecError, exit_on_user_error
from imgrec.models.summary import backbones_of
from imgrec.predictions_io import read_inputs, write_predictions

log = logging.getLogger(__name__)

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
        """``(N, H, W, 3)`` uint8 -> ``(N, labels)`` probabilities."""
        chunks = [torch.sigmoid(self.net(torch.from_numpy(images[i:i + batch_size]).permute(0, 3, 1, 2)))
                  for i in range(0, len(images), batch_size)]
        return torch.cat(chunks).float().numpy()


def load_predictor(path: str | Path, rule: str | None = None) -> Predictor:
    """Rebuild the net of an ``imgrec.run`` checkpoint, loaded with ``weights_only=True``; ``rule``
    overrides the checkpoint's threshold rule."""
    meta, ckpt = read_checkpoint(path)
    net = rebuild_net(meta)
    state = {k.removeprefix("net."): v for k, v in ckpt["state_dict"].items() if k.startswith("net.")}
    net.load_state_dict(state)
    rule = meta.applied.rule if rule is None else str(rule)  # thresholds=0.5 arrives as a float
    meta.applied.applied(rule)  # an unknown rule fails here, before any image is read
    return Predictor(net.eval(), meta, rule)


def rebuild_net(meta: CheckpointMeta) -> nn.Module:
    """The net from its stored config, with no pretrained weights to fetch, then the stored input sizes
    and normalisation (a backbone built without weights may default to others)."""
    cfg = OmegaConf.create(meta.net_config)
    for backbone in cfg.get("backbones") or []:
        backbone.pretrained, backbone.checkpoint = False, None
    net = instantiate(cfg)(num_classes=len(meta.label_names))
    backbones = backbones_of(net)
    if len(backbones) != len(meta.input_sizes):
        raise ImgrecError(f"checkpoint describes {len(meta.input_sizes)} backbone(s), its net has {len(backbones)}")
    for b, size, norm in zip(backbones, meta.input_sizes, meta.normalisation):
        b.input_size = int(size)
        b.mean.copy_(torch.tensor(norm["mean"]).view_as(b.mean))
        b.std.copy_(torch.tensor(norm["std"]).view_as(b.std))
    return net


def predict(cfg: DictConfig) -> np.ndarray:
    for key in ("ckpt", "input"):
        if OmegaConf.is_missing(cfg, key):
            raise ImgrecError(f"{key}=... is required: python -m imgrec.predict ckpt=<file> input=<folder> "
                              "out=<folder>")
    predictor = load_predictor(cfg.ckpt, cfg.get("thresholds"))
    log.info("thresholds: %s", predictor.rule)
    inputs = read_inputs(cfg.input, predictor.label_names, predictor.image_size, cfg.on_bad_image)
    probs = predictor.probabilities(inputs.images, cfg.batch_size)
    out = Path(cfg.out)
    predicted = write_predictions(out, inputs, probs, predictor.thresholds, predictor.label_names)
    log.info("%d images, %d labels: wrote %s and %s", len(predicted), len(predictor.label_names),
             out / "results.txt", out / "predictions.csv")
    return predicted


@hydra.main(version_base="1.3", config_path=str(CONF_DIR), config_name="predict")
def main(cfg: DictConfig) -> None:
    exit_on_user_error(predict, cfg)


if __name__ == "__main__":
    main()
