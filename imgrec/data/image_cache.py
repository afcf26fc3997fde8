"""The decoded-image cache: a dataset is decoded once into a uint8 ``.npy`` array on disk and
memory-mapped by every later run (all runs of a sweep share it). JPEG decoding leaves the
per-run and per-epoch path.

Memory stays flat in the number of images (bench ``scaling``): the array is written block by block
(:data:`BLOCK` images decoded, then written), and code that passes over all of a memory-mapped array
calls :func:`release_pages` as it goes, since pages of a mapping that were read stay in the process's
resident memory (64k images at 128 px: 3.1 GB) until it unmaps them.

The key hashes the bytes of every file with the decoding options, so a changed image is never
served stale.
"""

from __future__ import annotations

import hashlib
import json
import logging
import mmap
import os
import shutil
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from imgrec.data.images import DEFAULT, Decoding, decode_images, decode_into
from imgrec.utils.io import write_json
from imgrec.utils.progress import progress

log = logging.getLogger(__name__)

BLOCK = 1024  # images decoded between two writes to the cache file: 50 MB at 128 px


def content_key(paths: Sequence[Path], decoding: Decoding) -> str:
    h = hashlib.sha256(decoding.cache_key().encode())
    for path in paths:
        h.update(os.fsencode(Path(path).name))
        try:  # only regular files: reading a pipe named like an image would wait forever
            h.update(Path(path).read_bytes() if Path(path).is_file() else b"<not a file>")
        except OSError:
            h.update(b"<unreadable>")  # decoding reports it, naming the file
    return h.hexdigest()[:24]


def load_images(paths: Sequence[Path], decoding: Decoding = DEFAULT,
                cache_dir: str | Path | None = None) -> tuple[np.ndarray, list[int], list[str]]:
    """:func:`decode_images`, through the on-disk cache when ``cache_dir`` is given. Nothing is written
    unless every file decoded (or was skipped as asked), and an entry appears whole or not at all."""
    if cache_dir is None:
        return decode_images(paths, decoding)
    key = content_key(paths, decoding)
    folder = Path(cache_dir) / "images"
    array, index = folder / f"{key}.npy", folder / f"{key}.json"
    if index.is_file() and array.is_file():  # the index is written last: its presence means complete
        hit = _read(array, index, decoding.size)
        if hit is not None:
            log.info("images: decoded-image cache hit %s", array)
            return hit
    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / f".{key}.{os.getpid()}.tmp.npy"  # processes that decode at once never share it
    try:
        kept, skipped = decode_to_file(paths, decoding, tmp)
        tmp.replace(array)
    finally:  # a bad image (on_bad_image=error), or killed: no partial file is left behind
        tmp.unlink(missing_ok=True)
    write_json(index, {"kept": kept, "skipped": skipped, "count": len(paths)})
    return np.load(array, mmap_mode="r"), kept, skipped


def decode_to_file(paths: Sequence[Path], decoding: Decoding, path: Path) -> tuple[list[int], list[str]]:
    """Decode ``paths`` into the ``.npy`` file ``path``, :data:`BLOCK` images at a time, so that memory
    holds one block whatever the number of images. Returns the indices kept and the problems skipped."""
    size = decoding.size
    kept: list[int] = []
    skipped: list[str] = []
    block = np.empty((min(BLOCK, len(paths)), size, size, 3), dtype=np.uint8)
    with path.open("wb") as f, progress(len(paths), "decode images", bar=len(paths) >= 500) as counter:
        np.lib.format.write_array_header_1_0(f, npy_header(len(paths), size))
        offset = f.tell()
        for start in range(0, len(paths), BLOCK):
            rows = paths[start:start + BLOCK]
            ok, bad = decode_into(block, rows, decoding, counter)
            f.write(block[:len(rows)][ok].tobytes() if bad else block[:len(rows)].tobytes())
            kept += [start + i for i in ok]
            skipped += bad
    if skipped:  # the header counted every path: write it again with the images kept
        fixed = path.with_name(f"{path.stem}.kept.npy")
        with path.open("rb") as src, fixed.open("wb") as dst:
            np.lib.format.write_array_header_1_0(dst, npy_header(len(kept), size))
            src.seek(offset)
            shutil.copyfileobj(src, dst, 1 << 24)
        fixed.replace(path)
    log.info("images: decoded %d images at %d px in %s", len(kept), size, path.parent)
    return kept, skipped


def npy_header(n: int, size: int) -> dict[str, object]:
    return {"descr": np.dtype(np.uint8).str, "fortran_order": False, "shape": (n, size, size, 3)}


def release_pages(images: np.ndarray) -> None:
    """Unmap the pages of a memory-mapped array that this process has read (a no-op for an array in
    memory). They stay in the operating system's page cache, so reading them again costs a minor page
    fault, not a disk read; without this, one pass over a memmap keeps all of it resident."""
    base = images
    while base is not None and not isinstance(base, mmap.mmap):
        base = getattr(base, "base", None)
    if base is not None:
        base.madvise(mmap.MADV_DONTNEED)


def _read(array: Path, index: Path, size: int) -> tuple[np.ndarray, list[int], list[str]] | None:
    """The cached images, or None for a damaged entry (truncated or corrupted array, unreadable index,
    wrong shape): that is logged in one line and deleted, so that the caller decodes again."""
    try:
        meta = json.loads(index.read_text())
        images = np.load(array, mmap_mode="r")
        expected = (len(meta["kept"]), size, size, 3)
        if images.shape != expected or images.dtype != np.uint8:
            raise ValueError(f"{images.dtype} {images.shape}, expected uint8 {expected}")
        return images, meta["kept"], meta["skipped"]
    except (OSError, ValueError, KeyError, TypeError) as err:  # json's JSONDecodeError is a ValueError
        log.warning("images: %s is damaged (%s); deleting it and decoding again", array, err)
        array.unlink(missing_ok=True)
        index.unlink(missing_ok=True)
        return None
