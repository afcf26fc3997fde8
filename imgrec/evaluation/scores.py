"""Metrics of saved predictions at any thresholds, with the same torchmetrics objects the module logs."""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch
from torchmetrics.classification import MultilabelStatScores

from imgrec.evaluation.metrics import MultilabelMeanAP, ranking_metrics, thresholded_metrics

# Display order of the summary table (names as logged, without the split prefix).
SUMMARY_ORDER = ["f1_micro", "f1_macro", "f1_weighted", "f1_samples", "precision", "precision_macro",
                 "precision_weighted", "precision_samples", "recall", "recall_macro", "recall_weighted",
                 "recall_samples", "map", "exact_match", "hamming_loss", "accuracy"]


def binarize(probs: np.ndarray, thresholds: float | np.ndarray) -> np.ndarray:
    """0/1 decisions, ``probs > threshold`` per label (a scalar applies to every label)."""
    return (np.asarray(probs) > np.asarray(thresholds, dtype=np.float64)).astype(np.uint8)


def summary(probs: np.ndarray, targets: np.ndarray, thresholds: float | np.ndarray = 0.5) -> dict[str, float]:
    """Every logged metric: decisions at ``thresholds``, mAP from the probabilities."""
    num_labels = targets.shape[1]
    preds, truth = torch.from_numpy(binarize(probs, thresholds)).int(), torch.from_numpy(np.asarray(targets)).int()
    out = {name: float(m(preds, truth)) for name, m in thresholded_metrics(num_labels).items()}
    p = torch.from_numpy(np.asarray(probs, dtype=np.float32))
    out.update({name: float(m(p, truth)) for name, m in ranking_metrics(num_labels).items()})
    return {name: out[name] for name in SUMMARY_ORDER}


def confusion_counts(preds: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """``(C, 4)`` per-label counts, columns TP, FP, TN, FN (torchmetrics' order)."""
    stat = MultilabelStatScores(num_labels=targets.shape[1], average=None)
    return stat(torch.from_numpy(preds).int(), torch.from_numpy(np.asarray(targets)).int())[:, :4].numpy()


def per_class(probs: np.ndarray, targets: np.ndarray, thresholds: np.ndarray, label_names: list[str]) -> pd.DataFrame:
    """One row per label: support, precision, recall and F1 at its tuned threshold, F1 at 0.5, and AP
    (NaN for a label without positives)."""
    thresholds = np.broadcast_to(np.asarray(thresholds, dtype=np.float64), (targets.shape[1],))
    tp, fp, _, fn = confusion_counts(binarize(probs, thresholds), targets).T.astype(np.float64)
    tp5, fp5, _, fn5 = confusion_counts(binarize(probs, 0.5), targets).T.astype(np.float64)
    ap = MultilabelMeanAP(targets.shape[1])
    ap.update(torch.from_numpy(np.asarray(probs, dtype=np.float32)), torch.from_numpy(np.asarray(targets)).int())
    with np.errstate(divide="ignore", invalid="ignore"):
        table = pd.DataFrame({
            "label": label_names,
            "support": (tp + fn).astype(int),
            "threshold": thresholds,
            "precision": np.nan_to_num(tp / (tp + fp)),
            "recall": np.nan_to_num(tp / (tp + fn)),
            "f1": np.nan_to_num(2 * tp / (2 * tp + fp + fn)),
            "f1_at_0.5": np.nan_to_num(2 * tp5 / (2 * tp5 + fp5 + fn5)),
            "ap": ap.per_label().numpy().astype(np.float64),
        })
    return table
