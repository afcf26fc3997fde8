"""Split indices into train / val / test."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from imgrec.errors import ImgrecError


@dataclass(frozen=True)
class Split:
    train: np.ndarray
    val: np.ndarray
    test: np.ndarray


class RandomSplit:
    """A seeded shuffle cut by fractions. The default is the study's 17000/1500/1500 of 20000."""

    def __init__(self, fractions: tuple[float, float, float] = (0.85, 0.075, 0.075), seed: int = 0) -> None:
        fractions = tuple(float(f) for f in fractions)
        if len(fractions) != 3 or min(fractions) < 0 or abs(sum(fractions) - 1) > 1e-6:
            raise ImgrecError(f"split.fractions={list(fractions)}: expected three non-negative numbers summing to 1")
        self.fractions = fractions
        self.seed = seed

    def __call__(self, targets: np.ndarray) -> Split:
        n = len(targets)
        n_val = int(round(n * self.fractions[1]))
        n_test = int(round(n * self.fractions[2]))
        n_train = n - n_val - n_test
        needed = [name for name, k, f in zip(("train", "val", "test"), (n_train, n_val, n_test), self.fractions)
                  if f > 0 and k < 1]
        if needed:
            raise ImgrecError(f"dataset has {n} images: too few for split.fractions={list(self.fractions)} "
                              f"({', '.join(needed)} would be empty)")
        order = np.random.default_rng(self.seed).permutation(n)
        return Split(np.sort(order[:n_train]), np.sort(order[n_train:n_train + n_val]),
                     np.sort(order[n_train + n_val:]))
