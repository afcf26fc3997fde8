"""Feature extraction for the cache (:mod:`imgrec.features.cache`): the cache key, the batches, the
encoder of a backbone, and a chunked, resumable extraction.

An extraction writes its features in chunks (``<key>.parts/``, each written atomically), so a killed
one continues from its last chunk; each chunk seeds its augmentation from (seed, view, chunk), so the
result equals an uninterrupted extraction. An unreadable or truncated chunk is logged, deleted and
computed again.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import struct
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Protocol

import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from tqdm.auto import tqdm

from imgrec.features.allocator import heap_allocations

log = logging.getLogger(__name__)

# A function from a uint8 NCHW batch to its ``(N, F)`` features: a Backbone, or another engine for it.
Encoder = Callable[[torch.Tensor], torch.Tensor]
CHUNK_BATCHES = 16  # batches per chunk file: what a killed extraction loses at most


class FeatureBackbone(Protocol):
    """What the cache needs of a frozen backbone (``imgrec.models.backbones.Backbone`` is one; so is the
    frozen part of one below a cut, ``imgrec.models.cuts.Trunk``): a module from uint8 NCHW images to
    ``num_features`` features per image (pooled features, or flattened activations), named, at an input
    size, stored as ``feature_dtype``."""

    name: str
    input_size: int
    num_features: int
    feature_dtype: torch.dtype

    def __call__(self, x: torch.Tensor) -> torch.Tensor: ...

    def parameters(self) -> Iterator[torch.nn.Parameter]: ...

    def to(self, device: torch.device) -> torch.nn.Module: ...

    def state_dict(self) -> dict[str, torch.Tensor]: ...

    def eval(self) -> torch.nn.Module: ...


def weights_digest(module: FeatureBackbone) -> str:
    h = hashlib.sha256()
    for name, tensor in module.state_dict().items():
        h.update(name.encode())
        h.update(tensor.detach().cpu().reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def feature_key(backbone: FeatureBackbone, data_fingerprint: str, transform: str, engine: str = "eager") -> str:
    # eager keeps the key it had before there were engines, so features cached then stay valid
    ran_by = "" if engine == "eager" else f"engine={engine}|"
    h = hashlib.sha256(f"{data_fingerprint}|{transform}|{backbone.name}|{backbone.input_size}|{ran_by}".encode())
    h.update(weights_digest(backbone).encode())
    return h.hexdigest()[:24]


def batches(images: np.ndarray, indices: np.ndarray, batch_size: int,
            augment: Callable[..., dict] | None = None) -> Iterator[torch.Tensor]:
    """uint8 NCHW batches of ``images[indices]`` (N x H x W x 3, also a memmap), each gathered in one
    copy and handed on as an NCHW view of its NHWC memory: channels-last, the layout in which the
    CPU convolutions run fastest (measured: bench ``extraction``). Augmentation is per image, in order."""
    for start in range(0, len(indices), batch_size):
        block = np.asarray(images[indices[start:start + batch_size]])
        if augment is not None:
            block = np.stack([augment(image=image)["image"] for image in block])
        yield torch.from_numpy(np.ascontiguousarray(block)).permute(0, 3, 1, 2)


def backbone_encoder(backbone: FeatureBackbone, device: torch.device, bf16: bool = False) -> Encoder:
    """The backbone as an :data:`Encoder` on ``device`` (in eval mode, bf16 autocast when asked), giving
    its ``feature_dtype``."""
    backbone.eval()

    @torch.no_grad()  # not inference_mode: the features become inputs of a trained head
    def encode(x: torch.Tensor) -> torch.Tensor:
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
            return backbone(x.to(device, non_blocking=True)).to(backbone.feature_dtype).cpu()

    return encode


def read_features(path: Path, shape: tuple[int, ...]) -> torch.Tensor | None:
    """The features in ``path`` if it holds a readable tensor of ``shape``; a damaged file (truncated,
    corrupted, wrong shape) is logged in one line and deleted, so that the caller computes it again."""
    if not path.is_file():
        return None
    try:
        features = load_file(path)["features"]
        if tuple(features.shape) != shape:
            raise ValueError(f"shape {tuple(features.shape)}, expected {shape}")
        return features
    except (SafetensorError, OSError, KeyError, ValueError) as err:
        log.warning("features: %s is damaged (%s); deleting it and extracting again", path, err)
        path.unlink(missing_ok=True)
        return None


STORED = {"F16": np.float16, "F32": np.float32}  # safetensors dtype -> numpy, as the cache stores features


def open_features(path: Path, shape: tuple[int, ...]) -> np.ndarray | None:
    """The features in ``path`` memory-mapped, read-only, if it holds a whole tensor of ``shape``: pages
    are read when rows are used and shared by every process that maps them (DDP ranks, runs of a sweep),
    so cached activations of gigabytes need not fit in memory. A damaged file is handled as by
    :func:`read_features`."""
    if not path.is_file():
        return None
    try:
        with path.open("rb") as f:
            (length,) = struct.unpack("<Q", f.read(8))
            if length > path.stat().st_size:
                raise ValueError("header longer than the file")
            entry = json.loads(f.read(length))["features"]
        dtype, (start, end) = np.dtype(STORED[entry["dtype"]]), entry["data_offsets"]
        if tuple(entry["shape"]) != shape:
            raise ValueError(f"shape {tuple(entry['shape'])}, expected {shape}")
        if end - start != math.prod(shape) * dtype.itemsize or 8 + length + end > path.stat().st_size:
            raise ValueError("truncated")
        return np.memmap(path, dtype, "r", offset=8 + length + start, shape=shape)
    except (OSError, KeyError, TypeError, ValueError, struct.error) as err:
        log.warning("features: %s is damaged (%s); deleting it and extracting again", path, err)
        path.unlink(missing_ok=True)
        return None


def write_features(path: Path, features: torch.Tensor) -> None:
    """Write to a temporary file, then rename: a reader sees a whole file or none."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.{os.getpid()}.tmp")  # processes that extract at once never share it
    save_file({"features": features.contiguous()}, tmp)
    tmp.replace(path)


def chunk_seed(seed: int, view: int, chunk: int) -> int:
    return int(np.random.SeedSequence([seed, view, chunk]).generate_state(1)[0])


def extract(encode: Encoder, images: np.ndarray, indices: np.ndarray, batch_size: int, parts: Path,
            num_features: int, views: int = 1, augment: object | None = None, seed: int = 0,
            chunk_batches: int = CHUNK_BATCHES, desc: str = "features") -> torch.Tensor:
    """``(len(indices), views, num_features)`` features of ``images[indices]``, each chunk of
    ``chunk_batches`` batches saved under ``parts`` as it completes; chunks already there are reused."""
    chunk = batch_size * chunk_batches
    starts = range(0, len(indices), chunk)
    stacked = []
    with heap_allocations(), tqdm(total=views * len(indices), desc=desc, unit="img", leave=False) as bar:
        for v in range(views):
            done = []
            for c, start in enumerate(starts):
                rows = indices[start:start + chunk]
                path = parts / f"view{v}_rows{start}-{start + len(rows)}.safetensors"  # another chunking never matches
                features = read_features(path, (len(rows), num_features))
                if features is None:
                    if augment is not None:
                        augment.set_random_seed(chunk_seed(seed, v, c))
                    features = torch.cat([encode(x) for x in batches(images, rows, batch_size, augment)])
                    write_features(path, features)
                done.append(features)
                bar.update(len(rows))
            stacked.append(torch.cat(done))
    return torch.stack(stacked, dim=1)
