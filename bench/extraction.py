"""5. The real feature-extraction path against the backbone's best case, side by side.

Best case: one batch already in memory, pushed through the backbone again and again (as ``backbone``
does). Real path: ``imgrec.features.extraction.extract`` over the dataset (batches gathered from the uint8
array, chunk files written). For reference also the former per-item path: a DataLoader over
``ImageSet`` (a copy and permute per image, default collation into contiguous NCHW). The three are
interleaved, repeat by repeat, so that load from other processes hits them alike; medians are reported.
"""

from __future__ import annotations

import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader

from bench.common import Result
from imgrec.data.datamodule import ImageSet
from imgrec.data.synthetic import make_synthetic
from imgrec.features.extraction import backbone_encoder, extract
from imgrec.models.backbones import create_backbone

BATCH = 64


def sides(size: int, n: int) -> dict:
    data = make_synthetic(n, seed=0)
    backbone = create_backbone("efficientnet_lite0", input_size=size)
    encode = backbone_encoder(backbone, torch.device("cpu"))
    one = torch.from_numpy(np.ascontiguousarray(data.images[:BATCH])).permute(0, 3, 1, 2)
    every = np.arange(n)
    parts = Path(tempfile.mkdtemp(prefix="bench-extraction-"))

    def best_case() -> None:
        for _ in range(n // BATCH):
            encode(one)

    def real_path() -> None:
        for f in parts.glob("*"):
            f.unlink()
        extract(encode, data.images, every, BATCH, parts, backbone.num_features, desc="bench")

    def per_item() -> None:
        for x, _ in DataLoader(ImageSet(data, every), batch_size=BATCH):
            encode(x)

    encode(one)  # warm-up
    return {"best_case": (best_case, n // BATCH * BATCH), "real_path": (real_path, n), "per_item": (per_item, n)}


def measure(size: int, n: int, repeats: int) -> dict[str, float]:
    """Median images/s of each side over ``repeats`` interleaved rounds."""
    fns = sides(size, n)
    rates: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(repeats):
        for name, (fn, images) in fns.items():
            start = time.perf_counter()
            fn()
            rates[name].append(images / (time.perf_counter() - start))
    return {name: statistics.median(r) for name, r in rates.items()}


def run(quick: bool = False) -> Result:
    details: dict[str, float] = {"torch_threads": torch.get_num_threads()}
    for size, n, repeats in ((128, 192, 5), (224, 128, 3)):
        rates = measure(size, 128 if quick else n, 1 if quick else repeats)
        for name, rate in rates.items():
            details[f"lite0_{size}px_{name}_images_per_s"] = rate
        details[f"lite0_{size}px_ratio"] = rates["real_path"] / rates["best_case"]
        details[f"lite0_{size}px_per_item_ratio"] = rates["per_item"] / rates["best_case"]
    best, real = details["lite0_128px_best_case_images_per_s"], details["lite0_128px_real_path_images_per_s"]
    ratio = min(details["lite0_128px_ratio"], details["lite0_224px_ratio"])
    return Result("extraction", "one batch repeated (best case)", "features.extract over the data, 128 px", best,
                  real, "images/s", real / best, ">= 0.8 at 128 and 224 px", ratio >= 0.8, details)
