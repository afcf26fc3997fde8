"""augment.on_device: the study's pipeline as batched tensor ops (imgrec.data.batch_augment), checked on CPU
tensors: the same geometry as albumentations, uint8 in and out, per-image draws, seeded streams."""

import cv2
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from albumentations.augmentations.geometric import functional as geometric
from hydra.utils import instantiate

from imgrec.data.augment import study_pipeline
from imgrec.data.batch_augment import BatchAugment, affine_matrices
from imgrec.data.synthetic import make_synthetic
from tests.conftest import compose_cfg


@pytest.fixture(scope="module")
def images() -> torch.Tensor:
    return torch.from_numpy(make_synthetic(16, seed=2, image_size=48).images).permute(0, 3, 1, 2).contiguous()


def test_the_warp_is_albumentations_affine():
    """One image warped with fixed values by A.Affine's own matrix (cv2) and by ours (grid_sample)."""
    image = make_synthetic(1, seed=1).images[0]
    h, w = image.shape[:2]
    tx, ty, shear_x, shear_y, rotate, scale_x, scale_y = 7.0, -5.0, 8.0, -6.0, 12.0, 1.08, 0.93
    centre = geometric.center((h, w))
    matrix = geometric.create_affine_transformation_matrix(
        {"x": tx, "y": ty}, {"x": shear_x, "y": shear_y}, {"x": scale_x, "y": scale_y}, rotate, centre)
    reference = cv2.warpAffine(image, matrix[:2], (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)
    values = [torch.tensor([v], dtype=torch.float64) for v in (tx, ty, shear_x, shear_y, rotate, scale_x, scale_y)]
    theta = affine_matrices(*values, h, w)
    x = torch.from_numpy(image).permute(2, 0, 1)[None].float()
    ours = F.grid_sample(x, F.affine_grid(theta, [1, 3, h, w], align_corners=False), align_corners=False)
    ours = ours.round().clamp(0, 255)[0].permute(1, 2, 0).numpy()
    assert np.abs(ours - reference).mean() < 0.01  # rounding at a few border pixels
    assert np.abs(image.astype(float) - reference).mean() > 20  # the transform moved the image


def test_shape_dtype_and_that_it_augments(images):
    out = BatchAugment(seed=0)(images)
    assert out.shape == images.shape and out.dtype == torch.uint8 and out.device == images.device
    changed = (out != images).flatten(1).any(1)
    # each image unchanged only if none of affine (0.5), flip (0.5), noise (0.2) applied: 20% expected
    assert 0.4 <= changed.float().mean() < 1.0
    assert not torch.equal(BatchAugment(seed=1)(images), out)
    assert torch.equal(BatchAugment(seed=0)(images), out)  # a seed gives the same draws


def test_each_transform_on_its_own(images):
    identity = BatchAugment(p_affine=1.0, translate=0, rotate=0, scale=0, shear=0, p_flip=0, p_noise=0, seed=0)
    assert torch.equal(identity(images), images)  # the warp of "no change" is exact
    assert torch.equal(BatchAugment(p_affine=0, p_flip=1.0, p_noise=0, seed=0)(images), images.flip(-1))
    noisy = BatchAugment(p_affine=0, p_flip=0, p_noise=1.0, noise_std=0.05, seed=0)(images).float() - images.float()
    assert 0.025 * 255 * 0.6 < noisy.std() < 0.05 * 255  # std drawn in [noise_std / 2, noise_std] of 255


def test_the_stream_advances_the_same_whatever_is_drawn(images):
    """Every batch draws all of its numbers, so a saved generator state resumes the same stream."""
    rare, often = BatchAugment(p_affine=0.0, p_noise=0.0, seed=3), BatchAugment(p_affine=1.0, p_noise=1.0, seed=3)
    rare(images)
    often(images)
    assert torch.equal(rare.generator.get_state(), often.generator.get_state())


def test_augment_on_device_is_a_config_switch(tmp_path):
    cfg = compose_cfg(tmp_path, ["augment=strong", "augment.on_device=true"])
    built = instantiate(cfg.augment)
    assert isinstance(built, BatchAugment) and built.rotate == 22.5 and built.p_noise == 0.3
    assert repr(built) == repr(study_pipeline(p_affine=0.75, translate=0.15, rotate=22.5, scale=0.15, shear=15.0,
                                              p_noise=0.3, noise_std=0.075, on_device=True))
