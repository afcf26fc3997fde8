"""Candidate missing labels (the study's §6.1): labels the annotation leaves out but the model sees.

Two signals, both from held-out probabilities: the model's own decision (probability above the
label's tuned threshold) and cleanlab's confident learning, which estimates per label how often an
annotation is wrong from the probabilities of the examples annotated with it, and flags the most
likely ones. The CSV lists every negative either signal picks, most confident first, with an empty
``verdict`` column for the person reviewing it.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
from cleanlab.multilabel_classification.filter import find_multilabel_issues_per_class

from imgrec.reporting.error_analysis import label_names_of


def cleanlab_missing(probs: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """``(N, C)`` mask of annotations cleanlab flags as wrong, restricted to negatives (missing labels)."""
    targets = np.asarray(targets).astype(bool)
    labels = [list(np.flatnonzero(row)) for row in targets]
    with warnings.catch_warnings():  # rare labels: "may not flag all label issues in class ..."
        warnings.simplefilter("ignore")
        # n_jobs=1: cleanlab's process pool costs more than it saves on a few thousand rows
        flagged = np.asarray(find_multilabel_issues_per_class(labels, np.asarray(probs, dtype=np.float64), n_jobs=1))
    return flagged & ~targets


def candidate_missing_labels(probs: np.ndarray, targets: np.ndarray, thresholds: np.ndarray,
                             label_names: list[str], names: list[str]) -> pd.DataFrame:
    """One row per (image, label) candidate, ranked by probability. ``row`` indexes ``probs``."""
    probs, targets = np.asarray(probs), np.asarray(targets).astype(bool)
    above = (probs > np.asarray(thresholds)) & ~targets
    flagged = cleanlab_missing(probs, targets)
    rows, cols = np.nonzero(above | flagged)
    order = np.argsort(-probs[rows, cols], kind="stable")
    rows, cols = rows[order], cols[order]
    preds = probs > np.asarray(thresholds)
    return pd.DataFrame({
        "rank": np.arange(1, len(rows) + 1),
        "image": [names[i] for i in rows],
        "label": [label_names[j] for j in cols],
        "probability": probs[rows, cols].round(4),
        "threshold": np.asarray(thresholds)[cols].round(4),
        "above_threshold": above[rows, cols],
        "cleanlab": flagged[rows, cols],
        "given_labels": [label_names_of(targets[i], label_names) for i in rows],
        "predicted_labels": [label_names_of(preds[i], label_names) for i in rows],
        "verdict": "",
        "row": rows,
    })
