"""The one image decoder of training, ``imgrec predict`` and the torch-free ONNX predict path: a file
becomes ``(size, size, 3)`` uint8 RGB, or an ImgrecError of one line naming the file.

Before any pixel is decoded, :func:`open_image` checks what needs no decoding: a file name that is
UTF-8, a regular file (not a directory, a symbolic-link loop or a pipe), not empty, a format PIL knows
and the size its header declares, against ``max_pixels`` (a decompression bomb declares a huge size
in a small file). Every mode becomes 8-bit RGB (:func:`to_rgb`), EXIF orientation is applied, an
animated image gives its first frame.
"""

from __future__ import annotations

import logging
import os
import stat
import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from imgrec.utils.errors import ImgrecError
from imgrec.utils.progress import Progress, progress

log = logging.getLogger(__name__)

ON_BAD_IMAGE = ("error", "skip")
# Above the largest camera photos (phones: 200 MP, 16,320 x 12,240; studio multi-shot: 400 MP),
# below what decompression bombs declare (a 30,000 x 30,000 PNG: 900 MP). 1.5 GB decoded at the limit.
MAX_PIXELS = 500_000_000
DECODER = "2"  # the version of the pixels decode_image gives (2: EXIF orientation applied); caches key on it
# PIL has a process-wide limit of its own (MAX_IMAGE_PIXELS: a warning from 89 MP, an exception from
# 179 MP). Here max_pixels decides: PIL's is lifted while a header is read, under this lock, and the
# size is checked right after, before anything is decoded.
_PIL_LIMIT = threading.Lock()


@dataclass(frozen=True)
class Decoding:
    """How files become pixels. ``prefix`` is where these settings sit in the command's config
    (``data.`` for training, none for predict), so that messages name the key the user sets."""

    size: int = 128
    resize: bool = True
    on_bad_image: str = "error"
    max_pixels: int | None = None  # None: MAX_PIXELS
    prefix: str = "data."

    def __post_init__(self) -> None:
        if self.on_bad_image not in ON_BAD_IMAGE:
            raise ImgrecError(f"{self.key('on_bad_image')}={self.on_bad_image!r}: expected one of {ON_BAD_IMAGE}")
        limit = self.max_pixels
        if limit is not None and (isinstance(limit, bool) or not isinstance(limit, (int, float))
                                  or limit < 1 or not float(limit).is_integer()):
            raise ImgrecError(f"{self.key('max_pixels')}={limit!r}: expected a positive whole number of pixels")

    def key(self, name: str) -> str:
        return f"{self.prefix}{name}"

    @property
    def pixel_limit(self) -> int:
        return MAX_PIXELS if self.max_pixels is None else int(self.max_pixels)

    def cache_key(self) -> str:
        """What the decoded pixels and the choice of skipped files depend on, besides the files."""
        return f"decoder={DECODER}|{self.size}|{self.resize}|{self.on_bad_image}|{self.pixel_limit}"


DEFAULT = Decoding()  # the readers' and the decoder's default


def display(path: str | Path) -> str:
    """``path`` as text that prints and writes anywhere: bytes of a name that are not UTF-8 as ``\\xNN``."""
    return os.fsencode(path).decode("utf-8", "backslashreplace")


def open_image(path: Path, decoding: Decoding) -> Image.Image:
    """``path`` opened lazily (PIL has read its header only), after every check that needs no decoding."""
    name = display(path)
    if display(path.name) != path.name:
        raise ImgrecError(f"{name}: the file name is not valid UTF-8; rename the file")
    try:
        info = path.stat()  # follows links: a loop raises ELOOP, a dangling link FileNotFoundError
    except FileNotFoundError as e:
        raise ImgrecError(f"{name}: file not found") from e
    except OSError as e:
        raise ImgrecError(f"{name}: cannot read ({e.strerror})") from e
    if stat.S_ISDIR(info.st_mode):
        raise ImgrecError(f"{name}: a directory, not an image file")
    if not stat.S_ISREG(info.st_mode):
        raise ImgrecError(f"{name}: not a regular file")
    if info.st_size == 0:
        raise ImgrecError(f"{name}: empty file (0 bytes)")
    try:
        with _PIL_LIMIT:
            saved, Image.MAX_IMAGE_PIXELS = Image.MAX_IMAGE_PIXELS, None
            try:
                img = Image.open(path)
            finally:
                Image.MAX_IMAGE_PIXELS = saved
    except UnidentifiedImageError as e:
        raise ImgrecError(f"{name}: not an image file") from e
    except Exception as e:  # a hostile header can make a PIL plugin raise anything (struct.error, IndexError...)
        raise ImgrecError(f"{name}: unreadable or truncated image ({type(e).__name__}: {e})") from e
    width, height = img.size
    if width * height > decoding.pixel_limit:
        img.close()
        raise ImgrecError(f"{name}: declares {width}x{height} = {width * height:,} pixels, above "
                          f"{decoding.key('max_pixels')}={decoding.pixel_limit:,} (raise it to read this image)")
    return img


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


