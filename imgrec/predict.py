"""Predict a folder of images from a checkpoint: ``python -m imgrec.predict ckpt=<file> input=<folder> out=<folder>``.

Writes into ``out``:

- ``results.txt``, the course's submission file: one row per image (``im<N>.jpg`` in numeric order,
  then other names), one 0/1 column per label in the checkpoint's label order, as
  ``np.savetxt(path, y, fmt='%d')``;
- ``predictions.csv``: file name, the probability of each label, the predicted label names;
- ``scores.json`` when ``input`` is a course-format folder with ``annotations/``: micro F1 and more.

The checkpoint carries all it needs (:mod:`imgrec.inference.predictor`); its thresholds are applied with
the rule chosen for them on held-out predictions, by default; ``thresholds=<rule>`` applies another.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
from omegaconf import DictConfig, OmegaConf

from imgrec.config.compose import hydra_command
from imgrec.inference.predictions_io import read_inputs, write_predictions
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
    predictor = load_predictor(cfg.ckpt, cfg.get("thresholds"), device)
    log.info("thresholds: %s; device: %s", predictor.rule, device)
    inputs = read_inputs(cfg.input, predictor.label_names, predictor.image_size, cfg.on_bad_image)
    probs = predictor.probabilities(inputs.images, cfg.batch_size)
    out = Path(cfg.out)
    predicted = write_predictions(out, inputs, probs, predictor.thresholds, predictor.label_names)
    log.info("%d images, %d labels: wrote %s and %s", len(predicted), len(predictor.label_names),
             out / "results.txt", out / "predictions.csv")
    return predicted


main = hydra_command("predict", predict)


if __name__ == "__main__":
    main()
