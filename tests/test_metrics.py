import numpy as np
import torch
from sklearn.metrics import accuracy_score, f1_score, precision_score, recall_score

from imgrec.metrics import build_metrics, build_per_class_f1


def test_metrics_equal_scikit_learn():
    rng = np.random.default_rng(0)
    y = (rng.random((300, 14)) < 0.15).astype(int)
    p = np.clip(y * 0.4 + rng.random((300, 14)) * 0.7, 0, 1)
    pred = (p >= 0.5).astype(int)
    m = build_metrics(14)
    out = {k: float(v) for k, v in m(torch.tensor(p), torch.tensor(y)).items()}
    assert np.isclose(out["f1_micro"], f1_score(y, pred, average="micro"))
    assert np.isclose(out["precision"], precision_score(y, pred, average="micro"))
    assert np.isclose(out["recall"], recall_score(y, pred, average="micro"))
    assert np.isclose(out["f1_macro"], f1_score(y, pred, average="macro", zero_division=0))
    assert np.isclose(out["accuracy"], accuracy_score(y.ravel(), pred.ravel()))
    per_class = build_per_class_f1(14)(torch.tensor(p), torch.tensor(y)).numpy()
    assert np.allclose(per_class, f1_score(y, pred, average=None, zero_division=0))
