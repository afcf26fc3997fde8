"""Error analysis of 0/1 decisions against targets (the study's §6): mislabels per label with the
2x2 table of each, wrong labels per image, and the images with the most wrong labels."""

from __future__ import annotations

import numpy as np
import pandas as pd

from imgrec.evaluation.scores import confusion_counts


def mislabels(preds: np.ndarray, targets: np.ndarray, label_names: list[str]) -> pd.DataFrame:
    """Per label: the 2x2 table (TP, FP, FN, TN) and mislabelled = FP + FN, most mislabelled first."""
    tp, fp, tn, fn = confusion_counts(preds, targets).T
    table = pd.DataFrame({"label": label_names, "mislabelled": fp + fn, "FP": fp, "FN": fn, "TP": tp, "TN": tn})
    return table.sort_values(["mislabelled", "label"], ascending=[False, True], ignore_index=True)


def wrong_labels_per_image(preds: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """Number of wrong labels (missed or extra) of each image."""
    return (np.asarray(preds).astype(bool) != np.asarray(targets).astype(bool)).sum(1)


def wrong_label_distribution(preds: np.ndarray, targets: np.ndarray) -> pd.Series:
    """How many images have 0, 1, 2... wrong labels."""
    return pd.Series(np.bincount(wrong_labels_per_image(preds, targets)), name="images").rename_axis("wrong labels")


def worst_images(probs: np.ndarray, preds: np.ndarray, targets: np.ndarray, k: int) -> np.ndarray:
    """Rows of the ``k`` images with the most wrong labels (ties: the most confident mistakes first);
    only images with at least one wrong label."""
    wrong = wrong_labels_per_image(preds, targets)
    confidence = np.abs(np.asarray(probs) - np.asarray(targets)).sum(1)
    order = np.lexsort((-confidence, -wrong))
    return order[wrong[order] > 0][:k]


def label_names_of(row: np.ndarray, label_names: list[str]) -> str:
    """``"people female"``, or ``"-"`` for no label."""
    return " ".join(name for name, on in zip(label_names, row) if on) or "-"


def caption(target_row: np.ndarray, pred_row: np.ndarray, label_names: list[str]) -> str:
    """The study's Figure 3 caption: ``true labels : predicted labels``."""
    return f"{label_names_of(target_row, label_names)} : {label_names_of(pred_row, label_names)}"
