"""Label statistics of a multi-hot target matrix: the study's label table, labels per image, and
co-occurrence. Also the targets of an annotations-only folder (image numbers without the images)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from imgrec.data.readers import read_annotation_file
from imgrec.utils.errors import ImgrecError


def annotation_targets(folder: str | Path, n_images: int | None = None) -> tuple[np.ndarray, list[str]]:
    """Targets of images ``1..n_images`` from ``<label>.txt`` files in ``folder`` (or in
    ``folder/annotations``). ``n_images`` defaults to the highest image number listed; images in no
    file have no label, so pass the true count when the last images may be unlabelled."""
    folder = Path(folder)
    if (folder / "annotations").is_dir():
        folder = folder / "annotations"
    files = sorted(folder.glob("*.txt"))
    if not files:
        raise ImgrecError(f"{folder}: no annotation files (<label>.txt) in the folder")
    numbers = [np.asarray(read_annotation_file(f), dtype=np.int64) for f in files]
    highest = max((int(n.max()) for n in numbers if len(n)), default=0)
    n_images = highest if n_images is None else n_images
    if highest > n_images:
        raise ImgrecError(f"{folder}: lists image {highest}, above n_images={n_images}")
    targets = np.zeros((n_images, len(files)), dtype=np.uint8)
    for j, n in enumerate(numbers):
        targets[n - 1, j] = 1
    return targets, [f.stem for f in files]


def label_table(targets: np.ndarray, label_names: list[str]) -> pd.DataFrame:
    """The study's table: images per label, most frequent first, and the share of all images."""
    counts = np.asarray(targets).sum(0).astype(int)
    table = pd.DataFrame({"label": label_names, "images": counts, "share": counts / max(len(targets), 1)})
    return table.sort_values(["images", "label"], ascending=[False, True], ignore_index=True)


def labels_per_image(targets: np.ndarray) -> pd.Series:
    """How many images carry 0, 1, 2... labels."""
    k = np.asarray(targets).sum(1).astype(int)
    return pd.Series(np.bincount(k), name="images").rename_axis("labels")


def cooccurrence(targets: np.ndarray, label_names: list[str]) -> pd.DataFrame:
    """``[a, b]`` = images carrying both labels a and b; the diagonal is each label's count."""
    y = np.asarray(targets).astype(np.int64)
    return pd.DataFrame(y.T @ y, index=label_names, columns=label_names)


def load_labels(source: str | Path | None = None, n_images: int | None = None,
                synthetic_images: int = 1200) -> tuple[np.ndarray, list[str], np.ndarray | None]:
    """Targets, label names and images (None when the folder has annotations only) of ``source``:
    None for the embedded synthetic data, a course-format folder (``images/`` + ``annotations/``),
    or a folder of annotation files alone (images ``1..n_images``)."""
    if source is None:
        from imgrec.data.synthetic import make_synthetic

        data = make_synthetic(synthetic_images)
        return data.targets, data.label_names, data.images
    source = Path(source)
    if (source / "images").is_dir():
        from imgrec.data.readers import read_course

        data = read_course(source)
        return data.targets, data.label_names, data.images
    targets, names = annotation_targets(source, n_images)
    return targets, names, None
