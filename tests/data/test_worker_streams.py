"""Loader workers each draw their own augmentations (WorkerSeeds), reruns draw them again, and
augment.on_device augments train batches after the transfer, not per image in the loader."""

from types import SimpleNamespace

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from imgrec.data.augment import study_pipeline
from imgrec.data.batch_augment import BatchAugment
from imgrec.data.datamodule import ImageSet, SyntheticDataModule, stream_seed
from imgrec.data.split import RandomSplit


def datamodule(augment, workers: int = 0) -> SyntheticDataModule:
    dm = SyntheticDataModule(n_images=40, split=RandomSplit(), augment=augment, batch_size=8, num_workers=workers)
    dm.setup()
    dm.train_indices = np.zeros(16, dtype=np.int64)  # every item is image 0: only the augmentation differs
    return dm


def test_two_workers_draw_different_augmentations_and_a_rerun_the_same():
    torch.manual_seed(0)  # the run's seed (imgrec.run seeds everything)
    dm = datamodule(study_pipeline(seed=7), workers=2)
    first, second = (torch.stack([x for x, _ in dm.train_dataloader()]) for _ in range(2))  # batch k: worker k
    assert not torch.equal(first[0], first[1])
    assert torch.equal(first, second)
    # what WorkerSeeds prevents: two workers with copies of one seeded pipeline repeat each other's draws
    plain = DataLoader(ImageSet(dm.data, dm.train_indices, study_pipeline(seed=7)), batch_size=8, num_workers=2)
    a, b = (x for x, _ in plain)
    assert torch.equal(a, b)


def test_streams_differ_by_epoch_rank_and_process():
    seeds = {stream_seed(42, epoch, rank, process) for epoch in (0, 1) for rank in (0, 1) for process in (0, 1, 2)}
    assert len(seeds) == 12 and stream_seed(42, 0, 0, 1) == stream_seed(42, 0, 0, 1)


@pytest.mark.parametrize("training", [True, False])
def test_on_device_augments_train_batches_after_the_transfer(training):
    dm = datamodule(BatchAugment(seed=0))
    assert dm.train_dataloader().dataset.augment is None  # nothing per image in the loader
    dm.trainer = SimpleNamespace(training=training, global_rank=0)
    images = torch.from_numpy(dm.data.images[:8]).permute(0, 3, 1, 2)
    targets = torch.zeros(8, 14)
    out, same_targets = dm.on_after_batch_transfer((images, targets), 0)
    assert same_targets is targets and out.dtype == torch.uint8 and out.shape == images.shape
    assert torch.equal(out, images) != training  # validation and test batches are left alone