def upright(img: Image.Image) -> Image.Image:
    """``img`` turned as its EXIF orientation says, as viewers show it; an unreadable EXIF block leaves it as
    stored (the pixels are fine, only the metadata is broken)."""
    try:
        return ImageOps.exif_transpose(img)
    except Exception:  # noqa: BLE001 - any error in parsing EXIF metadata
        return img


def decode_image(path: Path, decoding: Decoding = DEFAULT) -> np.ndarray:
    """Read one file as ``(size, size, 3)`` uint8; raise ImgrecError naming the file on any problem."""
    with open_image(path, decoding) as img:
        try:
            img.load()
            rgb = to_rgb(upright(img))
        except Exception as e:  # truncated or corrupted data: PIL raises OSError, SyntaxError, ValueError and more
            raise ImgrecError(f"{display(path)}: unreadable or truncated image ({type(e).__name__}: {e})") from e
    size = decoding.size
    if rgb.size != (size, size):
        if not decoding.resize:
            raise ImgrecError(f"{display(path)}: image is {rgb.size[0]}x{rgb.size[1]}, expected {size}x{size} "
                              f"(set {decoding.key('resize')}=true to resize)")
        rgb = rgb.resize((size, size), Image.BILINEAR)
    return np.asarray(rgb, dtype=np.uint8)


def decode_images(paths: Sequence[Path], decoding: Decoding = DEFAULT, workers: int | None = None,
                  bar: bool = True) -> tuple[np.ndarray, list[int], list[str]]:
    """Decode ``paths`` in parallel (PIL releases the GIL), with a progress bar from 500 images.

    Returns ``(images, kept, skipped)``: the stacked images, the indices of ``paths`` that were kept,
    and why each other one was skipped (only with ``on_bad_image="skip"``; the caller reports them).
    """
    out = np.empty((len(paths), decoding.size, decoding.size, 3), dtype=np.uint8)
    with progress(len(paths), "decode images", bar=bar and len(paths) >= 500) as counter:
        kept, skipped = decode_into(out, paths, decoding, counter, workers)
    return (out[kept] if skipped else out), kept, skipped


def decode_into(out: np.ndarray, paths: Sequence[Path], decoding: Decoding, counter: Progress,
                workers: int | None = None) -> tuple[list[int], list[str]]:
    """Decode ``paths[i]`` into ``out[i]`` (a bad image's row is left as it was), counting each on ``counter``.
    Returns the indices of the images decoded and the problems of those skipped (``on_bad_image="skip"``)."""

    def work(i: int) -> str | None:
        try:
            out[i] = decode_image(paths[i], decoding)
        except ImgrecError as e:
            if decoding.on_bad_image == "error":
                raise
            return str(e)
        return None

    kept, skipped = [], []
    with ThreadPoolExecutor(workers or min(8, os.cpu_count() or 1)) as pool:
        results = pool.map(work, range(len(paths)))
        try:
            for i, problem in enumerate(results):
                if problem is None:
                    kept.append(i)
                else:
                    skipped.append(problem)
                counter.update(1)
        except BaseException:  # a bad file (on_bad_image=error) or Ctrl-C: the files not started are not decoded
            pool.shutdown(cancel_futures=True)
            raise
    return kept, skipped
