"""glibc allocator settings for the length of a feature extraction (see :func:`heap_allocations`)."""

from __future__ import annotations

import ctypes
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def heap_allocations() -> Iterator[None]:
    """Serve large allocations from the heap while extracting (glibc only; elsewhere a no-op).

    glibc gives each allocation above its mmap threshold (32 MB at most) fresh pages that fault in,
    zero-filled, at first touch and go back to the system when freed, so every batch's activations
    fault in again: 6-10x more page faults than from the heap (bench/RESULTS.md). Afterwards the heap
    is trimmed, and the thresholds are left where glibc's own adjustment (which any setting turns
    off) ends after large frees: mmap above 32 MB, trim above 64 MB."""
    try:
        libc = ctypes.CDLL("libc.so.6")
        mallopt, malloc_trim = libc.mallopt, libc.malloc_trim
    except (OSError, AttributeError):
        yield
        return
    m_trim_threshold, m_mmap_threshold, m_mmap_max = -1, -3, -4
    mallopt(m_mmap_max, 0)
    mallopt(m_trim_threshold, 1 << 30)
    try:
        yield
    finally:
        mallopt(m_mmap_max, 65536)
        mallopt(m_mmap_threshold, 32 << 20)
        mallopt(m_trim_threshold, 64 << 20)
        malloc_trim(0)
