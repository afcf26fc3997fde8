"""Small JPEG thumbnails of the images a dashboard shows, kept in the run folder so that the dashboard
inlines files and never re-reads the data.

The run report writes them (it has the pixels); this module owns their one file,
``report/thumbnails.json``: ``{image name: "data:image/jpeg;base64,..."}``.
"""

from __future__ import annotations

import base64
import io
import json
from collections.abc import Iterable
from pathlib import Path

import numpy as np
from PIL import Image

from imgrec.utils.io import write_json

FILE = "thumbnails.json"
SIZE = 128  # longest side, pixels
QUALITY = 80
REVIEW = 100  # missing-label candidates (most confident first) that get a thumbnail for the label review


def data_uri(image: np.ndarray) -> str:
    """A JPEG ``data:`` URI of an ``(H, W, 3)`` uint8 image shrunk to at most SIZE pixels a side."""
    pil = Image.fromarray(np.asarray(image, dtype=np.uint8))
    pil.thumbnail((SIZE, SIZE))
    buffer = io.BytesIO()
    pil.save(buffer, format="JPEG", quality=QUALITY)
    return "data:image/jpeg;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def save_thumbnails(report_dir: Path, images: np.ndarray, names: list[str], rows: Iterable[int]) -> Path:
    """Thumbnails of dataset rows ``rows`` (``images`` and ``names`` are the whole dataset's)."""
    return write_json(Path(report_dir) / FILE, {names[i]: data_uri(images[i]) for i in dict.fromkeys(rows)})


def load_thumbnails(report_dir: Path) -> dict[str, str]:
    path = Path(report_dir) / FILE
    return json.loads(path.read_text()) if path.is_file() else {}


def from_config(run_dir: Path, names: Iterable[str]) -> dict[str, str]:
    """Thumbnails of images no report kept (a CV's train+val candidates, runs written without galleries),
    read through the run's data config (``config_resolved.yaml``)."""
    from hydra.utils import instantiate
    from omegaconf import OmegaConf

    data = instantiate(OmegaConf.load(Path(run_dir) / "config_resolved.yaml").data).read()
    row = {name: i for i, name in enumerate(data.names)}
    return {name: data_uri(data.images[row[name]]) for name in names if name in row}
