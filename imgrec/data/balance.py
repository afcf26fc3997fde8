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


class SamplerWeights:
    """Balance by the sampler instead of copies: every epoch draws as many train images as there are,
    with replacement, image ``i`` with probability proportional to its repeat factor
    ``r_i = max(1, max over its labels c of sqrt(threshold / f_c))``, ``f_c`` being the fraction of
    train images carrying label ``c`` (LVIS repeat-factor sampling, Gupta et al. 2019). Unlabelled
    images count as one more class. Labels rarer than ``threshold`` are drawn more often, by the
    square root of their rarity, so a rare label's few images are not repeated hundreds of times.
    """

    def __init__(self, threshold: float = 0.1) -> None:
        if not 0 < threshold <= 1:
            raise ValueError(f"balance.threshold={threshold}: must be in (0, 1]")
        self.threshold = threshold

    def __call__(self, indices: np.ndarray, targets: np.ndarray) -> np.ndarray:
        """One sampling weight per entry of ``indices`` (its repeat factor)."""
        y = targets[indices].astype(bool)
        y = np.concatenate([y, ~y.any(1, keepdims=True)], axis=1)  # unlabelled: a class of its own
        freq = y.mean(0)
        factor = np.sqrt(self.threshold / np.where(freq > 0, freq, 1.0))
        weights = np.maximum(1.0, np.where(y, factor, 0.0).max(1))
        log.info("sampler weights: repeat factors from %.2f to %.2f (threshold %.3g)",
                 weights.min(), weights.max(), self.threshold)
        return weights
