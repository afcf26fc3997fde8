"""A shuffling (or weighted) sampler whose order depends only on (seed, epoch).

Lightning calls ``set_epoch`` at the start of every epoch, so a run resumed at epoch k sees
exactly the batches an uninterrupted run sees at epoch k, and the cached-feature and image paths
see the same order.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import torch
from torch.utils.data import Sampler


class EpochShuffleSampler(Sampler[int]):
    """A permutation of ``range(n)`` per epoch or, with ``weights``, ``n`` items drawn with replacement
    in proportion to them (see :class:`imgrec.data.balance.SamplerWeights`). With ``views > 1`` it also
    draws, per item, which of ``views`` cached variants to use, and yields ``item * views + view``."""

    def __init__(self, n: int, seed: int, views: int = 1, weights: np.ndarray | None = None) -> None:
        if weights is not None and len(weights) != n:
            raise ValueError(f"{len(weights)} sampler weights for {n} items")
        self.n, self.seed, self.views, self.epoch = n, seed, views, 0
        self.weights = None if weights is None else torch.as_tensor(weights, dtype=torch.float64)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return self.n

    def __iter__(self) -> Iterator[int]:
        # Modulo 2**63: torch.initial_seed() of an unseeded process is any 64-bit number.
        g = torch.Generator().manual_seed((self.seed * 100_003 + self.epoch) % 2**63)
        if self.weights is None:
            order = torch.randperm(self.n, generator=g)
        else:
            order = torch.multinomial(self.weights, self.n, replacement=True, generator=g)
        if self.views > 1:
            order = order * self.views + torch.randint(self.views, (self.n,), generator=g)
        return iter(order.tolist())
