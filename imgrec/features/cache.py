"""The frozen-backbone fast path: compute what the frozen part of the net gives once, then train the rest on it.

The frozen parts are the backbones (pooled features; the head trains on them) or, with
``model.net.train_blocks=K``, each backbone below its cut (activations, fp16; the stages above the cut
and the head train on them). Under flip test-time augmentation (``model.net.tta=flip``) the same is
cached for the mirrored images, and val and test serve both.

Features are cached on disk per backbone under a content key (pixels, labels, backbone weights, input
size, augmentation, number of views and the engine that ran the backbone), so a changed image, backbone
or preprocessing never reuses stale features and engines never mix theirs, while the runs of a sweep
that share them compute them once.

The engine (``cache.engine``, :func:`imgrec.features.engines.resolve_engine`) is tried on the first batch of an
extraction; one that fails there (export or runtime) is logged in one line and eager extracts instead.

Under DDP every rank extracts in ``setup``: each computes its share of the chunks (chunk ``k`` is
local rank ``k % ranks per node``'s), local rank 0 gathers them into the cache file, and every rank
maps that. Every rank makes the same collective calls in the same order: whether to extract and
which engine are agreed by all (``reduce_boolean_decision``), then two barriers.

Extraction itself (keys, chunked and resumable writing) is :mod:`imgrec.features.extraction`. An
unreadable or truncated cache file is logged, deleted and computed again.
"""

from __future__ import annotations

import hashlib
import logging
import shutil
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader
from torch.utils.data import Dataset as TorchDataset

from imgrec.data.datamodule import MultiLabelDataModule
from imgrec.data.record import Dataset
from imgrec.data.sampler import EpochShuffleSampler
from imgrec.data.split import Split
from imgrec.features.engines import check_setting, resolve_engine, settle_encoder
from imgrec.features.extraction import (
    CHUNK_BATCHES,
    Encoder,
    FeatureBackbone,
    Shard,
    backbone_encoder,
    batches,
    extract,
    extract_share,
    feature_key,
    open_features,
    write_features,
)
from imgrec.features.mirror import Mirrored
from imgrec.utils.errors import ImgrecError

log = logging.getLogger(__name__)

class FeatureSet(TorchDataset):
    """Rows of cached features: one table ``(n_unique, views, F_part)`` per frozen part, concatenated per
    item. Item ``k * views + v`` is view ``v`` of item ``k``; with one view that is just ``k``.
    :class:`EpochShuffleSampler` draws the view of each item per epoch. With ``mirrored`` (the tables
    of the mirrored images, one view) an item is ``(2, F)``: plain and mirrored, for flip TTA."""

    def __init__(self, tables: Sequence[np.ndarray], targets: np.ndarray, rows: np.ndarray,
                 mirrored: Sequence[np.ndarray] | None = None) -> None:
        self.tables, self.mirrored = list(tables), mirrored
        self.targets = torch.from_numpy(targets.astype(np.float32))
        self.rows = rows  # index into the tables for each item (repeats for oversampled copies)
        self.views = self.tables[0].shape[1]

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        k, v = divmod(index, self.views)
        r = self.rows[k]
        x = np.concatenate([t[r, v] for t in self.tables])  # a copy: the tables may be read-only memmaps
        if self.mirrored is not None:
            x = np.stack([x, np.concatenate([t[r, 0] for t in self.mirrored])])
        return torch.from_numpy(x), self.targets[r]


