"""The frozen-backbone fast path: compute pooled features once, then train the head on them.

Features are cached on disk per backbone under a content key (pixels, labels, backbone weights, input
size, augmentation and number of views), so a changed image, backbone or preprocessing never reuses
stale features, while the runs of a sweep that share them compute them once.
"""

from __future__ import annotations

import hashlib
import logging
import os
from pathlib import Path

import numpy as np
import pytorch_lightning as pl
import torch
from safetensors.torch import load_file, save_file
from torch.utils.data import DataLoader
from torch.utils.data import Dataset as TorchDataset
from tqdm.auto import tqdm

from imgrec.data.datamodule import ImageSet, MultiLabelDataModule
from imgrec.data.sampler import EpochShuffleSampler
from imgrec.models.backbones import Backbone
from imgrec.models.transfer import TransferNet

log = logging.getLogger(__name__)


def weights_digest(module: torch.nn.Module) -> str:
    h = hashlib.sha256()
    for name, tensor in module.state_dict().items():
        h.update(name.encode())
        h.update(tensor.detach().cpu().reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def feature_key(backbone: Backbone, data_fingerprint: str, transform: str) -> str:
    h = hashlib.sha256(f"{data_fingerprint}|{transform}|{backbone.name}|{backbone.input_size}|".encode())
    h.update(weights_digest(backbone).encode())
    return h.hexdigest()[:24]


@torch.no_grad()
def extract(backbone: Backbone, images: ImageSet, batch_size: int, desc: str, bf16: bool = False) -> torch.Tensor:
    """Pooled features of every item of ``images`` in order, on the backbone's device, with a progress bar."""
    device = next(backbone.parameters()).device
    backbone.eval()
    loader = DataLoader(images, batch_size=batch_size, shuffle=False, pin_memory=device.type == "cuda")
    chunks = []
    with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
        for x, _ in tqdm(loader, desc=desc, unit="batch"):
            chunks.append(backbone(x.to(device, non_blocking=True)).float().cpu())
    return torch.cat(chunks)


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
    """The same splits and balancing as ``images``, with cached backbone features in place of images."""

    def __init__(self, images: MultiLabelDataModule, net: TransferNet, cache_dir: str | Path, views: int = 4) -> None:
        super().__init__()
        self.images, self.net, self.cache_dir = images, net, Path(cache_dir)
        self.views = views if images.augment is not None else 1
        self.plain: torch.Tensor | None = None
        self.train_views: torch.Tensor | None = None

    def _cached(self, transform: str, indices: np.ndarray, augment: object, views: int) -> torch.Tensor:
        """``(len(indices), views, num_features)``: each backbone's features, concatenated in the net's
        order (as :meth:`TransferNet.features` does). Each backbone is cached on its own, so an
        ensemble reuses the features its members' single-backbone runs computed."""
        return torch.cat([self._cached_backbone(b, transform, indices, augment, views) for b in self.net.backbones],
                         dim=-1)

    def _cached_backbone(self, backbone: Backbone, transform: str, indices: np.ndarray, augment: object,
                         views: int) -> torch.Tensor:
        data = self.images.data
        key = feature_key(backbone, data.fingerprint + hashlib.sha256(indices.tobytes()).hexdigest(), transform)
        path = self.cache_dir / "features" / f"{key}.safetensors"
        if path.is_file():
            log.info("features: cache hit %s (%s)", path, backbone.name)
            return load_file(path)["features"]
        log.info("features: extracting %s (%s, %d images x %d view(s)) into %s", backbone.name,
                 "plain" if augment is None else "augmented", len(indices), views, path)
        trainer = self.trainer  # extract where training will run (a GPU when there is one)
        device = trainer.strategy.root_device if trainer is not None else torch.device("cpu")
        bf16 = trainer is not None and "bf16" in str(trainer.precision)
        home = next(backbone.parameters()).device
        backbone.to(device)
        stacked, kind = [], "plain" if augment is None else "augmented"
        try:
            for v in range(views):
                if augment is not None:
                    augment.set_random_seed(torch.initial_seed() + v)
                stacked.append(extract(backbone, ImageSet(data, indices, augment), self.images.batch_size,
                                       desc=f"features {backbone.name} {kind} view {v + 1}/{views}", bf16=bf16))
        finally:
            backbone.to(home)
        features = torch.stack(stacked, dim=1)  # (n, views, F)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.stem}.{os.getpid()}.tmp")  # processes that extract at once never share it
        save_file({"features": features.contiguous()}, tmp)
        tmp.replace(path)
        return features

    def prepare_data(self) -> None:
        """Lightning calls this in one process per node before ``setup`` in all: under DDP one process
        extracts, and the other ranks' ``setup`` reads what it cached."""
        self.setup()

    def setup(self, stage: str | None = None) -> None:
        if self.plain is not None:
            return
        self.images.setup(stage)
        data = self.images.data
        every = np.arange(len(data))
        self.plain = self._cached("plain", every, None, 1)[:, 0]
        augment = self.images.augment
        if augment is not None:
            log.info("features: training on %d cached augmented view(s) per image (cache.views)", self.views)
            self.train_views = self._cached(f"augment={augment!r}", np.unique(self.images.split.train),
                                            augment, self.views)

    def train_dataloader(self) -> DataLoader:
        train, targets = self.images.train_indices, self.images.data.targets
        if self.train_views is None:
            dataset = FeatureSet(self.plain[:, None], targets, train)
        else:  # rows of the augmented views are the unique train images, in order
            unique = np.unique(self.images.split.train)
            dataset = FeatureSet(self.train_views, targets[unique], np.searchsorted(unique, train))
        sampler = EpochShuffleSampler(len(train), torch.initial_seed(), dataset.views, self.images.train_weights)
        return DataLoader(dataset, batch_size=self.images.batch_size, sampler=sampler)

    def _eval_loader(self, indices: np.ndarray) -> DataLoader:
        return DataLoader(FeatureSet(self.plain[:, None], self.images.data.targets, indices),
                          batch_size=self.images.batch_size, shuffle=False)

    def val_dataloader(self) -> DataLoader:
        return self._eval_loader(self.images.split.val)

    def test_dataloader(self) -> DataLoader:
        return self._eval_loader(self.images.split.test)
