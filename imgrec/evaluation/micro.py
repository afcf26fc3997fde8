"""The course's score from 0/1 decisions, torch-free (the ONNX predict path and threshold fitting use it)."""

from __future__ import annotations

import numpy as np


def micro_scores(targets: np.ndarray, predicted: np.ndarray) -> dict[str, float]:
    """Micro precision, recall and F1 over the whole images × labels matrix (the course's score)."""
    tp = int(np.sum((predicted == 1) & (targets == 1)))
    n_pred, n_true = int(np.sum(predicted == 1)), int(np.sum(targets == 1))
    precision = tp / n_pred if n_pred else 0.0
    recall = tp / n_true if n_true else 0.0
    f1 = 2 * tp / (n_pred + n_true) if n_pred + n_true else 0.0
    return {"f1_micro": f1, "precision": precision, "recall": recall}
