"""Readers of files: a course-format folder or a CSV/TSV table -> one Dataset (as the synthetic set)."""

from __future__ import annotations

import csv
import logging
import re
from pathlib import Path

import numpy as np

from imgrec.data.image_cache import load_images
from imgrec.data.record import Dataset
from imgrec.utils.errors import ImgrecError

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp"}
COURSE_NAME = re.compile(r"^im(\d+)\.[A-Za-z]+$")


def image_number(name: str) -> int | None:
    m = COURSE_NAME.match(name)
    return int(m.group(1)) if m else None


def list_images(folder: Path) -> list[Path]:
    """Image files of ``folder``: course names (``im<N>.jpg``) in numeric order, then the rest by name."""
    folder = Path(folder)
    if not folder.is_dir():
        raise ImgrecError(f"{folder}: image folder not found")
    files = [p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file()]
    return sorted(files, key=lambda p: (image_number(p.name) is None, image_number(p.name) or 0, p.name))


def read_annotation_file(path: Path) -> list[int]:
    numbers: list[int] = []
    seen: set[int] = set()
    for lineno, raw in enumerate(path.read_text().splitlines(), 1):
        line = raw.strip()
        if not line:
            continue
        if not re.fullmatch(r"[+-]?\d+", line):
            raise ImgrecError(f"{path}:{lineno}: {line!r} is not an image number")
        n = int(line)
        if n <= 0:
            raise ImgrecError(f"{path}:{lineno}: {n} is not a positive image number")
        if n in seen:
            raise ImgrecError(f"{path}:{lineno}: image {n} is listed twice")
        seen.add(n)
        numbers.append(n)
    return numbers


def read_course(root: str | Path, image_size: int = 128, resize: bool = True, on_bad_image: str = "error",
                cache_dir: str | Path | None = None) -> Dataset:
    """``<root>/images/im<N>.jpg`` + ``<root>/annotations/<label>.txt`` (image numbers, one a line).

    Labels are the annotation file names in alphabetical order; an image in no file has no label.
    """
    root = Path(root)
    ann_dir, img_dir = root / "annotations", root / "images"
    if not ann_dir.is_dir():
        raise ImgrecError(f"{ann_dir}: annotations folder not found")
    label_files = sorted(ann_dir.glob("*.txt"))
    if not label_files:
        raise ImgrecError(f"{ann_dir}: no annotation files (<label>.txt) in the folder")
    paths = [p for p in list_images(img_dir) if image_number(p.name) is not None]
    if not paths:
        raise ImgrecError(f"{img_dir}: no images named im<N>.jpg")
    row = {image_number(p.name): i for i, p in enumerate(paths)}
    targets = np.zeros((len(paths), len(label_files)), dtype=np.uint8)
    for j, f in enumerate(label_files):
        for n in read_annotation_file(f):
            if n not in row:
                raise ImgrecError(f"{f}: names image {n}, but {img_dir}/im{n}.jpg does not exist")
            targets[row[n], j] = 1
    return _decode(paths, targets, [f.stem for f in label_files], image_size, resize, on_bad_image, cache_dir)


def read_table(path: str | Path, images: str | Path | None = None, image_size: int = 128, resize: bool = True,
               on_bad_image: str = "error", cache_dir: str | Path | None = None) -> Dataset:
    """A CSV/TSV: a file-name column, then either one 0/1 column per label or one column of
    space-separated label names. File names are relative to ``images`` (default: the table's folder)."""
    path = Path(path)
    if not path.is_file():
        raise ImgrecError(f"{path}: label table not found")
    delimiter = "\t" if path.suffix.lower() in (".tsv", ".tab") else ","
    with path.open(newline="") as fh:
        rows = [r for r in csv.reader(fh, delimiter=delimiter) if r]
    if len(rows) < 2 or len(rows[0]) < 2:
        raise ImgrecError(f"{path}: expected a header and rows of <file>,<labels...>")
    header, body = rows[0], rows[1:]
    for lineno, r in enumerate(body, 2):
        if len(r) != len(header):
            raise ImgrecError(f"{path}:{lineno}: {len(r)} columns, the header has {len(header)}")
    base = Path(images) if images is not None else path.parent
    paths = [base / r[0] for r in body]
    cells = [r[1:] for r in body]
    if all(c in ("0", "1") for r in cells for c in r):
        label_names = [h.strip() for h in header[1:]]
        targets = np.array(cells, dtype=np.uint8)
    elif len(header) == 2:
        label_names = sorted({name for r in cells for name in r[0].split()})
        col = {name: j for j, name in enumerate(label_names)}
        targets = np.zeros((len(body), len(label_names)), dtype=np.uint8)
        for i, r in enumerate(cells):
            for name in r[0].split():
                targets[i, col[name]] = 1
    else:
        bad = next((lineno, c) for lineno, r in enumerate(cells, 2) for c in r if c not in ("0", "1"))
        raise ImgrecError(f"{path}:{bad[0]}: {bad[1]!r} is not 0 or 1")
    if not label_names:
        raise ImgrecError(f"{path}: no labels found")
    return _decode(paths, targets, label_names, image_size, resize, on_bad_image, cache_dir)


def _decode(paths: list[Path], targets: np.ndarray, label_names: list[str], image_size: int, resize: bool,
            on_bad_image: str, cache_dir: str | Path | None) -> Dataset:
    images, kept, skipped = load_images(paths, image_size, resize, on_bad_image, cache_dir)
    return Dataset(images, targets[kept], label_names, [paths[i].name for i in kept], skipped)
