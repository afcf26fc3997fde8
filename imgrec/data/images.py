"""Decode image files once into one uint8 array, checking every file before any training."""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from imgrec.utils.errors import ImgrecError
from imgrec.utils.progress import Progress, progress

log = logging.getLogger(__name__)

ON_BAD_IMAGE = ("error", "skip")


def to_rgb(img: Image.Image) -> Image.Image:
    """Grayscale, palette, alpha, CMYK and 16-bit images all become 8-bit RGB."""
    if img.mode in ("I;16", "I;16B", "I;16L", "I"):
        arr = np.asarray(img, dtype=np.float64)
        top = 65535.0 if img.mode.startswith("I;16") or arr.max() > 255 else 255.0
        img = Image.fromarray(np.clip(arr / top * 255.0, 0, 255).astype(np.uint8), mode="L")
    if img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info):
        rgba = img.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        img = Image.alpha_composite(background, rgba)
    return img.convert("RGB")


def decode_image(path: Path, size: int, resize: bool) -> np.ndarray:
    """Read one file as ``(size, size, 3)`` uint8; raise ImgrecError naming the file on any problem."""
    try:
        if os.path.getsize(path) == 0:
            raise ImgrecError(f"{path}: empty file (0 bytes)")
        with Image.open(path) as img:
            img.load()
            rgb = to_rgb(img)
    except ImgrecError:
        raise
    except FileNotFoundError as e:
        raise ImgrecError(f"{path}: file not found") from e
    except UnidentifiedImageError as e:
        raise ImgrecError(f"{path}: not an image file") from e
    except (OSError, SyntaxError, ValueError) as e:
        raise ImgrecError(f"{path}: unreadable or truncated image ({e})") from e
    if rgb.size != (size, size):
        if not resize:
            raise ImgrecError(f"{path}: image is {rgb.size[0]}x{rgb.size[1]}, expected {size}x{size} "
                              "(set data.resize=true to resize)")
        rgb = rgb.resize((size, size), Image.BILINEAR)
    return np.asarray(rgb, dtype=np.uint8)


def decode_images(
    paths: Sequence[Path], size: int = 128, resize: bool = True, on_bad_image: str = "error",
    workers: int | None = None,
) -> tuple[np.ndarray, list[int], list[str]]:
    """Decode ``paths`` in parallel (PIL releases the GIL) with a progress bar.

    Returns ``(images, kept, skipped)``: the stacked images, the indices of ``paths`` that were
    kept, and the paths skipped as bad (only with ``on_bad_image="skip"``).
    """
    out = np.empty((len(paths), size, size, 3), dtype=np.uint8)
    with progress(len(paths), "decode images", bar=len(paths) >= 500) as bar:
        kept, skipped = decode_into(out, paths, size, resize, on_bad_image, bar, workers)
    warn_skipped(skipped)
    return (out[kept] if skipped else out), kept, skipped


def decode_into(out: np.ndarray, paths: Sequence[Path], size: int, resize: bool, on_bad_image: str, bar: Progress,
                workers: int | None = None) -> tuple[list[int], list[str]]:
    """Decode ``paths[i]`` into ``out[i]`` (a bad image's row is left as it was), counting each on ``bar``.
    Returns the indices of the images decoded and the problems of those skipped (``on_bad_image="skip"``)."""
    if on_bad_image not in ON_BAD_IMAGE:
        raise ImgrecError(f"data.on_bad_image={on_bad_image!r}: expected one of {ON_BAD_IMAGE}")

    def work(i: int) -> str | None:
        try:
            out[i] = decode_image(paths[i], size, resize)
        except ImgrecError as e:
            if on_bad_image == "error":
                raise
            return str(e)
        return None

    kept, skipped = [], []
    with ThreadPoolExecutor(workers or min(8, os.cpu_count() or 1)) as pool:
        for i, problem in enumerate(pool.map(work, range(len(paths)))):
            if problem is None:
                kept.append(i)
            else:
                skipped.append(problem)
            bar.update(1)
    return kept, skipped


def warn_skipped(skipped: list[str]) -> None:
    if skipped:
        log.warning("skipped %d bad image(s) (data.on_bad_image=skip); first: %s", len(skipped), skipped[0])
