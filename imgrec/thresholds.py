"""Decision thresholds fitted on validation predictions, and stored in the checkpoint they belong to.

Only validation outputs ever reach :func:`fit_thresholds`: the test split measures the result.
A prediction is positive when ``probability > threshold`` (torchmetrics' rule).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from imgrec.checkpoint_io import AtomicCheckpointIO
from imgrec.errors import ImgrecError


@dataclass(frozen=True)
class Thresholds:
    """One global threshold (maximising micro F1) and one per label (maximising that label's F1).
    ``fitted[j]`` is False where label ``j`` had too little support and uses the global one."""

    global_threshold: float
    per_class: np.ndarray
    fitted: np.ndarray

    def as_meta(self) -> dict[str, object]:
        """The checkpoint contract (``hyper_parameters.meta``): plain floats, in label order."""
        return {"thresholds": [float(t) for t in self.per_class], "global_threshold": float(self.global_threshold)}


def best_f1_threshold(scores: np.ndarray, labels: np.ndarray) -> tuple[float, float]:
    """The threshold maximising F1 of ``scores > threshold`` against 0/1 ``labels``, and that F1.

    Every cut between two distinct sorted scores is tried; the threshold is placed midway between
    the lowest score kept positive and the next one down, not on a score seen in fitting.
    """
    scores, labels = np.asarray(scores, dtype=np.float64).ravel(), np.asarray(labels).ravel().astype(bool)
    if not labels.any():
        return 0.5, 0.0
    order = np.argsort(-scores, kind="stable")
    s, y = scores[order], labels[order]
    tp = np.cumsum(y)
    fp = np.cumsum(~y)
    f1 = 2 * tp / (2 * tp + fp + (labels.sum() - tp))
    cut = np.r_[s[:-1] > s[1:], True]  # a cut after position k separates distinct scores
    k = int(np.argmax(np.where(cut, f1, -1.0)))
    below = s[k + 1] if k + 1 < len(s) else min(0.0, s[k])
    return float((s[k] + below) / 2), float(f1[k])


def fit_thresholds(probs: np.ndarray, targets: np.ndarray, min_support: int) -> Thresholds:
    """Fit on validation outputs. Labels with fewer than ``min_support`` positives get the global
    threshold: a per-label F1 optimum over a handful of positives is mostly noise."""
    if min_support < 1:
        raise ImgrecError(f"thresholds.min_support={min_support}: must be at least 1")
    probs, targets = np.asarray(probs), np.asarray(targets)
    global_threshold, _ = best_f1_threshold(probs, targets)
    fitted = targets.sum(0) >= min_support
    per_class = np.array([best_f1_threshold(probs[:, j], targets[:, j])[0] if fitted[j] else global_threshold
                          for j in range(targets.shape[1])])
    return Thresholds(global_threshold, per_class, fitted)


def write_to_checkpoint(path: str | Path, thresholds: Thresholds) -> None:
    """Add the thresholds to ``hyper_parameters.meta`` of a Lightning checkpoint, atomically."""
    path = Path(path)
    checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    checkpoint.setdefault("hyper_parameters", {}).setdefault("meta", {}).update(thresholds.as_meta())
    AtomicCheckpointIO().save_checkpoint(checkpoint, path)


def cross_fitted_f1(probs: np.ndarray, targets: np.ndarray, min_support: int, folds: int = 2, seed: int = 0) -> float:
    """Micro F1 on val of thresholds fitted on the other folds of val, pooled over the folds: a val-only
    estimate of how a threshold rule (``min_support``) carries to unseen images. Thresholds fitted and
    scored on the same images always look best with one per label; this does not."""
    probs, targets = np.asarray(probs), np.asarray(targets).astype(bool)
    parts = np.array_split(np.random.default_rng(seed).permutation(len(probs)), folds)
    predicted = np.zeros_like(targets)
    for k, part in enumerate(parts):
        rest = np.concatenate([p for j, p in enumerate(parts) if j != k])
        predicted[part] = probs[part] > fit_thresholds(probs[rest], targets[rest], min_support).per_class
    tp = (predicted & targets).sum()
    return float(2 * tp / max(predicted.sum() + targets.sum(), 1))
