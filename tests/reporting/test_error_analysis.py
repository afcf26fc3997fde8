import numpy as np
import pandas as pd

from imgrec.data.stats import cooccurrence
from imgrec.reporting.error_analysis import caption, mislabels, worst_images, wrong_label_distribution
from imgrec.reporting.label_issues import candidate_missing_labels

NAMES = ["a", "b", "c"]


def test_mislabels_and_2x2_tables():
    y = np.array([[1, 0, 0], [1, 1, 0], [0, 0, 0], [0, 1, 1]])
    p = np.array([[1, 1, 0], [0, 1, 0], [0, 0, 1], [0, 1, 1]])
    table = mislabels(p, y, NAMES).set_index("label")
    for j, name in enumerate(NAMES):
        row = table.loc[name]
        assert row["TP"] == ((p[:, j] == 1) & (y[:, j] == 1)).sum()
        assert row["FP"] == ((p[:, j] == 1) & (y[:, j] == 0)).sum()
        assert row["FN"] == ((p[:, j] == 0) & (y[:, j] == 1)).sum()
        assert row["TP"] + row["FP"] + row["FN"] + row["TN"] == len(y)
        assert row["mislabelled"] == (p[:, j] != y[:, j]).sum()
    assert list(table["mislabelled"]) == sorted(table["mislabelled"], reverse=True)


def test_wrong_labels_per_image_and_worst_images():
    y = np.array([[1, 0, 0], [1, 1, 0], [0, 0, 0], [0, 1, 1]])
    p = np.array([[0, 1, 1], [0, 1, 0], [0, 0, 0], [0, 1, 1]])
    probs = np.array([[0.2, 0.9, 0.8], [0.1, 0.9, 0.1], [0.1, 0.1, 0.1], [0.1, 0.9, 0.9]])
    assert wrong_label_distribution(p, y).tolist() == [2, 1, 0, 1]  # 0, 1, 2, 3 wrong labels
    assert worst_images(probs, p, y, k=5).tolist() == [0, 1]  # images with no mistake are left out
    assert caption(y[1], p[1], NAMES) == "a b : b" and caption(y[2], p[2], NAMES) == "- : -"


def test_cooccurrence_counts_pairs():
    y = np.array([[1, 1, 0], [1, 1, 1], [0, 0, 1]])
    c = cooccurrence(y, NAMES)
    assert c.loc["a", "b"] == 2 and c.loc["b", "c"] == 1 and c.loc["c", "c"] == 2 and (c.T == c).all().all()


def test_candidate_missing_labels_find_dropped_annotations():
    """Labels removed from the annotations while the model still sees them come out on top."""
    rng = np.random.default_rng(0)
    n, c = 600, 6
    truth = (rng.random((n, c)) < 0.2).astype(np.uint8)
    dropped = (truth == 1) & (rng.random((n, c)) < 0.1)
    given = truth.copy()
    given[dropped] = 0
    probs = np.clip(truth * 0.65 + rng.random((n, c)) * 0.35, 0, 1)  # a model that sees the truth
    names = [f"im{i}.jpg" for i in range(n)]
    table = candidate_missing_labels(probs, given, np.full(c, 0.5), [f"l{j}" for j in range(c)], names)
    assert isinstance(table, pd.DataFrame) and list(table["rank"]) == list(range(1, len(table) + 1))
    assert (np.diff(table["probability"]) <= 0).all()
    hit = dropped[table["row"], [int(lab[1:]) for lab in table["label"]]]
    assert hit[: dropped.sum()].mean() > 0.9 and hit.sum() == dropped.sum()
    assert table["cleanlab"].sum() > 0.8 * dropped.sum()  # confident learning agrees
    assert (given[table["row"], [int(lab[1:]) for lab in table["label"]]] == 0).all()  # negatives only
