"""Readers of files: a course-format folder or a CSV/TSV table -> one Dataset (as the synthetic set)."""

from __future__ import annotations

import csv
import logging
import re
from pathlib import Path

import numpy as np

from imgrec.data.image_cache import load_images
from imgrec.data.images import DEFAULT, Decoding
from imgrec.data.record import Dataset
from imgrec.utils.errors import ImgrecError

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp"}
COURSE_NAME = re.compile(r"^im(\d+)\.[A-Za-z]+$")


def image_number(name: str) -> int | None:
    m = COURSE_NAME.match(name)
    return int(m.group(1)) if m else None


def list_images(folder: Path) -> list[Path]:
    """Entries of ``folder`` named like images: course names (``im<N>.jpg``) in numeric order, then the rest
    by name. Files or not: a directory or a broken link named like an image is the decoder's to report
    (or skip), never dropped unseen. Hidden names (a leading dot: the ``._im1.jpg`` metadata files macOS
    leaves beside each image on other file systems) are not images; they are left out and counted."""
    folder = Path(folder)
    if not folder.is_dir():
        raise ImgrecError(f"{folder}: image folder not found")
    named = [p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES]
    hidden = [p for p in named if p.name.startswith(".")]
    files = [p for p in named if not p.name.startswith(".")]
    if hidden:
        log.info("%s: %d hidden file(s) named like images left out (e.g. %s)", folder, len(hidden), hidden[0].name)
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


def read_course(root: str | Path, decoding: Decoding = DEFAULT, cache_dir: str | Path | None = None) -> Dataset:
    """``<root>/images/im<N>.jpg`` + ``<root>/annotations/<label>.txt`` (image numbers, one a line), decoded."""
    return _decode(*course_listing(root), decoding, cache_dir)


def course_listing(root: str | Path) -> tuple[list[Path], np.ndarray, list[str]]:
    """The images of a course-format folder, their targets and the label names, nothing decoded.

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
    return paths, targets, [f.stem for f in label_files]


def read_table(path: str | Path, images: str | Path | None = None, decoding: Decoding = DEFAULT,
               cache_dir: str | Path | None = None) -> Dataset:
    """A CSV/TSV in UTF-8 (a BOM and any line ends are fine): a file-name column, then either one 0/1 column
    per label or one column of space-separated label names. File names are relative to ``images``
    (default: the table's folder); each file is listed once. Cells are stripped of surrounding blanks."""
    path = Path(path)
    if not path.is_file():
        raise ImgrecError(f"{path}: label table not found")
    rows = _table_rows(path)
    if len(rows) < 2 or len(rows[0][1]) < 2:
        raise ImgrecError(f"{path}: expected a header and rows of <file>,<labels...>")
    (header_line, header), body = rows[0], rows[1:]
    first: dict[str, int] = {}
    for lineno, r in body:
        if len(r) != len(header):
            raise ImgrecError(f"{path}:{lineno}: {len(r)} columns, the header has {len(header)}")
        if not r[0]:
            raise ImgrecError(f"{path}:{lineno}: empty file name")
        if r[0] in first:
            raise ImgrecError(f"{path}:{lineno}: {r[0]} is listed again (first on line {first[r[0]]})")
        first[r[0]] = lineno
    base = Path(images) if images is not None else path.parent
    paths = [base / r[0] for _, r in body]
    cells = [r[1:] for _, r in body]
    if all(c in ("0", "1") for r in cells for c in r):
        label_names = header[1:]
        for j, name in enumerate(label_names):
            if not name:
                raise ImgrecError(f"{path}:{header_line}: column {j + 2} has no label name")
            if name in label_names[:j]:
                raise ImgrecError(f"{path}:{header_line}: label {name!r} heads two columns")
        targets = np.array(cells, dtype=np.uint8)
    elif len(header) == 2:
        label_names = sorted({name for r in cells for name in r[0].split()})
        col = {name: j for j, name in enumerate(label_names)}
        targets = np.zeros((len(body), len(label_names)), dtype=np.uint8)
        for i, r in enumerate(cells):
            for name in r[0].split():
                targets[i, col[name]] = 1
    else:
        lineno, cell = next((lineno, c) for lineno, r in body for c in r[1:] if c not in ("0", "1"))
        raise ImgrecError(f"{path}:{lineno}: {cell!r} is not 0 or 1")
    if not label_names:
        raise ImgrecError(f"{path}: no labels found")
    return _decode(paths, targets, label_names, decoding, cache_dir)


def _table_rows(path: Path) -> list[tuple[int, list[str]]]:
    """The non-blank rows of a table with the line each ends on, cells stripped."""
    delimiter = "\t" if path.suffix.lower() in (".tsv", ".tab") else ","
    try:
        with path.open(newline="", encoding="utf-8-sig") as fh:
            reader = csv.reader(fh, delimiter=delimiter)
            return [(reader.line_num, cells) for cells in ([c.strip() for c in r] for r in reader) if any(cells)]
    except UnicodeDecodeError as e:
        raise ImgrecError(f"{path}: not UTF-8 text (byte {e.start}: {e.reason})") from e
    except csv.Error as e:
        raise ImgrecError(f"{path}: not a readable table ({e})") from e


def _decode(paths: list[Path], targets: np.ndarray, label_names: list[str], decoding: Decoding,
            cache_dir: str | Path | None) -> Dataset:
    images, kept, skipped = load_images(paths, decoding, cache_dir)
    if skipped:
        log.warning("skipped %d bad image(s) (%s=skip); first: %s", len(skipped), decoding.key("on_bad_image"),
                    skipped[0])
    return Dataset(images, targets[kept], label_names, [paths[i].name for i in kept], skipped)
