"""The decoded-image cache: a dataset is decoded once into a uint8 ``.npy`` array on disk and
memory-mapped by every later run (all runs of a sweep share it). JPEG decoding leaves the
per-run and per-epoch path.

The key hashes the bytes of every file with the decoding options, so a changed image is never
served stale.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from imgrec.data.images import DEFAULT, Decoding, decode_images
from imgrec.utils.io import write_json

log = logging.getLogger(__name__)


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
    images, kept, skipped = decode_images(paths, decoding)
    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / f".{key}.{os.getpid()}.tmp.npy"  # processes that decode at once never share it
    try:
        np.save(tmp, images)
        tmp.replace(array)
    finally:
        tmp.unlink(missing_ok=True)
    write_json(index, {"kept": kept, "skipped": skipped, "count": len(paths)})
    return np.load(array, mmap_mode="r"), kept, skipped


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
