"""Stratified and k-fold splits: fractions and seeds as in RandomSplit, rare labels refused by name."""

import numpy as np
import pytest

from imgrec.data.split import KFoldSplit, RandomSplit, StratifiedSplit
from imgrec.utils.errors import ImgrecError


def _targets(n: int = 2000, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (rng.random((n, 6)) < np.array([0.4, 0.2, 0.1, 0.03, 0.015, 0.01])).astype(np.uint8)


def test_stratified_split_has_the_random_split_sizes_and_spreads_every_label():
    y = _targets()
    strat, rand = StratifiedSplit(seed=3)(y), RandomSplit(seed=3)(y)
    for part in ("train", "val", "test"):
        assert len(getattr(strat, part)) == len(getattr(rand, part))
    assert np.array_equal(np.sort(np.concatenate([strat.train, strat.val, strat.test])), np.arange(len(y)))
    expected = y.sum(0) * 0.075

    def miss(split):  # positives missing or in excess in val and test, against each label's fraction
        return [np.abs(y[idx].sum(0) - expected) for idx in (split.val, split.test)]

    assert max(m.max() for m in miss(strat)) <= 1  # within rounding for every label
    assert np.sum(miss(strat)) < 0.5 * np.mean([np.sum(miss(RandomSplit(seed=s)(y))) for s in range(5)])
    assert np.array_equal(StratifiedSplit(seed=3)(y).val, strat.val)
    assert not np.array_equal(StratifiedSplit(seed=4)(y).val, strat.val)


def test_kfold_holds_out_the_stratified_test_split_and_covers_train_val_once():
    y = _targets()
    folds = [KFoldSplit(folds=4, fold=k, seed=1)(y) for k in range(4)]
    test = StratifiedSplit(seed=1)(y).test
    assert all(np.array_equal(f.test, test) for f in folds)
    vals = np.concatenate([f.val for f in folds])
    assert np.array_equal(np.sort(vals), np.setdiff1d(np.arange(len(y)), test))
    for f in folds:
        assert not set(f.train) & set(f.val) and len(f.train) + len(f.val) == len(y) - len(test)


@pytest.mark.parametrize("make, message", [
    (lambda: KFoldSplit(folds=1), "split.folds=1: a cross-validation needs at least 2 folds"),
    (lambda: KFoldSplit(folds=3, fold=3), "split.fold=3: expected 0 to 2"),
])
def test_bad_fold_settings(make, message):
    with pytest.raises(ImgrecError, match=message):
        make()


def test_a_label_rarer_than_the_folds_is_named_with_its_count():
    y = _targets(400)
    y[:, 5] = 0
    y[[10, 20, 30], 5] = 1  # 3 positives (the test cut may take one), 5 folds
    with pytest.raises(ImgrecError, match=r"split.folds=5: label 'rare' has [23] positives in train\+val, fewer "
                                          r"than the 5 folds"):
        KFoldSplit(folds=5, test_fraction=0.0)(y, ["a", "b", "c", "d", "e", "rare"])


def test_stratified_refuses_a_label_too_rare_for_the_fractions():
    y = _targets(400)
    y[:, 5] = 0
    y[[1, 2, 3, 4], 5] = 1  # 4 positives: 0.3 expected in val and in test
    with pytest.raises(ImgrecError, match=r"split=stratified .*label 'rare' has 4 positives, too few for val "
                                          r"\(expected 0.30 there; needs 7\)"):
        StratifiedSplit()(y, ["a", "b", "c", "d", "e", "rare"])
