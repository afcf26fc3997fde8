"""Predict a folder of images from a checkpoint: ``python -m imgrec.predict ckpt=<file> input=<folder> out=<folder>``.

Writes into ``out``:

- ``results.txt``, the course's submission file: one row per image (``im<N>.jpg`` in numeric order,
  then other names), one 0/1 column per label in the checkpoint's label order, as
  ``np.savetxt(path, y, fmt='%d')``; an image skipped as bad keeps its row, all 0;
- ``predictions.csv``: file name, the probability of each label, the predicted label names, and why
  the file was skipped (empty for the others); ``skipped.txt`` when any was;
- ``scores.json`` when ``input`` is a course-format folder with ``annotations/``: micro F1 and more.

The checkpoint carries all it needs (:mod:`imgrec.inference.predictor`); its thresholds are applied with
the rule chosen for them on held-out predictions, by default; ``thresholds=<rule>`` applies another.
The backbones run on ``engine`` (``auto``: as the feature cache runs them), the folder is streamed in
chunks (:mod:`imgrec.inference.folder`).
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
from omegaconf import DictConfig, OmegaConf

from imgrec.config.compose import hydra_command
from imgrec.data.images import Decoding
from imgrec.features.allocator import heap_allocations
from imgrec.inference.folder import predict_folder
from imgrec.inference.predictor import load_predictor
from imgrec.utils.device import resolve_device
from imgrec.utils.errors import ImgrecError

log = logging.getLogger(__name__)


def predict(cfg: DictConfig) -> np.ndarray:
    for key in ("ckpt", "input"):
        if OmegaConf.is_missing(cfg, key):
            raise ImgrecError(f"{key}=... is required: python -m imgrec.predict ckpt=<file> input=<folder> "
                              "out=<folder>")
    device = resolve_device(cfg.get("device", "auto"))
    predictor = load_predictor(cfg.ckpt, cfg.get("thresholds"), cfg.engine, device)
    log.info("thresholds: %s; device: %s", predictor.rule, device)
    decoding = Decoding(predictor.image_size, True, cfg.on_bad_image, cfg.max_pixels, prefix="")
    out = Path(cfg.out)
    with heap_allocations():  # as extraction: eager's activations would fault in fresh pages every batch
        predicted = predict_folder(cfg.input, out, lambda images: predictor.probabilities(images, cfg.batch_size),
                                   predictor.label_names, predictor.thresholds, decoding, cfg.batch_size)
    log.info("%d images, %d labels: wrote %s and %s", len(predicted), len(predictor.label_names),
             out / "results.txt", out / "predictions.csv")
    return predicted


main = hydra_command("predict", predict)


if __name__ == "__main__":
    main()
