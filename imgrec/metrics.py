"""Multi-label metrics from torchmetrics, named as they are logged (``val/f1_micro`` ...)."""

from __future__ import annotations

from torchmetrics import MetricCollection
from torchmetrics.classification import (
    MultilabelAccuracy,
    MultilabelF1Score,
    MultilabelPrecision,
    MultilabelRecall,
)


def build_metrics(num_labels: int, threshold: float = 0.5) -> MetricCollection:
    """Micro F1 is the course's metric: scikit-learn ``average='micro'`` over the image x label matrix."""
    kw = {"num_labels": num_labels, "threshold": threshold}
    return MetricCollection({
        "f1_micro": MultilabelF1Score(average="micro", **kw),
        "precision": MultilabelPrecision(average="micro", **kw),
        "recall": MultilabelRecall(average="micro", **kw),
        "accuracy": MultilabelAccuracy(average="micro", **kw),
        "f1_macro": MultilabelF1Score(average="macro", **kw),
    })


def build_per_class_f1(num_labels: int, threshold: float = 0.5) -> MultilabelF1Score:
    return MultilabelF1Score(num_labels=num_labels, threshold=threshold, average=None)
