"""The LightningDataModule: reader -> split -> (train only) balance and augment -> loaders."""

from __future__ import annotations

import logging
from pathlib import Path

import albumentations as A
import numpy as np
import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader
from torch.utils.data import Dataset as TorchDataset

from imgrec.data.balance import Oversampler, SamplerWeights
from imgrec.data.corrections import apply_corrections
from imgrec.data.images import Decoding
from imgrec.data.readers import read_course, read_table
from imgrec.data.record import Dataset
from imgrec.data.sampler import EpochShuffleSampler
from imgrec.data.split import KFoldSplit, RandomSplit, Split, StratifiedSplit
from imgrec.data.synthetic import make_synthetic
from imgrec.utils.errors import ImgrecError

log = logging.getLogger(__name__)


class ImageSet(TorchDataset):
    """Rows ``indices`` of a Dataset as ``(uint8 CHW image, float targets)``, augmented if asked."""

    def __init__(self, data: Dataset, indices: np.ndarray, augment: A.BasicTransform | None = None) -> None:
        self.data, self.indices, self.augment = data, indices, augment

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, k: int) -> tuple[torch.Tensor, torch.Tensor]:
        i = self.indices[k]
        image = np.array(self.data.images[i])  # a private, writable copy (the images may be memory-mapped)
        if self.augment is not None:
            image = self.augment(image=image)["image"]
        return torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1), torch.from_numpy(
            self.data.targets[i].astype(np.float32))


class MultiLabelDataModule(pl.LightningDataModule):
    """Reads the data once in :meth:`setup`, which checks every image before any training starts.

    Subclasses say where the data comes from by implementing :meth:`read`. ``num_workers`` has no default
    here: the data configs (``conf/data/``) hold the one default.
    """

    def __init__(self, split: RandomSplit | StratifiedSplit | KFoldSplit, augment: A.BasicTransform | None = None,
                 balance: Oversampler | SamplerWeights | None = None, batch_size: int = 64, *, num_workers: int,
                 pin_memory: bool = True, corrections: str | None = None) -> None:
        super().__init__()
        self.splitter, self.augment, self.balance = split, augment, balance
        self.corrections = corrections  # a label-review CSV applied on top of the annotations (data/corrections.py)
        self.batch_size, self.num_workers, self.pin_memory = batch_size, num_workers, pin_memory
        self.data: Dataset | None = None
        self.split: Split | None = None
        self.train_indices: np.ndarray | None = None
        self.train_weights: np.ndarray | None = None  # per train_indices entry, with balance=sampler

    def setup(self, stage: str | None = None) -> None:
        if self.data is not None:
            return
        data = self.read()
        if len(data) == 0:
            raise ImgrecError("dataset is empty: no images were read")
        if self.corrections:
            data, applied = apply_corrections(data, self.corrections)
            log.info("corrections: %s", applied.record())
        split = self.splitter(data.targets, data.label_names)
        train, weights = split.train, None
        if isinstance(self.balance, SamplerWeights):
            weights = self.balance(train, data.targets)
        elif self.balance is not None:
            train = self.balance(train, data.targets)
        missing = [name for name, c in zip(data.label_names, data.targets[split.train].sum(0)) if c == 0]
        if missing:
            log.warning("no positive example in the train split for label(s): %s", ", ".join(missing))
        log.info("data: %d images, %d labels; train %d (%d after balancing), val %d, test %d",
                 len(data), data.num_classes, len(split.train), len(train), len(split.val), len(split.test))
        positives = split.positives(data.targets, data.label_names)
        log.info("positives per label (train/val/test): %s",
                 ", ".join(f"{name} {'/'.join(map(str, counts))}" for name, counts in positives.items()))
        self.data, self.split, self.train_indices, self.train_weights = data, split, train, weights

    def read(self) -> Dataset:
        raise NotImplementedError

    @property
    def label_names(self) -> list[str]:
        assert self.data is not None, "call setup() first"
        return self.data.label_names

    def _loader(self, indices: np.ndarray, train: bool) -> DataLoader:
        assert self.data is not None, "call setup() first"
        workers = self.num_workers
        sampler = EpochShuffleSampler(len(indices), torch.initial_seed(), weights=self.train_weights) if train else None
        return DataLoader(
            ImageSet(self.data, indices, self.augment if train else None), batch_size=self.batch_size,
            sampler=sampler,
            num_workers=workers, persistent_workers=workers > 0,
            pin_memory=self.pin_memory and torch.cuda.is_available())

    def train_dataloader(self) -> DataLoader:
        return self._loader(self.train_indices, train=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader(self.split.val, train=False)

    def test_dataloader(self) -> DataLoader:
        return self._loader(self.split.test, train=False)


class SyntheticDataModule(MultiLabelDataModule):
    """The embedded dataset (see :mod:`imgrec.data.synthetic`)."""

    def __init__(self, n_images: int = 1200, data_seed: int = 0, drop_rate: float = 0.0, **kwargs) -> None:
        super().__init__(**kwargs)
        self.n_images, self.data_seed, self.drop_rate = n_images, data_seed, drop_rate

    def read(self) -> Dataset:
        return make_synthetic(self.n_images, self.data_seed, self.drop_rate)


class CourseDataModule(MultiLabelDataModule):
    """A course-format folder: ``<root>/images/im<N>.jpg`` and ``<root>/annotations/<label>.txt``."""

    def __init__(self, root: str, image_size: int = 128, resize: bool = True, on_bad_image: str = "error",
                 max_pixels: int | None = None, cache_dir: str | None = None, **kwargs) -> None:
        super().__init__(**kwargs)
        self.root, self.cache_dir = Path(root), cache_dir
        self.decoding = Decoding(image_size, resize, on_bad_image, max_pixels)  # a bad setting stops here

    def read(self) -> Dataset:
        return read_course(self.root, self.decoding, self.cache_dir)


class TableDataModule(MultiLabelDataModule):
    """A CSV/TSV of file names and labels (see :func:`imgrec.data.readers.read_table`)."""

    def __init__(self, table: str, images: str | None = None, image_size: int = 128, resize: bool = True,
                 on_bad_image: str = "error", max_pixels: int | None = None, cache_dir: str | None = None,
                 **kwargs) -> None:
        super().__init__(**kwargs)
        self.table, self.images, self.cache_dir = table, images, cache_dir
        self.decoding = Decoding(image_size, resize, on_bad_image, max_pixels)

    def read(self) -> Dataset:
        return read_table(self.table, self.images, self.decoding, self.cache_dir)
