import numpy as np
import pytest
import torch
from sklearn.metrics import (
    accuracy_score,
    average_precision_score,
    f1_score,
    hamming_loss,
    precision_score,
    recall_score,
)

from imgrec.evaluation.metrics import (
    MultilabelSamplesScore,
    build_metrics,
    build_per_class_f1,
    check_optimized_metric,
    selectable_metrics,
)
from imgrec.evaluation.scores import per_class, summary
from imgrec.utils.errors import ImgrecError


def random_case(seed: int, n: int = 300, c: int = 14) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = (rng.random((n, c)) < 0.15).astype(int)
    y[: n // 3] = 0  # many images without a label, as in the course data
    p = np.clip(y * 0.4 + rng.random((n, c)) * 0.7, 0, 1)
    return y, p


def expected(y: np.ndarray, p: np.ndarray, pred: np.ndarray) -> dict[str, float]:
    """Every logged metric, from scikit-learn (AP: over the labels that have a positive)."""
    out = {"accuracy": accuracy_score(y.ravel(), pred.ravel()), "exact_match": accuracy_score(y, pred),
           "hamming_loss": hamming_loss(y, pred)}
    for average in ("micro", "macro", "weighted", "samples"):
        # samples: an image with nothing to find and nothing predicted counts as 1 (zero_division=1)
        zero = 1.0 if average == "samples" else 0.0
        suffix = "" if average == "micro" else f"_{average}"
        out[f"f1_{average}"] = f1_score(y, pred, average=average, zero_division=zero)
        out[f"precision{suffix}"] = precision_score(y, pred, average=average, zero_division=zero)
        out[f"recall{suffix}"] = recall_score(y, pred, average=average, zero_division=zero)
    has_positive = y.sum(0) > 0
    out["map"] = average_precision_score(y[:, has_positive], p[:, has_positive], average="macro")
    return out


@pytest.mark.parametrize("seed", [0, 1])
def test_logged_metrics_equal_scikit_learn(seed):
    y, p = random_case(seed)
    y[:, 3] = 0  # a label without positives: AP undefined, left out of mAP
    pred = (p > 0.5).astype(int)
    m = build_metrics(14)
    for start in range(0, len(y), 64):  # batched updates, as in an epoch
        m.update(torch.tensor(p[start:start + 64]), torch.tensor(y[start:start + 64]))
    got = {k: float(v) for k, v in m.compute().items()}
    want = expected(y, p, pred)
    assert set(got) == set(want)
    for name, value in want.items():
        assert np.isclose(got[name], value, atol=1e-6), (name, got[name], value)
    per_label = build_per_class_f1(14)(torch.tensor(p), torch.tensor(y)).numpy()
    assert np.allclose(per_label, f1_score(y, pred, average=None, zero_division=0))


def test_summary_at_per_label_thresholds_equals_scikit_learn():
    y, p = random_case(2)
    thresholds = np.linspace(0.3, 0.7, 14)
    pred = (p > thresholds).astype(int)
    got = summary(p, y, thresholds)
    for name, value in expected(y, p, pred).items():
        assert np.isclose(got[name], value, atol=1e-6), name
    table = per_class(p, y, thresholds, [f"l{j}" for j in range(14)])
    assert np.allclose(table["f1"], f1_score(y, pred, average=None, zero_division=0))
    assert np.allclose(table["precision"], precision_score(y, pred, average=None, zero_division=0))
    assert np.allclose(table["recall"], recall_score(y, pred, average=None, zero_division=0))
    assert np.allclose(table["f1_at_0.5"], f1_score(y, (p > 0.5).astype(int), average=None, zero_division=0))
    assert np.allclose(table["ap"], average_precision_score(y, p, average=None))
    assert (table["support"] == y.sum(0)).all()


@pytest.mark.parametrize("score", ["f1", "precision", "recall"])
@pytest.mark.parametrize("zero_division", [0.0, 1.0])
def test_samples_score_zero_division(score, zero_division):
    y, p = random_case(3, n=80, c=5)
    pred = (p > 0.5).astype(int)
    metric = MultilabelSamplesScore(score, zero_division=zero_division)
    got = float(metric(torch.tensor(p), torch.tensor(y)))
    fn = {"f1": f1_score, "precision": precision_score, "recall": recall_score}[score]
    assert np.isclose(got, fn(y, pred, average="samples", zero_division=zero_division), atol=1e-6)


def test_optimized_metric_is_checked():
    names = selectable_metrics()
    assert "val/f1_micro" in names and "val/map" in names
    assert "val/hamming_loss" not in names  # lower is better: checkpoints maximise
    check_optimized_metric("val/f1_micro")
    with pytest.raises(ImgrecError, match=r"optimized_metric='val/f1_mikro'.*val/f1_micro"):
        check_optimized_metric("val/f1_mikro")
    with pytest.raises(ImgrecError, match="test/f1_micro"):
        check_optimized_metric("test/f1_micro")  # not known during fit
