"""Predict with an exported ONNX model, no training stack: ``imgrec predict model=<file.onnx> input=<folder>
[out=<folder>] [thresholds=0.5|global|per_label] [batch_size=64] [on_bad_image=error|skip] [max_pixels=N]``.

Imports numpy, onnxruntime, PIL and torch-free imgrec modules only (``pip install imgrec[onnx]``); no
torch, Lightning or Hydra. Reads the folder in chunks and writes ``results.txt``, ``predictions.csv`` (and
``scores.json`` for a course-format folder) through :mod:`imgrec.inference.folder`, as the checkpoint
path does. The model's own metadata (written by :mod:`imgrec.inference.onnx_export`) gives the label names, the
decoded image size and the thresholds; without it the file is not taken.
"""

from __future__ import annotations

import json
import logging
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnxruntime as ort

from imgrec.data.images import Decoding
from imgrec.inference.folder import predict_folder
from imgrec.utils.errors import ImgrecError, exit_on_user_error

log = logging.getLogger(__name__)

PREFIX = "imgrec."
MARKER, FORMAT_VERSION = "imgrec.format", "1"  # the key that makes an ONNX file imgrec's
REQUIRED = ("label_names", "image_size", "threshold_rule", "thresholds")
RULES = ("0.5", "global", "per_label")
# The command's settings and their defaults (the same as conf/predict.yaml's but engine, the checkpoint's
# alone; a test compares them).
DEFAULTS = {"model": None, "input": None, "out": "predictions", "batch_size": 64, "on_bad_image": "error",
            "max_pixels": None, "thresholds": None}


def encode_metadata(meta: dict) -> dict[str, str]:
    """``metadata_props`` of an exported model: the marker, then every value as JSON under ``imgrec.<key>``."""
    return {MARKER: FORMAT_VERSION, **{PREFIX + key: json.dumps(value) for key, value in meta.items()}}


def decode_metadata(props: dict[str, str], path: Path) -> dict:
    if props.get(MARKER) != FORMAT_VERSION:
        found = f"format {props[MARKER]!r}" if MARKER in props else "no imgrec metadata"
        raise ImgrecError(f"{path}: not an imgrec ONNX model ({found}); export one with "
                          "imgrec export ckpt=<file> format=onnx")
    try:
        meta = {key.removeprefix(PREFIX): json.loads(value) for key, value in props.items()
                if key.startswith(PREFIX) and key != MARKER}
    except json.JSONDecodeError as err:
        raise ImgrecError(f"{path}: imgrec metadata is not valid JSON ({err})") from err
    missing = [key for key in REQUIRED if key not in meta]
    if missing:
        raise ImgrecError(f"{path}: imgrec metadata lacks {', '.join(missing)}")
    return meta


@dataclass
class OnnxPredictor:
    session: ort.InferenceSession
    label_names: list[str]
    thresholds: np.ndarray  # one per label, the rule applied
    rule: str
    image_size: int

    def probabilities(self, images: np.ndarray, batch_size: int = 64) -> np.ndarray:
        """``(N, H, W, 3)`` uint8 -> ``(N, labels)`` probabilities."""
        name = self.session.get_inputs()[0].name
        chunks = [self.session.run(None, {name: np.ascontiguousarray(images[i:i + batch_size])})[0]
                  for i in range(0, len(images), batch_size)]
        return np.concatenate(chunks).astype(np.float32)


def load_onnx(path: str | Path, rule: str | None = None) -> OnnxPredictor:
    """An exported model, with the stored threshold rule or ``rule`` (``0.5``, ``global``, ``per_label``)."""
    path = Path(path)
    if not path.is_file():
        raise ImgrecError(f"{path}: model file not found")
    try:
        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    except Exception as err:  # onnxruntime raises its own exception types for truncated or foreign files
        raise ImgrecError(f"{path}: not a readable ONNX model ({type(err).__name__}: "
                          f"{str(err).splitlines()[0][:200]})") from err
    meta = decode_metadata(session.get_modelmeta().custom_metadata_map, path)
    labels, size = list(meta["label_names"]), int(meta["image_size"])
    shape = session.get_inputs()[0].shape
    if len(shape) != 4 or list(shape[1:]) != [size, size, 3]:
        raise ImgrecError(f"{path}: input shape {shape} does not match the image size {size} in its metadata")
    thresholds = choose_thresholds(meta, rule, path)
    if thresholds.shape != (len(labels),):
        raise ImgrecError(f"{path}: {thresholds.size} thresholds for {len(labels)} labels")
    return OnnxPredictor(session, labels, thresholds, rule or meta["threshold_rule"], size)


def choose_thresholds(meta: dict, rule: str | None, path: Path) -> np.ndarray:
    n = len(meta["label_names"])
    if rule is None:
        return np.asarray(meta["thresholds"], dtype=np.float32)
    if rule not in RULES:
        raise ImgrecError(f"thresholds={rule}: expected one of {', '.join(RULES)}")
    if rule == "0.5":
        return np.full(n, 0.5, dtype=np.float32)
    stored = meta.get("global_threshold") if rule == "global" else meta.get("per_label_thresholds")
    if stored is None:
        raise ImgrecError(f"{path}: thresholds={rule}, but the model stores no tuned thresholds")
    return np.broadcast_to(np.asarray(stored, dtype=np.float32), (n,)).copy()


def parse_args(argv: list[str]) -> dict:
    """``key=value`` arguments, as the checkpoint path's Hydra overrides look."""
    settings = dict(DEFAULTS)
    for arg in argv:
        key, eq, value = arg.partition("=")
        if not eq or key not in DEFAULTS:
            raise ImgrecError(f"{arg}: expected key=value with key one of {', '.join(DEFAULTS)}")
        settings[key] = value
    for key in ("model", "input"):
        if settings[key] is None:
            raise ImgrecError(f"{key}=... is required: imgrec predict model=<file.onnx> input=<folder> out=<folder>")
    try:
        settings["batch_size"] = int(settings["batch_size"])
    except ValueError as err:
        raise ImgrecError(f"batch_size={settings['batch_size']}: not an integer") from err
    if settings["max_pixels"] in ("null", "None", ""):
        settings["max_pixels"] = None
    elif settings["max_pixels"] is not None:
        try:
            settings["max_pixels"] = float(settings["max_pixels"])  # 1e9 as on Hydra's command line
        except ValueError as err:
            raise ImgrecError(f"max_pixels={settings['max_pixels']}: not a number") from err
    return settings


def predict(settings: dict) -> np.ndarray:
    predictor = load_onnx(settings["model"], settings["thresholds"])
    decoding = Decoding(predictor.image_size, True, settings["on_bad_image"], settings["max_pixels"], prefix="")
    out, batch_size = Path(settings["out"]), settings["batch_size"]
    predicted = predict_folder(settings["input"], out, lambda images: predictor.probabilities(images, batch_size),
                               predictor.label_names, predictor.thresholds, decoding, batch_size)
    log.info("%d images, %d labels (thresholds: %s): wrote %s and %s", len(predicted), len(predictor.label_names),
             predictor.rule, out / "results.txt", out / "predictions.csv")
    return predicted


def main(argv: list[str] | None = None) -> None:
    logging.basicConfig(level=logging.INFO, format="[%(asctime)s][%(name)s][%(levelname)s] - %(message)s")
    exit_on_user_error(lambda: predict(parse_args(sys.argv[1:] if argv is None else argv)))


if __name__ == "__main__":
    main()
