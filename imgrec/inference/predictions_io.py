"""What every predict path shares, torch-free: listing the input folder and writing the prediction files.

Both ``imgrec.predict`` (a checkpoint, PyTorch) and ``imgrec.inference.onnx_predict`` (an ONNX file, onnxruntime)
go through here and :mod:`imgrec.inference.folder`, so they decode the same pixels and write
byte-identical files for the same probabilities. Nothing here may import torch, Lightning or Hydra.

A file skipped as bad (``on_bad_image=skip``) keeps its row: ``results.txt`` has one row per listed
image, whatever was skipped, and a skipped image's row is all 0 (no label: what about half of the
course's test images truly have), so row N is always the N-th image and a grader never scores an image
against another's labels. The warning, ``skipped.txt`` and the ``skipped`` column of
``predictions.csv`` name each one.
"""

from __future__ import annotations

import csv
import io
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from imgrec.data.images import Decoding, display, open_image
from imgrec.data.readers import course_listing, list_images
from imgrec.evaluation.micro import micro_scores
from imgrec.utils.errors import ImgrecError
from imgrec.utils.io import write_json, write_text

log = logging.getLogger(__name__)


@dataclass
class Inputs:
    paths: list[Path]
    targets: np.ndarray | None  # with annotations: in the model's label order

    @property
    def names(self) -> list[str]:
        return [display(p.name) for p in self.paths]


@dataclass
class Predictions:
    probs: np.ndarray  # (N, labels) float32, one row per input; a skipped file's row is 0
    skipped: dict[int, str]  # row -> why that file was skipped

    def predicted(self, thresholds: np.ndarray) -> np.ndarray:
        """The 0/1 decisions (``probs > thresholds``); a skipped file's row is all 0."""
        predicted = (self.probs > thresholds).astype(int)
        predicted[list(self.skipped)] = 0
        return predicted


def list_inputs(folder: str | Path, label_names: list[str]) -> Inputs:
    """A folder of images, or a course-format folder (``images/``, and ``annotations/`` whose labels must
    be the model's); nothing is decoded yet."""
    folder = Path(folder)
    if (folder / "annotations").is_dir():
        paths, targets, names = course_listing(folder)
        if sorted(names) != sorted(label_names):
            extra = sorted(set(names) - set(label_names))
            lacking = sorted(set(label_names) - set(names))
            raise ImgrecError(f"{folder / 'annotations'}: labels differ from the model's "
                              f"(not in the model: {extra or 'none'}; missing: {lacking or 'none'})")
        return Inputs(paths, targets[:, [names.index(name) for name in label_names]])
    image_dir = folder / "images" if (folder / "images").is_dir() else folder
    paths = list_images(image_dir)
    if not paths:
        raise ImgrecError(f"{image_dir}: no image files")
    return Inputs(paths, None)


def check_headers(paths: list[Path], decoding: Decoding) -> int:
    """Read every header before any inference: with ``on_bad_image=error`` a file whose header is bad
    (empty, not an image, too large...) stops the command here, not minutes later. Logs one line when
    images are not ``decoding.size`` square: they are resized as training resized them, which is fine
    for a model trained on resized images and worth knowing otherwise. Returns how many differ."""
    other = []
    for path in paths:
        try:
            with open_image(path, decoding) as img:
                if img.size != (decoding.size, decoding.size):
                    other.append((path, img.size))
        except ImgrecError:
            if decoding.on_bad_image == "error":
                raise
    if other:
        path, (w, h) = other[0]
        size = decoding.size
        log.warning("note: %d of %d images are not %dx%d, the size the model was trained at (first: %s, %dx%d); "
                    "resized to %dx%d (PIL bilinear, as in training)", len(other), len(paths), size, size,
                    display(path), w, h, size, size)
    return len(other)


def write_predictions(out: Path, inputs: Inputs, predictions: Predictions, thresholds: np.ndarray,
                      label_names: list[str], decoding: Decoding) -> np.ndarray:
    """``results.txt``, ``predictions.csv`` (``skipped.txt`` when files were skipped, ``scores.json`` with
    targets) in ``out``; returns the 0/1 matrix."""
    predicted = predictions.predicted(thresholds)
    buffer = io.StringIO()
    np.savetxt(buffer, predicted, fmt="%d")
    write_text(out / "results.txt", buffer.getvalue())
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["file", *(f"p_{name}" for name in label_names), "labels", "skipped"])
    for i, (name, p, row) in enumerate(zip(inputs.names, predictions.probs, predicted)):
        if i in predictions.skipped:
            writer.writerow([name, *([""] * len(label_names)), "", predictions.skipped[i]])
            continue
        labels = " ".join(label for label, on in zip(label_names, row) if on)
        writer.writerow([name, *(f"{v:.6f}" for v in p), labels, ""])
    write_text(out / "predictions.csv", buffer.getvalue())
    report_skipped(out, inputs, predictions.skipped, decoding)
    if inputs.targets is not None:
        scores = {**micro_scores(inputs.targets, predicted), "images": len(predicted),
                  "skipped": len(predictions.skipped)}
        write_json(out / "scores.json", scores)
        log.info("micro F1 %.4f (precision %.4f, recall %.4f) on %d labelled images%s", scores["f1_micro"],
                 scores["precision"], scores["recall"], len(predicted),
                 f" ({len(predictions.skipped)} skipped, scored as no label)" if predictions.skipped else "")
    return predicted


def report_skipped(out: Path, inputs: Inputs, skipped: dict[int, str], decoding: Decoding) -> None:
    """``skipped.txt`` (a row of results.txt, tab, why) and one warning line; a stale one is removed."""
    path = out / "skipped.txt"
    if not skipped:
        path.unlink(missing_ok=True)  # from an earlier prediction into the same folder
        return
    write_text(path, "".join(f"{i + 1}\t{why}\n" for i, why in sorted(skipped.items())))
    named = [f"{inputs.names[i]} (row {i + 1})" for i in sorted(skipped)]
    log.warning("skipped %d bad image(s) (%s=skip): %s; their rows in results.txt are all 0, reasons in %s",
                len(skipped), decoding.key("on_bad_image"), ", ".join(named[:5]) + (", ..." if len(named) > 5 else ""),
                path)
