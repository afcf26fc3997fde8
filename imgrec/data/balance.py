"""Balancing of the train split (never val or test)."""

from __future__ import annotations

import logging

import numpy as np

log = logging.getLogger(__name__)


class Oversampler:
    """The study's oversampler: repeatedly add a copy of a random image carrying the currently least
    frequent label, until the split is ``factor`` times its size.

    Unlabelled images are never added, and images of the most frequent label alone almost never,
    since that label is never the least frequent.
    """

    def __init__(self, factor: float = 4.0, seed: int = 0) -> None:
        if factor < 1:
            raise ValueError(f"balance.factor={factor}: must be at least 1")
        self.factor = factor
        self.seed = seed

    def __call__(self, indices: np.ndarray, targets: np.ndarray) -> np.ndarray:
        """Return ``indices`` plus the added copies (indices into ``targets``)."""
        rng = np.random.default_rng(self.seed)
        y = targets[indices].astype(bool)
        counts = y.sum(0).astype(np.int64)
        present = np.flatnonzero(counts > 0)  # a label absent from train cannot be oversampled
        if len(present) == 0:
            return indices
        holders = {j: np.flatnonzero(y[:, j]) for j in present}
        n_add = int(round(len(indices) * (self.factor - 1)))
        added = np.empty(n_add, dtype=np.int64)
        for k in range(n_add):
            j = present[np.argmin(counts[present])]
            pick = holders[j][rng.integers(len(holders[j]))]
            added[k] = pick
            counts += y[pick]
        log.info("oversampled train split from %d to %d images", len(indices), len(indices) + n_add)
        return np.concatenate([indices, indices[added]])
