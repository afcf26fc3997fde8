"""3. Framework overhead: a Lightning epoch against a plain PyTorch loop doing the same work."""

from __future__ import annotations

import time

import numpy as np
import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader

from bench.common import Result
from imgrec.data.datamodule import ImageSet
from imgrec.data.synthetic import make_synthetic
from imgrec.models.backbones import create_backbone
from imgrec.models.module import MultiLabelModule
from imgrec.models.transfer import TransferNet


def make_module(num_labels: int, label_names: list[str]) -> MultiLabelModule:
    torch.manual_seed(0)
    return MultiLabelModule(
        net=lambda num_classes: TransferNet([create_backbone("efficientnet_lite0", input_size=96)], num_classes,
                                            freeze=False),
        optimizer=lambda params: torch.optim.Adam(params, lr=1e-4), label_names=label_names,
        loss=torch.nn.BCEWithLogitsLoss())


def plain_epoch(module: MultiLabelModule, loader: DataLoader) -> float:
    optimizer = module.configure_optimizers()
    module.train()
    start = time.perf_counter()
    for x, y in loader:
        loss = module.loss(module(x), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return time.perf_counter() - start


def lightning_epoch(module: MultiLabelModule, loader: DataLoader) -> float:
    trainer = pl.Trainer(max_epochs=1, accelerator="cpu", devices=1, logger=False, enable_checkpointing=False,
                         enable_progress_bar=False, enable_model_summary=False, limit_val_batches=0)
    start = time.perf_counter()
    trainer.fit(module, train_dataloaders=loader)
    return time.perf_counter() - start


def run(quick: bool = False) -> Result:
    data = make_synthetic(128 if quick else 512)
    loader = DataLoader(ImageSet(data, np.arange(len(data))), batch_size=32, shuffle=False)
    plain = min(plain_epoch(make_module(14, data.label_names), loader) for _ in range(2))
    lightning = min(lightning_epoch(make_module(14, data.label_names), loader) for _ in range(2))
    ratio = lightning / plain
    return Result("overhead", "plain PyTorch loop", "Lightning Trainer.fit", plain, lightning, "s/epoch", ratio,
                  "<= 1.10x", ratio <= 1.10,
                  {"work": f"fine-tune EfficientNet-Lite0 at 96 px, {len(data)} images, batch 32"})
