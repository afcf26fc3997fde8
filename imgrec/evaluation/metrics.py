"""Multi-label metrics from torchmetrics, named as they are logged (``val/f1_micro`` ...).

``precision``, ``recall`` and ``accuracy`` without a suffix are micro averages (the course's
convention); the other averages carry theirs (``f1_samples``, ``recall_weighted``...).
"""

from __future__ import annotations

import warnings

import torch
from torchmetrics import Metric, MetricCollection
from torchmetrics.classification import (
    MultilabelAccuracy,
    MultilabelAveragePrecision,
    MultilabelExactMatch,
    MultilabelF1Score,
    MultilabelHammingDistance,
    MultilabelPrecision,
    MultilabelRecall,
)
from torchmetrics.utilities import dim_zero_cat

from imgrec.utils.errors import ImgrecError


class MultilabelSamplesScore(Metric):
    """F1, precision or recall computed per image, then averaged over images (scikit-learn's
    ``average='samples'``), which torchmetrics does not have.

    ``zero_division`` is the score of an image where the ratio is 0/0: for F1, an image with no true
    and no predicted label. The default 1.0 counts such a correct empty prediction as perfect; with
    0 about half of the course images would score 0 however good the model.
    """

    is_differentiable = False
    higher_is_better = True
    full_state_update = False

    def __init__(self, score: str = "f1", threshold: float = 0.5, zero_division: float = 1.0, **kwargs) -> None:
        super().__init__(**kwargs)
        if score not in ("f1", "precision", "recall"):
            raise ValueError(f"score={score!r}: expected f1, precision or recall")
        self.score, self.threshold, self.zero_division = score, threshold, zero_division
        # State names carry the score: a MetricCollection merges metrics whose states have the same
        # names and happen to be equal after the first batch (e.g. F1 and precision on unlabelled images).
        self._total, self._count = f"{score}_total", f"{score}_count"
        self.add_state(self._total, default=torch.tensor(0.0, dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state(self._count, default=torch.tensor(0, dtype=torch.long), dist_reduce_fx="sum")

    def update(self, preds: torch.Tensor, target: torch.Tensor) -> None:
        """``preds``: probabilities (or 0/1) thresholded with ``> threshold``, as torchmetrics does."""
        predicted = preds > self.threshold if preds.is_floating_point() else preds.bool()
        truth = target.bool()
        tp = (predicted & truth).sum(1).double()
        fp = (predicted & ~truth).sum(1).double()
        fn = (~predicted & truth).sum(1).double()
        numerator, denominator = {"f1": (2 * tp, 2 * tp + fp + fn), "precision": (tp, tp + fp),
                                  "recall": (tp, tp + fn)}[self.score]
        per_image = torch.where(denominator > 0, numerator / denominator.clamp(min=1), self.zero_division)
        setattr(self, self._total, getattr(self, self._total) + per_image.sum())
        setattr(self, self._count, getattr(self, self._count) + len(per_image))

    def compute(self) -> torch.Tensor:
        return (getattr(self, self._total) / getattr(self, self._count).clamp(min=1)).float()


class MultilabelMeanAP(MultilabelAveragePrecision):
    """Mean average precision over the labels with at least one positive in the data seen.

    torchmetrics and scikit-learn count a label without positives as AP 0 in the macro mean, so a
    rare label absent from a small val split would pull mAP down by ``1/C`` for nothing the model
    did; here AP is undefined (NaN) for such a label and left out of the mean.
    """

    def __init__(self, num_labels: int, **kwargs) -> None:
        super().__init__(num_labels=num_labels, average=None, **kwargs)

    def per_label(self) -> torch.Tensor:
        """AP of each label, NaN where the label has no positive."""
        with warnings.catch_warnings():  # "no positive samples found": handled here, as NaN
            warnings.simplefilter("ignore", UserWarning)
            ap = super().compute()
        has_positive = dim_zero_cat(self.target).sum(0) > 0
        return torch.where(has_positive, ap, torch.nan)

    def compute(self) -> torch.Tensor:
        ap = self.per_label()
        return ap.nanmean() if not ap.isnan().all() else torch.tensor(0.0)


def thresholded_metrics(num_labels: int, threshold: float = 0.5) -> dict[str, Metric]:
    """Metrics of 0/1 decisions. Micro F1 is the course's metric: scikit-learn ``average='micro'``
    over the image x label matrix."""
    kw = {"num_labels": num_labels, "threshold": threshold}
    metrics: dict[str, Metric] = {
        "f1_micro": MultilabelF1Score(average="micro", **kw),
        "precision": MultilabelPrecision(average="micro", **kw),
        "recall": MultilabelRecall(average="micro", **kw),
        # Reported, never the default selection metric: no label at all scores ~93% on the course data.
        "accuracy": MultilabelAccuracy(average="micro", **kw),
        "exact_match": MultilabelExactMatch(**kw),
        "hamming_loss": MultilabelHammingDistance(average="micro", **kw),
    }
    for average in ("macro", "weighted"):
        metrics[f"f1_{average}"] = MultilabelF1Score(average=average, **kw)
        metrics[f"precision_{average}"] = MultilabelPrecision(average=average, **kw)
        metrics[f"recall_{average}"] = MultilabelRecall(average=average, **kw)
    for score in ("f1", "precision", "recall"):
        metrics[f"{score}_samples"] = MultilabelSamplesScore(score, threshold)
    return metrics


def ranking_metrics(num_labels: int) -> dict[str, Metric]:
    """Threshold-free metrics of the probabilities."""
    return {"map": MultilabelMeanAP(num_labels)}


def build_metrics(num_labels: int, threshold: float = 0.5) -> MetricCollection:
    return MetricCollection({**thresholded_metrics(num_labels, threshold), **ranking_metrics(num_labels)})


def build_per_class_f1(num_labels: int, threshold: float = 0.5) -> MultilabelF1Score:
    return MultilabelF1Score(num_labels=num_labels, threshold=threshold, average=None)


def selectable_metrics(prefix: str = "val/") -> list[str]:
    """The logged metrics that checkpointing and early stopping can maximise: higher is better."""
    return [f"{prefix}{name}" for name, metric in build_metrics(2).items() if metric.higher_is_better]


def check_optimized_metric(name: str) -> None:
    """Fail before any data is read when ``optimized_metric`` is not a metric the module logs."""
    valid = selectable_metrics()
    if name not in valid:
        raise ImgrecError(f"optimized_metric={name!r}: not a validation metric the module logs "
                          f"(maximised by checkpointing and early stopping); valid: {', '.join(valid)}")
