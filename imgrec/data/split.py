"""Split indices into train / val / test: a random cut, a multi-label stratified one, or one fold of a
stratified k-fold cross-validation over train+val with the test split held out.

Stratified cuts use iterative stratification (Sechidis et al., 2011, as implemented by the
``iterative-stratification`` package): each split gets close to its fraction of every label's
positives, where a random cut of a few hundred images can leave a rare label with none.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
from iterstrat.ml_stratifiers import MultilabelStratifiedKFold, MultilabelStratifiedShuffleSplit

from imgrec.utils.errors import ImgrecError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Split:
    train: np.ndarray
    val: np.ndarray
    test: np.ndarray

    def positives(self, targets: np.ndarray, label_names: list[str]) -> dict[str, list[int]]:
        """Positives of each label in train, val and test."""
        return {name: [int(targets[idx, j].sum()) for idx in (self.train, self.val, self.test)]
                for j, name in enumerate(label_names)}


def split_sizes(n: int, fractions: tuple[float, float, float]) -> tuple[int, int, int]:
    """Images in train, val and test: val and test rounded, train the rest."""
    n_val, n_test = int(round(n * fractions[1])), int(round(n * fractions[2]))
    return n - n_val - n_test, n_val, n_test


def check_fractions(fractions: tuple[float, ...]) -> tuple[float, float, float]:
    fractions = tuple(float(f) for f in fractions)
    if len(fractions) != 3 or min(fractions) < 0 or abs(sum(fractions) - 1) > 1e-6:
        raise ImgrecError(f"split.fractions={list(fractions)}: expected three non-negative numbers summing to 1")
    return fractions


def check_sizes(n: int, fractions: tuple[float, float, float]) -> tuple[int, int, int]:
    sizes = split_sizes(n, fractions)
    needed = [name for name, k, f in zip(("train", "val", "test"), sizes, fractions) if f > 0 and k < 1]
    if needed:
        raise ImgrecError(f"dataset has {n} images: too few for split.fractions={list(fractions)} "
                          f"({', '.join(needed)} would be empty)")
    return sizes


class RandomSplit:
    """A seeded shuffle cut by fractions. The default is the study's 17000/1500/1500 of 20000."""

    def __init__(self, fractions: tuple[float, float, float] = (0.85, 0.075, 0.075), seed: int = 0) -> None:
        self.fractions = check_fractions(fractions)
        self.seed = seed

    def __call__(self, targets: np.ndarray, label_names: list[str] | None = None) -> Split:
        n_train, n_val, _ = check_sizes(len(targets), self.fractions)
        order = np.random.default_rng(self.seed).permutation(len(targets))
        return Split(np.sort(order[:n_train]), np.sort(order[n_train:n_train + n_val]),
                     np.sort(order[n_train + n_val:]))


def stratified_cut(indices: np.ndarray, targets: np.ndarray, size: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """``indices`` cut into (rest, ``size`` of them), both sorted, each label's positives spread in proportion."""
    if size == 0:
        return np.sort(indices), np.array([], dtype=np.int64)
    cut = MultilabelStratifiedShuffleSplit(n_splits=1, test_size=size, random_state=seed)
    rest, part = next(cut.split(np.zeros(len(indices)), targets[indices]))
    return np.sort(indices[rest]), np.sort(indices[part])


def check_rare_labels(targets: np.ndarray, label_names: list[str] | None, shares: dict[str, float],
                      setting: str) -> None:
    """Stop when a label is too rare for a part to get any of its positives: ``shares`` maps a part to
    the share of the positives it should get (a fraction, or 1/K for a fold); a label whose expected
    count in a part is under one half gets none there from a stratified cut."""
    counts = np.asarray(targets).sum(0)
    names = label_names or [f"label {j}" for j in range(len(counts))]
    for name, count in zip(names, counts):
        for part, share in shares.items():
            if count > 0 and 0 < share and count * share < 0.5:
                raise ImgrecError(f"{setting}: label '{name}' has {int(count)} positives, too few for {part} "
                                  f"(expected {count * share:.2f} there; needs {np.ceil(0.5 / share):.0f})")


class StratifiedSplit:
    """Like :class:`RandomSplit` (same ``fractions`` and ``seed``), with each label's positives spread
    over train, val and test in proportion. Test is cut first, so :class:`KFoldSplit` with the same
    seed and test fraction holds out the same test images."""

    def __init__(self, fractions: tuple[float, float, float] = (0.85, 0.075, 0.075), seed: int = 0) -> None:
        self.fractions = check_fractions(fractions)
        self.seed = seed

    def __call__(self, targets: np.ndarray, label_names: list[str] | None = None) -> Split:
        _, n_val, n_test = check_sizes(len(targets), self.fractions)
        check_rare_labels(targets, label_names, dict(zip(("train", "val", "test"), self.fractions)),
                          f"split=stratified with split.fractions={list(self.fractions)}")
        rest, test = stratified_cut(np.arange(len(targets)), targets, n_test, self.seed)
        train, val = stratified_cut(rest, targets, n_val, self.seed)
        return Split(train, val, test)


class KFoldSplit:
    """Fold ``fold`` of a ``folds``-fold multi-label stratified cross-validation: the test split
    (``test_fraction``, cut as :class:`StratifiedSplit` cuts it) is held out, the rest is cut into
    ``folds`` stratified folds; fold ``fold`` is val and the others train. Every train+val image is in
    val exactly once over the folds, so the folds' val outputs are out-of-fold predictions for all."""

    def __init__(self, folds: int = 5, fold: int = 0, test_fraction: float = 0.075, seed: int = 0) -> None:
        if folds < 2:
            raise ImgrecError(f"split.folds={folds}: a cross-validation needs at least 2 folds")
        if not 0 <= fold < folds:
            raise ImgrecError(f"split.fold={fold}: expected 0 to {folds - 1} for split.folds={folds}")
        if not 0 <= test_fraction < 1:
            raise ImgrecError(f"split.test_fraction={test_fraction}: expected a number in [0, 1)")
        self.folds, self.fold, self.test_fraction, self.seed = folds, fold, float(test_fraction), seed

    def __call__(self, targets: np.ndarray, label_names: list[str] | None = None) -> Split:
        _, _, n_test = check_sizes(len(targets), (1 - self.test_fraction, 0.0, self.test_fraction))
        setting = f"split.folds={self.folds}"
        check_rare_labels(targets, label_names, {"test": self.test_fraction},
                          f"split.test_fraction={self.test_fraction}")
        rest, test = stratified_cut(np.arange(len(targets)), targets, n_test, self.seed)
        names = label_names or [f"label {j}" for j in range(targets.shape[1])]
        for name, count in zip(names, targets[rest].sum(0)):
            if 0 < count < self.folds:  # some fold would have none of its positives in val
                raise ImgrecError(f"{setting}: label '{name}' has {int(count)} positives in train+val, fewer than "
                                  f"the {self.folds} folds")
        if len(rest) < self.folds:
            raise ImgrecError(f"{setting}: only {len(rest)} train+val images")
        kfold = MultilabelStratifiedKFold(n_splits=self.folds, shuffle=True, random_state=self.seed)
        train, val = list(kfold.split(np.zeros(len(rest)), targets[rest]))[self.fold]
        return Split(np.sort(rest[train]), np.sort(rest[val]), test)
