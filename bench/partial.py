"""7. Partial fine-tuning (``model.net.train_blocks=K``): a training epoch on cached activations against the
same epoch from pixels, with the same trainable stages (the last K of Lite0 at 224 px, then the head).

Both sides are the run's own module (``conf/`` defaults, ``MultiLabelModule`` and ``TransferNet``) doing
optimizer steps on the same images: from pixels through a DataLoader over ``ImageSet`` (the image path),
and from activations memory-mapped from a safetensors file through ``FeatureSet`` (the cache's path; the
activations of the timed images are computed first, untimed). The sides alternate block by block of
the same images for ``rounds`` rounds, so load from other processes falls on both alike; each side's
median seconds per image times the dev data's 5,100 train images is its epoch. The bound: the pixel
side also computes the frozen part's forward, the cached side only the trained part's forward and
backward, so the ratio is about ``1 + t(frozen forward) / t(cached step)``; the frozen forward is
timed in the same rounds (``bound``). The cached side feeds the trained stages channels-last
(``Cut.features``); the pixel side runs as the image path does (NCHW batches, ``model.channels_last``
off).
"""

from __future__ import annotations

import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from hydra.utils import instantiate
from torch.utils.data import DataLoader

from bench.common import IDL_DEV, Result
from imgrec.config.compose import compose_config
from imgrec.data.datamodule import ImageSet
from imgrec.data.readers import read_course
from imgrec.data.record import Dataset
from imgrec.data.synthetic import make_synthetic
from imgrec.features.cache import FeatureSet
from imgrec.features.extraction import open_features, write_features

TRAIN_IMAGES = 5100  # idl2020-dev's train split (0.85 of 6,000): what one epoch steps over
BATCH = 64


def seconds_per_image(module: torch.nn.Module, optimizer: torch.optim.Optimizer, loader: DataLoader,
                      cached: bool) -> float:
    module.on_features = cached
    n, start = 0, time.perf_counter()
    for x, y in loader:
        loss = module.loss(module(x), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        n += len(y)
    return (time.perf_counter() - start) / n


@torch.no_grad()
def frozen_seconds_per_image(trunk: torch.nn.Module, loader: DataLoader) -> float:
    n, start = 0, time.perf_counter()
    for x, _ in loader:
        trunk(x)
        n += len(x)
    return (time.perf_counter() - start) / n


def measure(data: Dataset, indices: np.ndarray, size: int, blocks: int, rounds: int, workdir: Path) -> dict:
    cfg = compose_config(workdir / "run", [f"model.net.train_blocks={blocks}", f"model.net.input_size={size}",
                                           "logger=none"])
    torch.manual_seed(0)
    module = instantiate(cfg.model, label_names=data.label_names, meta={}, loss=torch.nn.BCEWithLogitsLoss())
    module.net.set_backbones_frozen(False)  # as UnfreezeBackbones leaves it from epoch model.finetuning.frozen_epochs
    module.train()
    optimizer = module.configure_optimizers()
    (trunk,) = module.net.cached_parts()
    pixels = DataLoader(ImageSet(data, indices), batch_size=BATCH)
    with torch.no_grad():
        activations = torch.cat([trunk(x) for x, _ in pixels])
    path = workdir / f"activations_{blocks}.safetensors"
    write_features(path, activations[:, None])
    table = open_features(path, (len(indices), 1, trunk.num_features))
    cached = DataLoader(FeatureSet([table], data.targets[indices], np.arange(len(indices))), batch_size=BATCH)
    seconds_per_image(module, optimizer, cached, True)  # warm-up: allocations, first-call costs
    seconds_per_image(module, optimizer, pixels, False)
    sides = {"cached": [], "pixels": [], "frozen": []}  # frozen: the part below the cut, forward only (eager)
    for _ in range(rounds):
        sides["cached"].append(seconds_per_image(module, optimizer, cached, True))
        sides["pixels"].append(seconds_per_image(module, optimizer, pixels, False))
        sides["frozen"].append(frozen_seconds_per_image(trunk, pixels))
    per_image = {side: statistics.median(times) for side, times in sides.items()}
    return {"blocks": blocks, "cut": trunk.name, "activation_shape": list(trunk.activation_shape),
            "kb_per_image": trunk.num_features * 2 / 1e3,
            "cached_s_per_epoch": per_image["cached"] * TRAIN_IMAGES,
            "pixels_s_per_epoch": per_image["pixels"] * TRAIN_IMAGES,
            "ratio": per_image["pixels"] / per_image["cached"],
            "frozen_forward_s_per_epoch": per_image["frozen"] * TRAIN_IMAGES,
            "bound": 1 + per_image["frozen"] / per_image["cached"],
            "rounds": {k: [t * TRAIN_IMAGES for t in v] for k, v in sides.items()}}


def run(quick: bool = False, blocks: tuple[int, ...] = (1, 2, 3), rounds: int = 3) -> Result:
    data = make_synthetic(128, seed=0) if quick else read_course(IDL_DEV)
    size, n = (64, 2 * BATCH) if quick else (224, 6 * BATCH)
    indices = np.random.default_rng(0).permutation(len(data))[:n]
    with tempfile.TemporaryDirectory() as tmp:
        rows = [measure(data, indices, size, k, 2 if quick else rounds, Path(tmp)) for k in blocks]
    target = [r for r in rows if r["blocks"] <= 2]
    worst = min(target, key=lambda r: r["ratio"])
    return Result("partial", f"epoch from pixels (K={worst['blocks']})",
                  f"epoch on cached activations (K={worst['blocks']})", worst["pixels_s_per_epoch"],
                  worst["cached_s_per_epoch"], f"s/epoch ({TRAIN_IMAGES} images, Lite0 {size} px)", worst["ratio"],
                  ">= 3x for K <= 2", worst["ratio"] >= 3,
                  {"per_blocks": rows, "timed_images": n, "input_size": size, "quick": quick})
