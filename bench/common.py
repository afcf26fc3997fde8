"""Shared pieces of the benchmarks: timing, the machine, results as JSON."""

from __future__ import annotations

import json
import os
import platform
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch

OUT = Path(__file__).resolve().parent / "out"
IDL_DEV = Path(__file__).resolve().parents[2] / "shared" / "data" / "idl2020-dev"
IDL_TEST = IDL_DEV.with_name("idl2020-test-sample")


@dataclass
class Result:
    """One benchmark: its two sides measured in the same run, and their ratio."""

    name: str
    baseline: str
    contender: str
    baseline_value: float
    contender_value: float
    unit: str
    ratio: float
    target: str
    met: bool
    details: dict[str, Any] = field(default_factory=dict)

    def save(self) -> Path:
        OUT.mkdir(parents=True, exist_ok=True)
        path = OUT / f"{self.name}.json"
        path.write_text(json.dumps({**asdict(self), "machine": machine()}, indent=2, default=float) + "\n")
        return path


def machine() -> dict[str, Any]:
    return {"cpu": platform.processor() or platform.machine(), "cores": os.cpu_count(),
            "torch_threads": torch.get_num_threads(), "torch": torch.__version__,
            "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None}


def best_of(fn: Callable[[], Any], repeat: int = 3) -> float:
    """The fastest of ``repeat`` timings of ``fn()`` in seconds (the least disturbed by other load)."""
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


class EpochTimer(pl.Callback):
    """Writes the wall time of each training epoch to ``path`` (JSON) when fitting ends.

    Added to a run from the command line: ``+callbacks.epoch_timer._target_=bench.common.EpochTimer
    +callbacks.epoch_timer.path=<file>``.
    """

    def __init__(self, path: str) -> None:
        self.path = Path(path)
        self.seconds: list[float] = []

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._start = time.perf_counter()

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.seconds.append(time.perf_counter() - self._start)

    def on_fit_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.path.write_text(json.dumps(self.seconds))


def timer_overrides(path: Path) -> list[str]:
    return ["+callbacks.epoch_timer._target_=bench.common.EpochTimer", f"+callbacks.epoch_timer.path={path}"]
