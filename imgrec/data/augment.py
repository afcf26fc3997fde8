"""The study's augmentation pipeline, with albumentations."""

from __future__ import annotations

import random
from typing import Any

import albumentations as A
import numpy as np

from imgrec.data.batch_augment import BatchAugment


class _NormalDraws:
    """Stands in for albumentations' ``py_random``: ``uniform(a, b)`` draws from a normal centred on
    the middle of the range (``sigma`` = range / 4) clipped to the range; other calls pass through."""

    def __init__(self, rng: random.Random) -> None:
        self._rng = rng

    def uniform(self, a: float, b: float) -> float:
        return float(np.clip(self._rng.gauss((a + b) / 2, (b - a) / 4), min(a, b), max(a, b)))

    def __getattr__(self, name: str) -> Any:
        return getattr(self._rng, name)


class NormalAffine(A.Affine):
    """``A.Affine`` whose magnitudes are normal around "no change" instead of uniform, as in the study.

    The ranges must be centred on the identity (e.g. ``rotate=(-15, 15)``, ``scale=(0.9, 1.1)``).
    """

    def get_params_dependent_on_data(self, params: dict[str, Any], data: dict[str, Any]) -> dict[str, Any]:
        uniform_draws = self.py_random
        self.py_random = _NormalDraws(uniform_draws)
        try:
            return super().get_params_dependent_on_data(params, data)
        finally:
            self.py_random = uniform_draws


def study_pipeline(p_affine: float = 0.5, translate: float = 0.1, rotate: float = 15.0, scale: float = 0.1,
                   shear: float = 10.0, p_flip: float = 0.5, p_noise: float = 0.2, noise_std: float = 0.05,
                   seed: int | None = None, on_device: bool = False) -> A.Compose | BatchAugment:
    """Move, rotate, scale and shear (one affine), horizontal flip, Gaussian noise: each with its own
    probability. ``translate``/``scale`` are fractions, ``rotate``/``shear`` degrees, ``noise_std``
    a fraction of the pixel range. Per image in the loader (albumentations), or with ``on_device`` the
    same transforms per image as batched tensor ops on the training device (:class:`BatchAugment`)."""
    if on_device:
        return BatchAugment(p_affine, translate, rotate, scale, shear, p_flip, p_noise, noise_std, seed)
    return A.Compose([
        NormalAffine(translate_percent=(-translate, translate), rotate=(-rotate, rotate),
                     scale=(1 - scale, 1 + scale), shear=(-shear, shear), border_mode=0, p=p_affine),
        A.HorizontalFlip(p=p_flip),
        A.GaussNoise(std_range=(noise_std / 2, noise_std), p=p_noise),
    ], seed=seed)
