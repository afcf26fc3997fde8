"""The study's augmentation as batched tensor ops on the device the batch is on (``augment.on_device=true``).

Where loader workers cannot keep a GPU busy (per-image albumentations on the CPU), the uint8 batch is
augmented after it reaches the GPU (``MultiLabelDataModule.on_after_batch_transfer``). The parameters
and their meaning are :func:`imgrec.data.augment.study_pipeline`'s, with albumentations' conventions
(``A.Affine``: translation per axis, scale per axis, shear per axis, rotation about the centre, zero
fill; ``A.GaussNoise``: std drawn per image as a fraction of 255, per pixel and channel), drawn per
image: one ``affine_grid``/``grid_sample`` warps the whole batch with a matrix per image. torchvision's
v2 transforms draw one set of parameters per call, for the whole batch, hence this module.

Every random number comes from one CPU ``torch.Generator`` (the noise through a device generator seeded
from it per batch), drawn in a fixed amount per batch: a seed gives the same augmentations on any
device, and :class:`imgrec.training.callbacks.AugmentationState` saves the generator's state in
checkpoints, so a resumed run continues the draws exactly, whatever ``data.num_workers``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


class BatchAugment:
    """uint8 NCHW batch -> augmented uint8 NCHW batch (same shape, same device)."""

    def __init__(self, p_affine: float = 0.5, translate: float = 0.1, rotate: float = 15.0, scale: float = 0.1,
                 shear: float = 10.0, p_flip: float = 0.5, p_noise: float = 0.2, noise_std: float = 0.05,
                 seed: int | None = None) -> None:
        self.p_affine, self.translate, self.rotate, self.scale, self.shear = p_affine, translate, rotate, scale, shear
        self.p_flip, self.p_noise, self.noise_std = p_flip, p_noise, noise_std
        self.generator = torch.Generator()
        self.set_random_seed(seed)

    def set_random_seed(self, seed: int | None) -> None:
        """Restart the draws from ``seed`` (None: a fresh random seed), as albumentations' pipelines do."""
        if seed is None:
            self.generator.seed()
        else:
            self.generator.manual_seed(int(seed))

    def __repr__(self) -> str:  # part of the feature cache's key: every parameter that changes the result
        return (f"BatchAugment(p_affine={self.p_affine}, translate={self.translate}, rotate={self.rotate}, "
                f"scale={self.scale}, shear={self.shear}, p_flip={self.p_flip}, p_noise={self.p_noise}, "
                f"noise_std={self.noise_std})")

    def _normal(self, n: int, half_range: float, centre: float = 0.0) -> torch.Tensor:
        """``NormalAffine``'s draws: normal about ``centre`` with sigma = range / 4, clipped to the range."""
        draws = torch.randn(n, generator=self.generator, dtype=torch.float64) * (half_range / 2) + centre
        return draws.clamp(centre - half_range, centre + half_range)

    def matrices(self, n: int, height: int, width: int) -> torch.Tensor:
        """``n`` draws of the affine transform as ``affine_grid`` matrices (see :func:`affine_matrices`)."""
        tx, ty = self._normal(n, self.translate) * width, self._normal(n, self.translate) * height
        shear_x, shear_y = -self._normal(n, self.shear), -self._normal(n, self.shear)  # negated as in A.Affine
        rotate = self._normal(n, self.rotate)
        scale_x, scale_y = self._normal(n, self.scale, 1.0), self._normal(n, self.scale, 1.0)
        return affine_matrices(tx, ty, shear_x, shear_y, rotate, scale_x, scale_y, height, width)

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        if images.dtype != torch.uint8 or images.ndim != 4:
            raise ValueError(f"BatchAugment takes uint8 NCHW images, got {images.dtype} {tuple(images.shape)}")
        n, c, h, w = images.shape
        device = images.device
        # every draw of the batch, whether used or not: the stream advances by the same amount per batch
        affine = torch.rand(n, generator=self.generator) < self.p_affine
        theta = self.matrices(n, h, w)
        flip = torch.rand(n, generator=self.generator) < self.p_flip
        noisy = torch.rand(n, generator=self.generator) < self.p_noise
        std = 255 * (self.noise_std / 2 + torch.rand(n, generator=self.generator) * self.noise_std / 2)
        noise_seed = int(torch.randint(2**62, (1,), generator=self.generator))

        def there(t: torch.Tensor) -> torch.Tensor:  # not a blocking copy: that would wait for the GPU's queue
            return t.to(device, non_blocking=True)

        x = images.float()
        if affine.any():
            index = there(affine.nonzero().squeeze(1))
            grid = F.affine_grid(there(theta[affine]), [len(index), c, h, w], align_corners=False)
            warped = F.grid_sample(x[index], grid, mode="bilinear", padding_mode="zeros", align_corners=False)
            x = x.index_copy(0, index, warped)
        x = torch.where(there(flip).view(n, 1, 1, 1), x.flip(-1), x)
        if noisy.any():
            noise = torch.randn(x.shape, generator=torch.Generator(device).manual_seed(noise_seed), device=device)
            x = x + noise * there((std * noisy).float()).view(n, 1, 1, 1)
        return x.round_().clamp_(0, 255).to(torch.uint8)


def affine_matrices(tx: torch.Tensor, ty: torch.Tensor, shear_x: torch.Tensor, shear_y: torch.Tensor,
                    rotate: torch.Tensor, scale_x: torch.Tensor, scale_y: torch.Tensor, height: int,
                    width: int) -> torch.Tensor:
    """``(n, 2, 3)`` ``affine_grid`` matrices (for each output pixel, where to sample the input, in the
    normalised coordinates of ``align_corners=False``) of the forward transforms albumentations builds
    from these values (``create_affine_transformation_matrix``: translation in pixels, shear and
    rotation in degrees, about the image centre: translate @ shear @ rotate @ scale), inverted."""
    n = len(tx)
    shear_x, shear_y, angle = torch.deg2rad(shear_x), torch.deg2rad(shear_y), torch.deg2rad(rotate % 360)
    cos, sin, one = torch.cos(angle), torch.sin(angle), torch.ones(n, dtype=torch.float64)
    shear = torch.stack([one, torch.tan(shear_x), torch.tan(shear_y), one], 1).view(n, 2, 2)
    rotation = torch.stack([cos, sin, -sin, cos], 1).view(n, 2, 2)
    linear = shear @ rotation @ torch.diag_embed(torch.stack([scale_x, scale_y], 1))
    forward = torch.cat([linear, torch.stack([tx, ty], 1)[..., None]], 2)  # centred pixel coordinates
    forward = torch.cat([forward, torch.tensor([0.0, 0.0, 1.0], dtype=torch.float64).expand(n, 1, 3)], 1)
    to_pixels = torch.diag(torch.tensor([width / 2, height / 2, 1.0], dtype=torch.float64))
    return (torch.linalg.inv(to_pixels) @ torch.linalg.inv(forward) @ to_pixels)[:, :2].float()
