import numpy as np
import pytest

from imgrec.data.augment import _NormalDraws, study_pipeline
from imgrec.data.balance import Oversampler, SamplerWeights
from imgrec.data.datamodule import SyntheticDataModule
from imgrec.data.sampler import EpochShuffleSampler
from imgrec.data.split import RandomSplit
from imgrec.data.synthetic import make_synthetic
from imgrec.utils.errors import ImgrecError


def test_split_fractions_disjoint_and_seeded():
    y = np.zeros((2000, 3))
    s = RandomSplit(seed=1)(y)
    assert (len(s.train), len(s.val), len(s.test)) == (1700, 150, 150)
    assert len(set(s.train) | set(s.val) | set(s.test)) == 2000
    assert np.array_equal(s.val, RandomSplit(seed=1)(y).val) and not np.array_equal(s.val, RandomSplit(seed=2)(y).val)


def test_split_too_small():
    with pytest.raises(ImgrecError, match="too few for split"):
        RandomSplit()(np.zeros((5, 2)))


def test_oversampler_raises_the_rarest_and_never_adds_unlabelled():
    d = make_synthetic(1500, seed=5)
    idx = np.arange(len(d))
    out = Oversampler(factor=4.0, seed=0)(idx, d.targets)
    assert len(out) == 6000 and np.array_equal(out[:1500], idx)
    added = d.targets[out[1500:]]
    assert added.sum(1).min() >= 1  # no unlabelled copies
    before, after = d.targets[idx].sum(0), d.targets[out].sum(0)
    assert after.min() / after.max() > 3 * before.min() / before.max()
    disc = d.label_names.index("disc")
    disc_only = (added[:, disc] == 1) & (added.sum(1) == 1)
    assert disc_only.mean() < 0.01  # the most frequent label alone hardly ever


def test_normal_draws_centre_on_no_change():
    import random

    normal = _NormalDraws(random.Random(0))
    draws = np.array([normal.uniform(-10, 10) for _ in range(4000)])
    assert abs(draws.mean()) < 0.3 and draws.min() >= -10 and draws.max() <= 10
    assert 0.64 < (np.abs(draws) < 5).mean() < 0.72  # one sigma of a normal; uniform would give 0.5


def test_pipeline_keeps_shape_and_changes_pixels():
    img = make_synthetic(1).images[0]
    aug = study_pipeline(p_affine=1.0, p_flip=1.0, p_noise=1.0, seed=0)
    out = aug(image=img)["image"]
    assert out.shape == img.shape and out.dtype == np.uint8 and not np.array_equal(out, img)


def test_only_train_is_augmented_and_balanced():
    dm = SyntheticDataModule(n_images=200, split=RandomSplit(seed=0), augment=study_pipeline(p_affine=1.0, seed=0),
                             balance=Oversampler(2.0), batch_size=16, num_workers=0)
    dm.setup()
    assert len(dm.train_dataloader().dataset) == 2 * len(dm.split.train)
    assert dm.val_dataloader().dataset.augment is None and dm.test_dataloader().dataset.augment is None
    x, _ = next(iter(dm.val_dataloader()))
    assert np.array_equal(x[0].permute(1, 2, 0).numpy(), dm.data.images[dm.split.val[0]])


def test_sampler_weights_draw_rare_labels_more_and_are_seeded():
    d = make_synthetic(1500, seed=5)
    idx = np.arange(len(d))
    weights = SamplerWeights(threshold=0.1)(idx, d.targets)
    freq = d.targets.mean(0)
    rare, common = int(np.argmin(freq)), int(np.argmax(freq))
    assert freq[rare] < 0.02 and freq[common] > 0.1
    holders = d.targets[:, rare] == 1
    assert np.allclose(weights[holders], np.sqrt(0.1 / freq[rare]))  # the rarest label's repeat factor
    only_common = (d.targets[:, common] == 1) & (d.targets.sum(1) == 1)
    assert np.all(weights[only_common] == 1.0)  # labels above the threshold are not repeated

    sampler = EpochShuffleSampler(len(idx), seed=3, weights=weights)
    epoch0 = list(sampler)
    assert len(epoch0) == len(idx) and epoch0 == list(sampler)  # same (seed, epoch), same draw
    sampler.set_epoch(1)
    assert list(sampler) != epoch0
    drawn = np.concatenate([epoch0, list(sampler)])
    expected = 2 * len(idx) * weights[holders].sum() / weights.sum()
    assert abs(holders[drawn].sum() - expected) < 4 * np.sqrt(expected)  # drawn in proportion to the weights
    assert holders[drawn].mean() > 2 * holders.mean()


def test_sampler_weights_reach_the_train_loader_only():
    dm = SyntheticDataModule(n_images=300, split=RandomSplit(seed=0), balance=SamplerWeights(0.2), batch_size=16,
                             num_workers=0)
    dm.setup()
    assert len(dm.train_indices) == len(dm.split.train) and len(dm.train_weights) == len(dm.split.train)
    assert np.array_equal(dm.train_dataloader().sampler.weights.numpy(), dm.train_weights)
    assert dm.val_dataloader().sampler.__class__.__name__ == "SequentialSampler"


def test_epoch_sampler_takes_any_64_bit_seed():
    """An unseeded process's ``torch.initial_seed()`` can be any 64-bit number (the feature cache's seed)."""
    sampler = EpochShuffleSampler(50, seed=2**64 - 1)
    sampler.set_epoch(3)
    order = list(sampler)
    assert sorted(order) == list(range(50)) and order == list(sampler)
