"""What every predict path shares, torch-free: reading the input folder and writing the prediction files.

Both ``imgrec.predict`` (a checkpoint, PyTorch) and ``imgrec.inference.onnx_predict`` (an ONNX file, onnxruntime)
go through here, so they decode the same pixels and write byte-identical files for the same
probabilities. Nothing here may import torch, Lightning or Hydra.
"""

from __future__ import annotations

import csv
import io
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from imgrec.data.images import decode_images
from imgrec.data.readers import list_images, read_course
from imgrec.evaluation.micro import micro_scores
from imgrec.utils.errors import ImgrecError
from imgrec.utils.io import write_json, write_text

log = logging.getLogger(__name__)


@dataclass
class Inputs:
    images: np.ndarray
    names: list[str]
    targets: np.ndarray | None  # with annotations: in the model's label order


def read_inputs(folder: str | Path, label_names: list[str], image_size: int, on_bad_image: str = "error") -> Inputs:
    """A folder of images, or a course-format folder (``images/``, and ``annotations/`` whose labels must
    be the model's). Images are decoded at ``image_size`` exactly as in training."""
    folder = Path(folder)
    if (folder / "annotations").is_dir():
        note_other_sizes(list_images(folder / "images"), image_size)
        data = read_course(folder, image_size, True, on_bad_image)
        if sorted(data.label_names) != sorted(label_names):
            extra = sorted(set(data.label_names) - set(label_names))
            lacking = sorted(set(label_names) - set(data.label_names))
            raise ImgrecError(f"{folder / 'annotations'}: labels differ from the model's "
                              f"(not in the model: {extra or 'none'}; missing: {lacking or 'none'})")
        order = [data.label_names.index(name) for name in label_names]
        return Inputs(data.images, data.names, data.targets[:, order])
    image_dir = folder / "images" if (folder / "images").is_dir() else folder
    paths = list_images(image_dir)
    if not paths:
        raise ImgrecError(f"{image_dir}: no image files")
    note_other_sizes(paths, image_size)
    images, kept, _ = decode_images(paths, image_size, True, on_bad_image)
    if not kept:
        raise ImgrecError(f"{image_dir}: no readable images")
    return Inputs(images, [paths[i].name for i in kept], None)


def note_other_sizes(paths: list[Path], image_size: int) -> int:
    """Log one line when images are not ``image_size`` square (read from headers only): they are resized
    as training resized them, which is fine for a model trained on resized images and worth knowing
    otherwise. Returns how many differ; unreadable files are left to the decoder's errors."""
    other = []
    for path in paths:
        try:
            with Image.open(path) as img:
                if img.size != (image_size, image_size):
                    other.append((path, img.size))
        except (OSError, SyntaxError, ValueError):
            continue
    if other:
        path, (w, h) = other[0]
        log.warning("note: %d of %d images are not %dx%d, the size the model was trained at (first: %s, %dx%d); "
                    "resized to %dx%d (PIL bilinear, as in training)", len(other), len(paths), image_size,
                    image_size, path, w, h, image_size, image_size)
    return len(other)


def write_predictions(out: Path, inputs: Inputs, probs: np.ndarray, thresholds: np.ndarray,
                      label_names: list[str]) -> np.ndarray:
    """``results.txt``, ``predictions.csv`` (and ``scores.json`` with targets) in ``out``; returns the 0/1
    matrix (``probs > thresholds``)."""
    predicted = (probs > thresholds).astype(int)
    buffer = io.StringIO()
    np.savetxt(buffer, predicted, fmt="%d")
    write_text(out / "results.txt", buffer.getvalue())
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["file", *(f"p_{name}" for name in label_names), "labels"])
    for name, p, row in zip(inputs.names, probs, predicted):
        labels = " ".join(label for label, on in zip(label_names, row) if on)
        writer.writerow([name, *(f"{v:.6f}" for v in p), labels])
    write_text(out / "predictions.csv", buffer.getvalue())
    if inputs.targets is not None:
        scores = micro_scores(inputs.targets, predicted)
        write_json(out / "scores.json", {**scores, "images": len(predicted)})
        log.info("micro F1 %.4f (precision %.4f, recall %.4f) on %d labelled images", scores["f1_micro"],
                 scores["precision"], scores["recall"], len(predicted))
    return predicted
