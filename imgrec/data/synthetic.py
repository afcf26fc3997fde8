"""The embedded dataset: 14 drawn motifs with the course data's statistics, generated from a seed.

Each label is a motif an ImageNet backbone can see (a disc, stripes, a star...). Child motifs are
drawn on their parent, so the implications hold by construction (face => disc, like portrait =>
people). Marginal frequencies follow the course data: ``disc`` ~32% like ``people``, ``bow`` ~0.55%
like ``baby`` (about 1/60), and about half of the images carry no label. ``drop_rate`` removes
labels from the targets while keeping the motif in the picture, imitating missing annotations.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from imgrec.data.record import Dataset


@dataclass(frozen=True)
class Motif:
    name: str
    p: float  # probability given the parent (or marginal for a root)
    parent: str | None = None


# Course analogue in comments: the synthetic label plays its role in the statistics.
MOTIFS = (
    Motif("disc", 0.32),  # people
    Motif("ring", 0.50, "disc"),  # female
    Motif("face", 0.49, "disc"),  # portrait
    Motif("hat", 0.46, "disc"),  # male
    Motif("bow", 0.035, "face"),  # baby
    Motif("stripes", 0.055),  # clouds
    Motif("checker", 0.038),  # flower
    Motif("dark", 0.030),  # night
    Motif("triangle", 0.026),  # tree
    Motif("square", 0.022),  # dog
    Motif("star", 0.018),  # bird
    Motif("grid", 0.016),  # car
    Motif("waves", 0.0087),  # sea
    Motif("zigzag", 0.006),  # river
)
LABELS = sorted(m.name for m in MOTIFS)


def sample_labels(rng: np.random.Generator) -> set[str]:
    """Roots independently, then children given their parent (MOTIFS lists parents first)."""
    present: set[str] = set()
    for m in MOTIFS:
        if (m.parent is None or m.parent in present) and rng.random() < m.p:
            present.add(m.name)
    return present


def _color(rng: np.random.Generator, lo: int = 0, hi: int = 256) -> tuple[int, int, int]:
    return tuple(int(c) for c in rng.integers(lo, hi, 3))


def _draw_figure(d: ImageDraw.ImageDraw, x: int, y: int, r: int, labels: set[str], rng: np.random.Generator) -> None:
    """The disc and what hangs on it (ring, face, hat, bow): child motifs are drawn on their parent."""
    y = max(y, int(0.4 * r) + r)  # leave room for a hat
    if "ring" in labels:
        w = max(3, r // 5)
        d.ellipse([x - r - 2 * w, y - r - 2 * w, x + r + 2 * w, y + r + 2 * w], outline=_color(rng), width=w)
    d.ellipse([x - r, y - r, x + r, y + r], fill=_color(rng, 100))
    if "face" in labels:
        e = max(2, r // 6)
        for ex in (x - r // 3, x + r // 3):
            d.ellipse([ex - e, y - r // 3 - e, ex + e, y - r // 3 + e], fill=(0, 0, 0))
        d.arc([x - r // 2, y - r // 4, x + r // 2, y + r // 2], 20, 160, fill=(0, 0, 0), width=max(2, r // 8))
    if "hat" in labels:
        d.polygon([(x - r, y - r // 2), (x + r, y - r // 2), (x, y - r - int(0.8 * r))], fill=_color(rng))
    if "bow" in labels:
        b = max(4, r // 3)
        d.polygon([(x, y + r), (x - 2 * b, y + r - b), (x - 2 * b, y + r + b)], fill=(200, 0, 0))
        d.polygon([(x, y + r), (x + 2 * b, y + r - b), (x + 2 * b, y + r + b)], fill=(200, 0, 0))


def draw_image(labels: set[str], rng: np.random.Generator, size: int = 128) -> np.ndarray:
    """Draw one image showing exactly the motifs in ``labels`` on a cluttered background."""
    s = size
    dark = "dark" in labels
    top, bottom = (_color(rng, 0, 60), _color(rng, 0, 60)) if dark else (_color(rng, 120), _color(rng, 120))
    t = np.linspace(0, 1, s)[:, None, None]
    bg = (1 - t) * np.array(top) + t * np.array(bottom)
    img = Image.fromarray(np.broadcast_to(bg, (s, s, 3)).astype(np.uint8))
    d = ImageDraw.Draw(img)
    for _ in range(rng.integers(2, 6)):  # clutter: thin random lines carry no label
        d.line([tuple(rng.integers(0, s, 2)), tuple(rng.integers(0, s, 2))], fill=_color(rng), width=1)

    def box(lo: float, hi: float) -> tuple[int, int, int]:
        r = int(rng.uniform(lo, hi) * s)
        return int(rng.integers(r, s - r)), int(rng.integers(r, s - r)), r

    if "stripes" in labels:
        c, y0, h = _color(rng), int(rng.integers(0, s // 2)), int(rng.integers(4, 7))
        for y in range(y0, y0 + s // 2, 2 * h):
            d.rectangle([0, y, s, y + h - 1], fill=c)
    if "waves" in labels:
        c, y0 = _color(rng), rng.uniform(0.55, 0.75) * s
        for k in range(3):
            pts = [(x, y0 + 10 * k + 5 * math.sin(x / 6)) for x in range(0, s, 2)]
            d.line(pts, fill=c, width=3)
    if "zigzag" in labels:
        c, x0 = _color(rng), int(rng.integers(10, s - 40))
        pts = [(x0 + (0 if i % 2 else 24), i * 14) for i in range(s // 14 + 2)]
        d.line(pts, fill=c, width=4)
    if "grid" in labels:
        x, y, r = box(0.15, 0.22)
        for k in range(-r, r + 1, 7):
            d.line([(x + k, y - r), (x + k, y + r)], fill=(20, 20, 20), width=2)
            d.line([(x - r, y + k), (x + r, y + k)], fill=(20, 20, 20), width=2)
    if "checker" in labels:
        x, y, r = box(0.12, 0.2)
        cell, a, b = max(4, r // 3), _color(rng), _color(rng)
        for i, cx in enumerate(range(x - r, x + r, cell)):
            for j, cy in enumerate(range(y - r, y + r, cell)):
                d.rectangle([cx, cy, cx + cell - 1, cy + cell - 1], fill=a if (i + j) % 2 else b)
    if "square" in labels:
        x, y, r = box(0.08, 0.15)
        d.rectangle([x - r, y - r, x + r, y + r], fill=_color(rng))
    if "triangle" in labels:
        x, y, r = box(0.1, 0.18)
        d.polygon([(x, y - r), (x - r, y + r), (x + r, y + r)], fill=_color(rng))
    if "star" in labels:
        x, y, r = box(0.1, 0.16)
        pts = [(x + (r if k % 2 == 0 else r / 2.5) * math.sin(k * math.pi / 5),
                y - (r if k % 2 == 0 else r / 2.5) * math.cos(k * math.pi / 5)) for k in range(10)]
        d.polygon(pts, fill=_color(rng))
    if "disc" in labels:
        _draw_figure(d, *box(0.16, 0.24), labels, rng)
    arr = np.asarray(img, dtype=np.int16) + rng.normal(0, 6, (s, s, 3)).astype(np.int16)
    return np.clip(arr, 0, 255).astype(np.uint8)


def make_synthetic(n_images: int = 1200, seed: int = 0, drop_rate: float = 0.0, image_size: int = 128) -> Dataset:
    """Generate the dataset. Image ``i`` depends only on ``(seed, i)``, so sizes nest."""
    if n_images < 1:
        raise ValueError(f"n_images={n_images}: must be at least 1")
    if not 0.0 <= drop_rate < 1.0:
        raise ValueError(f"drop_rate={drop_rate}: must be in [0, 1)")
    images = np.empty((n_images, image_size, image_size, 3), dtype=np.uint8)
    targets = np.zeros((n_images, len(LABELS)), dtype=np.uint8)
    for i in range(n_images):
        images[i], targets[i] = synthetic_image(i, seed, drop_rate, image_size)
    return Dataset(images, targets, list(LABELS), [f"im{i + 1}.jpg" for i in range(n_images)])


def synthetic_image(i: int, seed: int = 0, drop_rate: float = 0.0,
                    image_size: int = 128) -> tuple[np.ndarray, np.ndarray]:
    """Image ``i`` of the dataset of ``seed`` and its multi-hot targets (in :data:`LABELS` order), on its own:
    large sets can be written a part at a time (``bench/scaling.py``)."""
    rng = np.random.default_rng([seed, i])
    labels = sample_labels(rng)
    image = draw_image(labels, rng, image_size)
    targets = np.zeros(len(LABELS), dtype=np.uint8)
    for name in sorted(labels):  # a set: its order changes with the process (PYTHONHASHSEED)
        if rng.random() >= drop_rate:
            targets[LABELS.index(name)] = 1
    return image, targets


def write_course_format(dataset: Dataset, root: Path, quality: int = 95) -> Path:
    """Write ``images/im<N>.jpg`` and ``annotations/<label>.txt`` exactly as the course shipped them."""
    root = Path(root)
    (root / "images").mkdir(parents=True, exist_ok=True)
    (root / "annotations").mkdir(parents=True, exist_ok=True)
    for name, image in zip(dataset.names, dataset.images):
        Image.fromarray(image).save(root / "images" / name, quality=quality)
    numbers = [name.removeprefix("im").rsplit(".", 1)[0] for name in dataset.names]
    for j, label in enumerate(dataset.label_names):
        lines = [numbers[i] for i in np.flatnonzero(dataset.targets[:, j])]
        (root / "annotations" / f"{label}.txt").write_text("".join(f"{n}\n" for n in lines))
    return root
