"""A shuffling sampler whose order depends only on (seed, epoch).

Lightning calls ``set_epoch`` at the start of every epoch, so a run resumed at epoch k sees
exactly the batches an uninterrupted run sees at epoch k, and the cached-feature and image paths
see the same order.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch
from torch.utils.data import Sampler


class EpochShuffleSampler(Sampler[int]):
    """A permutation of ``range(n)`` per epoch. With ``views > 1`` it also draws, per item, which of
    ``views`` cached variants to use, and yields ``item * views + view``."""

    def __init__(self, n: int, seed: int, views: int = 1) -> None:
        self.n, self.seed, self.views, self.epoch = n, seed, views, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return self.n

    def __iter__(self) -> Iterator[int]:
        g = torch.Generator().manual_seed(self.seed * 100_003 + self.epoch)
        order = torch.randperm(self.n, generator=g)
        if self.views > 1:
            order = order * self.views + torch.randint(self.views, (self.n,), generator=g)
        return iter(order.tolist())
