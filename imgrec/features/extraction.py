"""Feature extraction for the cache (:mod:`imgrec.features.cache`): the cache key, the batches, the
encoder of a backbone, and a chunked, resumable extraction.

An extraction writes its features in chunks (``<key>.parts/``, each written atomically), so a killed
one continues from its last chunk; each chunk seeds its augmentation from (seed, view, chunk), so the
result equals an uninterrupted extraction. An unreadable or truncated chunk is logged, deleted and
computed again. The same chunks let several processes share one extraction: :func:`extract_share`
computes the chunks of one :class:`Shard` (every ``count``-th), and an :func:`extract` afterwards finds
them all and only reads them, equal to one process's result for the same reason.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import struct
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from imgrec.data.batch_augment import BatchAugment
from imgrec.data.image_cache import release_pages
from imgrec.features.allocator import heap_allocations
from imgrec.utils.progress import progress

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
            augment: Callable[..., dict] | BatchAugment | None = None) -> Iterator[torch.Tensor]:
    """uint8 NCHW batches of ``images[indices]`` (N x H x W x 3, also a memmap), each gathered in one
    copy and handed on as an NCHW view of its NHWC memory: channels-last, the layout in which the
    CPU convolutions run fastest (measured: bench ``extraction``). Augmentation is per image, in order
    (an albumentations pipeline), or per batch (a :class:`BatchAugment`, ``augment.on_device``)."""
    for start in range(0, len(indices), batch_size):
        block = np.asarray(images[indices[start:start + batch_size]])
        if augment is not None and not isinstance(augment, BatchAugment):
            block = np.stack([augment(image=image)["image"] for image in block])
        batch = torch.from_numpy(np.ascontiguousarray(block)).permute(0, 3, 1, 2)
        yield augment(batch) if isinstance(augment, BatchAugment) else batch


def backbone_encoder(backbone: FeatureBackbone, device: torch.device) -> Encoder:
    """The backbone as an :data:`Encoder` on ``device``, in eval mode, computing in float32 whatever the
    trainer's precision (predict computes in float32, and bf16 moves EfficientNet-Lite0's pooled features
    by 8-12% of their norm: its batch norms amplify the rounding, which cost a frozen run 0.04 val and
    0.13 test micro F1 on the tiny test data, bf16-mixed, CPU), then giving its ``feature_dtype``."""
    backbone.eval()

    @torch.no_grad()  # not inference_mode: the features become inputs of a trained head
    def encode(x: torch.Tensor) -> torch.Tensor:
        with torch.autocast(device.type, enabled=False):
            return backbone(x.to(device, non_blocking=True)).float().to(backbone.feature_dtype).cpu()

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


@dataclass(frozen=True)
class Shard:
    """Process ``index`` of ``count`` sharing an extraction (a DDP rank among the ranks of its node)."""

    index: int = 0
    count: int = 1

    def owns(self, chunk: int) -> bool:
        return chunk % self.count == self.index


@dataclass(frozen=True)
class Chunk:
    view: int
    number: int  # within its view: the augmentation's seed
    rows: np.ndarray
    path: Path


def chunks(indices: np.ndarray, batch_size: int, parts: Path, views: int, chunk_batches: int) -> list[Chunk]:
    """Every chunk of an extraction, view by view, each named by its rows (another chunking never matches)."""
    size, listed = batch_size * chunk_batches, []
    for v in range(views):
        for c, start in enumerate(range(0, len(indices), size)):
            rows = indices[start:start + size]
            listed.append(Chunk(v, c, rows, parts / f"view{v}_rows{start}-{start + len(rows)}.safetensors"))
    return listed


def chunk_features(encode: Encoder, images: np.ndarray, chunk: Chunk, batch_size: int, num_features: int,
                   augment: object | None, seed: int) -> tuple[torch.Tensor, bool]:
    """The chunk's features, read from its file or computed and written; True when computed."""
    features = read_features(chunk.path, (len(chunk.rows), num_features))
    if features is not None:
        return features, False
    if augment is not None:
        augment.set_random_seed(chunk_seed(seed, chunk.view, chunk.number))
    features = torch.cat([encode(x) for x in batches(images, chunk.rows, batch_size, augment)])
    release_pages(images)  # a memory-mapped array's pages read so far leave this process's memory
    write_features(chunk.path, features)
    return features, True


def extract(encode: Encoder, images: np.ndarray, indices: np.ndarray, batch_size: int, parts: Path,
            num_features: int, views: int = 1, augment: object | None = None, seed: int = 0,
            chunk_batches: int = CHUNK_BATCHES, desc: str = "features") -> torch.Tensor:
    """``(len(indices), views, num_features)`` features of ``images[indices]``, each chunk of
    ``chunk_batches`` batches saved under ``parts`` as it completes; chunks already there are reused."""
    done = []
    with heap_allocations(), progress(views * len(indices), desc) as bar:
        for chunk in chunks(indices, batch_size, parts, views, chunk_batches):
            done.append(chunk_features(encode, images, chunk, batch_size, num_features, augment, seed)[0])
            bar.update(len(chunk.rows))
    per_view = len(done) // views  # chunks() lists them view by view
    return torch.stack([torch.cat(done[v * per_view:(v + 1) * per_view]) for v in range(views)], dim=1)


def extract_share(encode: Encoder, images: np.ndarray, indices: np.ndarray, batch_size: int, parts: Path,
                  num_features: int, shard: Shard, views: int = 1, augment: object | None = None, seed: int = 0,
                  chunk_batches: int = CHUNK_BATCHES, desc: str = "features") -> tuple[int, float]:
    """Compute and save the chunks of ``shard`` that are not saved yet (chunk ``k`` of all views in
    order is the shard's when ``k % count == index``). Returns the images computed and the seconds taken."""
    mine = [c for k, c in enumerate(chunks(indices, batch_size, parts, views, chunk_batches)) if shard.owns(k)]
    computed, start = 0, time.perf_counter()
    with heap_allocations(), progress(sum(len(c.rows) for c in mine), desc, bar=shard.index == 0) as bar:
        for chunk in mine:
            if chunk_features(encode, images, chunk, batch_size, num_features, augment, seed)[1]:
                computed += len(chunk.rows)
            bar.update(len(chunk.rows))
    return computed, time.perf_counter() - start