class FeatureDataModule(pl.LightningDataModule):
    """The same splits and balancing as ``images``, with the cached output of the net's frozen parts in
    place of images: each part's, concatenated in the given order (a net's own order, as it expects them).

    Plain features cover every image (so do mirrored ones, with ``mirror_eval``) and augmented views
    every non-test image (train and val), so runs that only split the same images differently
    (cross-validation folds) share them. The cache files are memory-mapped, not loaded. ``data`` and
    ``split`` are the image datamodule's, so evaluation and reports read either kind alike."""

    def __init__(self, images: MultiLabelDataModule, backbones: Sequence[FeatureBackbone], cache_dir: str | Path,
                 views: int = 4, engine: str = "auto", chunk_batches: int = CHUNK_BATCHES,
                 mirror_eval: bool = False) -> None:
        super().__init__()
        check_setting(engine)
        self.images, self.backbones, self.cache_dir = images, list(backbones), Path(cache_dir)
        self.views = views if images.augment is not None else 1
        self.engine, self.chunk_batches, self.mirror_eval = engine, chunk_batches, mirror_eval
        self.encoders: dict[int, tuple[str, Encoder]] = {}  # per backbone (by id): the engine settled on, its encoder
        self.plain: list[np.ndarray] | None = None  # per part: (images, 1, F_part)
        self.mirrored: list[np.ndarray] | None = None  # the same of the mirrored images, with mirror_eval
        self.train_views: list[np.ndarray] | None = None  # per part: (viewed, views, F_part)
        self.viewed: np.ndarray | None = None  # the images of train_views' rows

    @property
    def data(self) -> Dataset:
        return self.images.data

    @property
    def split(self) -> Split:
        return self.images.split

    @property
    def train_indices(self) -> np.ndarray:
        return self.images.train_indices

    @property
    def device(self) -> torch.device:
        """Where extraction runs: where training will (a GPU when there is one)."""
        trainer = self.trainer
        return trainer.strategy.root_device if trainer is not None else torch.device("cpu")

    def _encoder(self, backbone: FeatureBackbone, device: torch.device, first: torch.Tensor) -> tuple[str, Encoder]:
        """Settle the engine for ``backbone`` (``cache.engine``'s, or eager if it fails on ``first``); ranks
        that share chunks run the same engine, so one rank's failure sends every rank to eager."""
        engine, encoder = settle_encoder(backbone, self.engine, device, first)
        if not self._on_all_ranks(engine == resolve_engine(self.engine, device)):
            engine, encoder = "eager", backbone_encoder(backbone, device)
        self.encoders[id(backbone)] = engine, encoder
        return self.encoders[id(backbone)]

    def _path(self, backbone: FeatureBackbone, transform: str, indices: np.ndarray, augment: object,
              engine: str) -> Path:
        if augment is not None:  # each chunk seeds its own augmentation: the chunking is part of the result
            transform += f"|seed={torch.initial_seed()}|chunk={self.images.batch_size}x{self.chunk_batches}"
        content = self.images.data.fingerprint + hashlib.sha256(indices.tobytes()).hexdigest()
        return self.cache_dir / "features" / f"{feature_key(backbone, content, transform, engine)}.safetensors"

    def _cached_backbone(self, backbone: FeatureBackbone, transform: str, indices: np.ndarray, augment: object,
                         views: int) -> np.ndarray:
        """``(len(indices), views, num_features)``, memory-mapped from the cache, extracted first if absent.
        Under DDP the ranks of a node each extract their share of the chunks, local rank 0 gathers them
        into the file, and every rank maps it."""
        data, device = self.images.data, self.device
        shape = (len(indices), views, backbone.num_features)
        kind = "plain" if augment is None else "augmented"

        def cached(engine: str) -> tuple[Path, np.ndarray | None]:
            path = self._path(backbone, transform, indices, augment, engine)
            return path, open_features(path, shape)

        settled = self.encoders.get(id(backbone))
        engine = settled[0] if settled else resolve_engine(self.engine, device)
        path, features = cached(engine)
        if not self._on_all_ranks(features is not None) and settled is None:  # an engine is tried on one batch
            engine = self._encoder(backbone, device, next(batches(data.images, indices, 1)))[0]
            path, features = cached(engine)  # it fell back to eager, whose features may be cached
        if self._on_all_ranks(features is not None):
            log.info("features: cache hit %s (%s, %s, %s)", path, backbone.name, kind, engine)
            return features
        parts = path.with_suffix(".parts")
        resumed = len(list(parts.glob("*.safetensors"))) if parts.is_dir() else 0
        log.info("features: extracting %s with %s (%s, %d images x %d view(s)) into %s%s", backbone.name, engine,
                 kind, len(indices), views, path, f", resuming from {resumed} saved chunk(s)" if resumed else "")
        shard = self._shard()
        args = (self.encoders[id(backbone)][1], data.images, indices, self.images.batch_size, parts,
                backbone.num_features)
        more = {"views": views, "augment": augment, "seed": torch.initial_seed(), "chunk_batches": self.chunk_batches,
                "desc": f"features {backbone.name} {kind}"}
        start = time.perf_counter()
        home = next(backbone.parameters()).device
        backbone.to(device)
        try:
            if shard.count > 1:
                computed, seconds = extract_share(*args, shard, **more)
                log.info("features: %s (%s) rank %d/%d extracted %d of %d images in %.1f s (%.1f images/s)",
                         backbone.name, kind, shard.index, shard.count, computed, len(indices) * views, seconds,
                         computed / max(seconds, 1e-9))
                self.trainer.strategy.barrier("features: every share saved")
            if shard.index == 0:  # with shares: every chunk is saved and only read
                extracted = extract(*args, **more)
                seconds = time.perf_counter() - start
                log.info("features: %s (%s) extracted with %s in %.1f s (%.1f images/s)", backbone.name, kind,
                         engine, seconds, len(indices) * views / seconds)
                write_features(path, extracted)
                del extracted  # served from the memory-mapped file from now on
                shutil.rmtree(parts, ignore_errors=True)
        finally:
            backbone.to(home)
        if shard.count > 1:
            self.trainer.strategy.barrier("features: cache file written")
        features = open_features(path, shape)
        if features is None:
            raise ImgrecError(f"{path}: missing or unreadable right after its extraction (under DDP, cache.dir must "
                              "be a folder every rank of a node sees)")
        return features

    def _on_all_ranks(self, flag: bool) -> bool:
        """Whether ``flag`` holds on every rank: a collective under DDP, so every rank calls it at the same point."""
        trainer = self.trainer
        if trainer is None or trainer.world_size == 1:
            return flag
        return trainer.strategy.reduce_boolean_decision(flag, all=True)

    def _shard(self) -> Shard:
        """This process's share of an extraction: under DDP its local rank among the ranks of its node (a
        node's ranks share its cache folder; several nodes each extract, as before, into their own)."""
        trainer = self.trainer
        if trainer is None or trainer.world_size == 1:
            return Shard()
        return Shard(trainer.local_rank, trainer.num_devices)

    def _check_space(self, jobs: list[tuple[list[FeatureBackbone], str, np.ndarray, object, int]]) -> None:
        """Stop before extracting anything when the files still to extract would not fit on the disk."""
        engine = resolve_engine(self.engine, self.device)
        sizes = [len(indices) * views * b.num_features * b.feature_dtype.itemsize
                 for parts, transform, indices, augment, views in jobs for b in parts
                 if not self._path(b, transform, indices, augment, engine).is_file()]
        if not sizes:
            return
        need = sum(sizes) + max(sizes)  # the chunks of the file being extracted sit beside it until it is written
        folder = next(p for p in (self.cache_dir, *self.cache_dir.parents) if p.exists())
        free = shutil.disk_usage(folder).free
        if need > free:
            raise ImgrecError(f"cache.dir={self.cache_dir}: the {len(sizes)} cache file(s) to extract need "
                              f"{_size(need)} of disk while extracting ({_size(sum(sizes))} once written), "
                              f"{_size(free)} free there")

    def setup(self, stage: str | None = None) -> None:
        if self.plain is not None:
            return
        self.images.setup(stage)
        split, augment, everything = self.images.split, self.images.augment, np.arange(len(self.images.data))
        jobs = {"plain": (self.backbones, "plain", everything, None, 1)}
        if self.mirror_eval:  # flip TTA: val and test also need every image's mirror
            jobs["mirrored"] = ([Mirrored(b) for b in self.backbones], "plain", everything, None, 1)
        if augment is not None:
            log.info("features: training on %d cached augmented view(s) per image (cache.views)", self.views)
            self.viewed = np.union1d(split.train, split.val)  # every fold of the same test split shares them
            jobs["views"] = (self.backbones, f"augment={augment!r}", self.viewed, augment, self.views)
        self._check_space(list(jobs.values()))
        tables = {name: [self._cached_backbone(b, *job[1:]) for b in job[0]] for name, job in jobs.items()}
        self.plain, self.mirrored, self.train_views = tables["plain"], tables.get("mirrored"), tables.get("views")
        self.encoders.clear()  # compiled runtime models are not needed once the features are cached

    def train_dataloader(self) -> DataLoader:
        train, targets = self.images.train_indices, self.images.data.targets
        if self.train_views is None:
            dataset = FeatureSet(self.plain, targets, train)
        else:  # rows of the augmented views are self.viewed, in order
            dataset = FeatureSet(self.train_views, targets[self.viewed], np.searchsorted(self.viewed, train))
        sampler = EpochShuffleSampler(len(train), torch.initial_seed(), dataset.views, self.images.train_weights)
        return DataLoader(dataset, batch_size=self.images.batch_size, sampler=sampler)

    def _eval_loader(self, indices: np.ndarray) -> DataLoader:
        return DataLoader(FeatureSet(self.plain, self.images.data.targets, indices, self.mirrored),
                          batch_size=self.images.batch_size, shuffle=False)

    def val_dataloader(self) -> DataLoader:
        return self._eval_loader(self.images.split.val)

    def test_dataloader(self) -> DataLoader:
        return self._eval_loader(self.images.split.test)


def _size(n: int) -> str:
    return f"{n / 1e9:.2f} GB" if n >= 1e8 else f"{n / 1e6:.1f} MB"
