"""The frozen-backbone fast path: compute pooled features once, then train the head on them.

Features are cached on disk per backbone under a content key (pixels, labels, backbone weights, input
size, augmentation, number of views and the engine that ran the backbone), so a changed image, backbone
or preprocessing never reuses stale features and engines never mix theirs, while the runs of a sweep
that share them compute them once.

The engine (``cache.engine``, :func:`imgrec.features.engines.resolve_engine`) is tried on the first batch of an
extraction; one that fails there (export or runtime) is logged in one line and eager extracts instead.

Under DDP every rank extracts in ``setup``: each computes its share of the chunks (chunk ``k`` is
local rank ``k % ranks per node``'s), local rank 0 gathers them into the cache file, and every rank
reads that. Every rank makes the same collective calls in the same order: whether to extract and
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
    read_features,
    write_features,
)
from imgrec.utils.errors import ImgrecError

log = logging.getLogger(__name__)

class FeatureSet(TorchDataset):
    """Rows of cached features. Item ``k * views + v`` is view ``v`` of item ``k``; with one view
    that is just ``k``. :class:`EpochShuffleSampler` draws the view of each item per epoch."""

    def __init__(self, features: torch.Tensor, targets: np.ndarray, rows: np.ndarray) -> None:
        self.features = features  # (n_unique, views, F)
        self.targets = torch.from_numpy(targets.astype(np.float32))
        self.rows = rows  # index into features for each item (repeats for oversampled copies)
        self.views = features.shape[1]

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        k, v = divmod(index, self.views)
        r = self.rows[k]
        return self.features[r, v], self.targets[r]


class FeatureDataModule(pl.LightningDataModule):
    """The same splits and balancing as ``images``, with cached backbone features in place of images:
    each backbone's, concatenated in the given order (a net's own order, as its head expects them).

    Plain features cover every image and augmented views every non-test image (train and val), so
    runs that only split the same images differently (cross-validation folds) share both. ``data`` and
    ``split`` are the image datamodule's, so evaluation and reports read either kind alike."""

    def __init__(self, images: MultiLabelDataModule, backbones: Sequence[FeatureBackbone], cache_dir: str | Path,
                 views: int = 4, engine: str = "auto", chunk_batches: int = CHUNK_BATCHES) -> None:
        super().__init__()
        check_setting(engine)
        self.images, self.backbones, self.cache_dir = images, list(backbones), Path(cache_dir)
        self.views = views if images.augment is not None else 1
        self.engine, self.chunk_batches = engine, chunk_batches
        self.encoders: dict[int, tuple[str, Encoder]] = {}  # per backbone (by id): the engine settled on, its encoder
        self.plain: torch.Tensor | None = None
        self.train_views: torch.Tensor | None = None
        self.viewed: np.ndarray | None = None  # the images of train_views' rows

    def _cached(self, transform: str, indices: np.ndarray, augment: object, views: int) -> torch.Tensor:
        """``(len(indices), views, num_features)``: each backbone's features, concatenated in order.
        Each backbone is cached on its own, so an ensemble reuses the features its members'
        single-backbone runs computed."""
        return torch.cat([self._cached_backbone(b, transform, indices, augment, views) for b in self.backbones],
                         dim=-1)

    @property
    def data(self) -> Dataset:
        return self.images.data

    @property
    def split(self) -> Split:
        return self.images.split

    @property
    def train_indices(self) -> np.ndarray:
        return self.images.train_indices

    def _encoder(self, backbone: FeatureBackbone, device: torch.device, first: torch.Tensor) -> tuple[str, Encoder]:
        """Settle the engine for ``backbone`` (``cache.engine``'s, or eager if it fails on ``first``); ranks
        that share chunks run the same engine, so one rank's failure sends every rank to eager."""
        engine, encoder = settle_encoder(backbone, self.engine, device, first)
        if not self._on_all_ranks(engine == resolve_engine(self.engine, device)):
            engine, encoder = "eager", backbone_encoder(backbone, device)
        self.encoders[id(backbone)] = engine, encoder
        return self.encoders[id(backbone)]

    def _cached_backbone(self, backbone: FeatureBackbone, transform: str, indices: np.ndarray, augment: object,
                         views: int) -> torch.Tensor:
        data = self.images.data
        if augment is not None:  # each chunk seeds its own augmentation: the chunking is part of the result
            transform += f"|seed={torch.initial_seed()}|chunk={self.images.batch_size}x{self.chunk_batches}"
        content = data.fingerprint + hashlib.sha256(indices.tobytes()).hexdigest()
        trainer = self.trainer  # extract where training will run (a GPU when there is one)
        device = trainer.strategy.root_device if trainer is not None else torch.device("cpu")
        shape = (len(indices), views, backbone.num_features)
        kind = "plain" if augment is None else "augmented"

        def cached(engine: str) -> tuple[Path, torch.Tensor | None]:
            path = self.cache_dir / "features" / f"{feature_key(backbone, content, transform, engine)}.safetensors"
            return path, read_features(path, shape)

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
                trainer.strategy.barrier("features: every share saved")
            if shard.index == 0:  # with shares: every chunk is saved and only read
                features = extract(*args, **more)
        finally:
            backbone.to(home)
        if shard.index == 0:
            seconds = time.perf_counter() - start
            log.info("features: %s (%s) extracted with %s in %.1f s (%.1f images/s)", backbone.name, kind, engine,
                     seconds, len(indices) * views / seconds)
            write_features(path, features)
            shutil.rmtree(parts, ignore_errors=True)
        if shard.count > 1:
            trainer.strategy.barrier("features: cache file written")
            features = read_features(path, shape) if features is None else features
            if features is None:
                raise ImgrecError(f"{path}: missing after its extraction on local rank 0 (cache.dir must be a folder "
                                  "every rank of a node sees)")
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

    def setup(self, stage: str | None = None) -> None:
        if self.plain is not None:
            return
        self.images.setup(stage)
        data, split = self.images.data, self.images.split
        self.plain = self._cached("plain", np.arange(len(data)), None, 1)[:, 0]
        augment = self.images.augment
        if augment is not None:
            log.info("features: training on %d cached augmented view(s) per image (cache.views)", self.views)
            self.viewed = np.union1d(split.train, split.val)  # every fold of the same test split shares them
            self.train_views = self._cached(f"augment={augment!r}", self.viewed, augment, self.views)
        self.encoders.clear()  # compiled runtime models are not needed once the features are cached

    def train_dataloader(self) -> DataLoader:
        train, targets = self.images.train_indices, self.images.data.targets
        if self.train_views is None:
            dataset = FeatureSet(self.plain[:, None], targets, train)
        else:  # rows of the augmented views are self.viewed, in order
            dataset = FeatureSet(self.train_views, targets[self.viewed], np.searchsorted(self.viewed, train))
        sampler = EpochShuffleSampler(len(train), torch.initial_seed(), dataset.views, self.images.train_weights)
        return DataLoader(dataset, batch_size=self.images.batch_size, sampler=sampler)

    def _eval_loader(self, indices: np.ndarray) -> DataLoader:
        return DataLoader(FeatureSet(self.plain[:, None], self.images.data.targets, indices),
                          batch_size=self.images.batch_size, shuffle=False)

    def val_dataloader(self) -> DataLoader:
        return self._eval_loader(self.images.split.val)

    def test_dataloader(self) -> DataLoader:
        return self._eval_loader(self.images.split.test)
