"""The one record every reader yields."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np

from imgrec.data.image_cache import release_pages


@dataclass
class Dataset:
    """Decoded images, multi-hot targets and label names, in a fixed order.

    ``images`` is ``(N, H, W, 3)`` uint8, in memory or memory-mapped; ``targets`` is ``(N, C)``
    0/1 uint8; ``names`` are the image file names (or synthetic ids) for reports and predictions.
    """

    images: np.ndarray
    targets: np.ndarray
    label_names: list[str]
    names: list[str]
    skipped: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        if len(self.images) != len(self.targets) or len(self.images) != len(self.names):
            raise ValueError("images, targets and names must have the same length")

    def __len__(self) -> int:
        return len(self.images)

    @property
    def num_classes(self) -> int:
        return len(self.label_names)

    @cached_property
    def fingerprint(self) -> str:
        """A content hash of labels, names and every pixel: any changed image changes it."""
        h = hashlib.sha256()
        h.update("\n".join(self.label_names).encode())
        h.update("\n".join(self.names).encode())
        h.update(np.ascontiguousarray(self.targets).tobytes())
        h.update(str(self.images.shape).encode())
        for start in range(0, len(self.images), 1024):
            h.update(np.ascontiguousarray(self.images[start : start + 1024]).tobytes())
            release_pages(self.images)  # a memmap's pages would stay resident: 3.1 GB for 64k images
        return h.hexdigest()[:16]
