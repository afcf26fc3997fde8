"""The LightningDataModule: reader -> split -> (train only) balance and augment -> loaders."""

from __future__ import annotations

import logging
from pathlib import Path

import albumentations as A
import cv2
import numpy as np
import pytorch_lightning as pl
import torch
from lightning_fabric.utilities.seed import pl_worker_init_function
from torch.utils.data import DataLoader, get_worker_info
from torch.utils.data import Dataset as TorchDataset

from imgrec.data.balance import Oversampler, SamplerWeights
from imgrec.data.batch_augment import BatchAugment
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


def stream_seed(seed: int, epoch: int, rank: int, process: int) -> int:
    """The seed of an augmentation stream: ``process`` 0 is a rank's main process, worker ``k`` is ``k + 1``."""
    return int(np.random.SeedSequence([seed, epoch, rank, process]).generate_state(1)[0])


class WorkerSeeds:
    """The loaders' ``worker_init_fn``. Each worker seeds its copy of the augmentation pipeline from (seed,
    epoch, rank, worker id), the epoch being the one the workers start in (they are persistent: once per
    fit), so no two workers, ranks or runs of other seeds draw the same augmentations, and a rerun with
    the same seed draws them again. Without it every worker starts from a copy of the same seeded
    pipeline and repeats the others' draws. Also Lightning's seeding of the worker's global generators
    (what ``seed_everything(workers=True)`` adds to a loader without a ``worker_init_fn``), and OpenCV on
    one thread: the workers are the parallelism."""

    def __init__(self, seed: int, rank: int = 0, sampler: EpochShuffleSampler | None = None) -> None:
        self.seed, self.rank, self.sampler = seed, rank, sampler

    def __call__(self, worker_id: int) -> None:
        pl_worker_init_function(worker_id, self.rank)
        cv2.setNumThreads(0)
        augment = getattr(get_worker_info().dataset, "augment", None)
        if augment is not None:
            epoch = self.sampler.epoch if self.sampler is not None else 0
            augment.set_random_seed(stream_seed(self.seed, epoch, self.rank, worker_id + 1))


class MultiLabelDataModule(pl.LightningDataModule):
    """Reads the data once in :meth:`setup`, which checks every image before any training starts.

    Subclasses say where the data comes from by implementing :meth:`read`. ``num_workers`` has no default
    here: the data configs (``conf/data/``) hold the one default, which a GPU trainer replaces
    (``conf/trainer/loader/workers.yaml``). ``augment`` is an albumentations pipeline, run per image in the
    loader (its workers: :class:`WorkerSeeds`), or a :class:`BatchAugment`, run on each train batch
    once it is on the training device (:meth:`on_after_batch_transfer`).
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

    @property
    def rank(self) -> int:
        return self.trainer.global_rank if self.trainer is not None else 0

    def _loader(self, indices: np.ndarray, train: bool) -> DataLoader:
        assert self.data is not None, "call setup() first"
        workers, seed = self.num_workers, torch.initial_seed()
        sampler = EpochShuffleSampler(len(indices), seed, weights=self.train_weights) if train else None
        per_image = self.augment if train and not isinstance(self.augment, BatchAugment) else None
        return DataLoader(
            ImageSet(self.data, indices, per_image), batch_size=self.batch_size, sampler=sampler,
            num_workers=workers, persistent_workers=workers > 0, worker_init_fn=WorkerSeeds(seed, self.rank, sampler),
            pin_memory=self.pin_memory and torch.cuda.is_available())

    def train_dataloader(self) -> DataLoader:
        if self.augment is not None and self.rank > 0:  # the pipeline drawn in this process: a stream per rank
            self.augment.set_random_seed(stream_seed(torch.initial_seed(), 0, self.rank, 0))
        return self._loader(self.train_indices, train=True)

    def on_after_batch_transfer(self, batch: tuple[torch.Tensor, torch.Tensor],
                                dataloader_idx: int) -> tuple[torch.Tensor, torch.Tensor]:
        """``augment.on_device``: a train batch is augmented here, on the device it has just reached."""
        if isinstance(self.augment, BatchAugment) and self.trainer is not None and self.trainer.training:
            images, targets = batch
            return self.augment(images), targets
        return batch

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
