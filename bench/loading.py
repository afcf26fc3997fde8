"""2. Loading: images/s from the decoded-image cache vs decoding JPEGs every epoch; and the
augmentation pipeline's throughput against what fine-tuning consumes."""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from bench.common import IDL_DEV, Result, best_of
from imgrec.data.augment import study_pipeline
from imgrec.data.datamodule import ImageSet
from imgrec.data.image_cache import load_images
from imgrec.data.images import Decoding, decode_image
from imgrec.data.readers import list_images, read_course
from imgrec.data.synthetic import make_synthetic, write_course_format
from imgrec.models.backbones import create_backbone


class JpegSet(Dataset):
    """What loading without the cache costs: decode the file every time an item is read."""

    def __init__(self, paths: list[Path]) -> None:
        self.paths = paths

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int) -> torch.Tensor:
        return torch.from_numpy(decode_image(self.paths[i], Decoding(128))).permute(2, 0, 1)


def epoch(dataset: Dataset) -> None:
    for _ in DataLoader(dataset, batch_size=64, shuffle=False, num_workers=0):
        pass


def images_per_second(n: int, fn: callable) -> float:
    return n / best_of(fn)


def finetune_images_per_second(batches: int = 3) -> float:
    """Images/s one training step of a fine-tuned Lite0 at 128 px consumes (forward + backward)."""
    net = create_backbone("efficientnet_lite0", input_size=128).train()
    head = torch.nn.Linear(net.num_features, 14)
    opt = torch.optim.Adam([*net.parameters(), *head.parameters()])
    x = torch.randint(0, 255, (64, 3, 128, 128), dtype=torch.uint8)

    def step() -> None:
        loss = head(net(x)).sum()
        opt.zero_grad()
        loss.backward()
        opt.step()

    step()
    start = time.perf_counter()
    for _ in range(batches):
        step()
    return 64 * batches / (time.perf_counter() - start)


def run(quick: bool = False) -> Result:
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        root = write_course_format(make_synthetic(300), tmp / "synthetic") if quick else IDL_DEV
        paths = list_images(root / "images")
        data = read_course(root, cache_dir=tmp / "cache")  # decodes once and fills the cache
        cached = ImageSet(data, np.arange(len(data)))
        jpeg = images_per_second(len(paths), lambda: epoch(JpegSet(paths)))
        memmap = images_per_second(len(paths), lambda: epoch(cached))
        cache_load = best_of(lambda: load_images(paths, cache_dir=tmp / "cache"))
    aug = study_pipeline(seed=0)
    sample = data.images[: min(500, len(data))]
    augment = len(sample) / best_of(lambda: [aug(image=np.array(im)) for im in sample])
    consume = finetune_images_per_second()
    ratio = memmap / jpeg
    return Result("loading", "decode JPEG every epoch", "decoded-image cache (memmap)", jpeg, memmap, "images/s",
                  ratio, ">= 10x", ratio >= 10,
                  {"images": len(paths), "cache_open_seconds": cache_load,
                   "augment_images_per_s_one_core": augment, "finetune_lite0_128px_images_per_s": consume,
                   "augment_to_consumption": augment / consume})
