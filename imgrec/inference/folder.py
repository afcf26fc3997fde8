"""Predict a folder, torch-free: the one loop of ``imgrec predict``, from a checkpoint or an ONNX file.

The folder is listed, every header checked, then read, inferred and forgotten in chunks of
``CHUNK_BATCHES`` batches: peak memory holds one chunk's pixels whatever the number of images (only the
probabilities, a few floats per image, are kept for the files written at the end). A progress bar counts
the images as they are inferred.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np

from imgrec.data.images import Decoding, decode_images
from imgrec.inference.predictions_io import Predictions, check_headers, list_inputs, write_predictions
from imgrec.utils.errors import ImgrecError
from imgrec.utils.progress import progress

CHUNK_BATCHES = 8  # batches decoded at once

# uint8 (N, H, W, 3) images -> (N, labels) probabilities: a predictor's ``probabilities``
Probabilities = Callable[[np.ndarray], np.ndarray]


def predict_files(paths: list[Path], probabilities: Probabilities, num_labels: int, decoding: Decoding,
                  batch_size: int) -> Predictions:
    """The probabilities of every file of ``paths``; a bad one stops it (``on_bad_image=error``) or is
    skipped and recorded (``skip``)."""
    probs = np.zeros((len(paths), num_labels), dtype=np.float32)
    skipped: dict[int, str] = {}
    chunk = batch_size * CHUNK_BATCHES
    with progress(len(paths), "predict") as bar:
        for start in range(0, len(paths), chunk):
            block = paths[start:start + chunk]
            images, kept, problems = decode_images(block, decoding, bar=False)
            rows = start + np.asarray(kept, dtype=int)
            skipped.update(zip(sorted(set(range(start, start + len(block))) - set(rows.tolist())), problems))
            bar.update(len(block) - len(kept))
            for i in range(0, len(kept), batch_size):
                probs[rows[i:i + batch_size]] = probabilities(images[i:i + batch_size])
                bar.update(len(rows[i:i + batch_size]))
    return Predictions(probs, skipped)


def predict_folder(folder: str | Path, out: str | Path, probabilities: Probabilities, label_names: list[str],
                   thresholds: np.ndarray, decoding: Decoding, batch_size: int) -> np.ndarray:
    """List ``folder``, check every header, infer in chunks, then write ``out``'s files (nothing is
    written when a bad file stops it); returns the 0/1 matrix of ``results.txt``."""
    inputs = list_inputs(folder, label_names)
    check_headers(inputs.paths, decoding)
    predictions = predict_files(inputs.paths, probabilities, len(label_names), decoding, batch_size)
    if len(predictions.skipped) == len(inputs.paths):
        raise ImgrecError(f"{folder}: no readable images ({len(inputs.paths)} skipped; first: "
                          f"{predictions.skipped[0]})")
    return write_predictions(Path(out), inputs, predictions, thresholds, label_names, decoding)
