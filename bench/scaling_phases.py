"""One phase of ``bench scaling`` in a process of its own: ``python -m bench.scaling_phases PHASE ROOT WORK``.

Phases: ``decode`` (the decoded-image cache, cold), ``extract`` (frozen features, cold feature cache),
``train`` (one epoch on the cached features, then the evaluation of the best checkpoint: two phases,
timed by :class:`PhaseClock`) and ``predict`` (``imgrec.predict`` on the images folder with the
checkpoint ``train`` wrote). Each prints one JSON line per phase: wall seconds of the phase itself
(imports and the process start excluded), the CPU seconds of all the process's threads in it (less
moved than wall time by other processes on a shared machine), and its peak resident memory, the
kernel's high-water mark (``VmHWM``) reset when the phase starts, so it is the phase's peak, what the
process held before included.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytorch_lightning as pl
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from imgrec.config.compose import CONF_DIR, compose_config
from imgrec.data.images import Decoding
from imgrec.data.readers import read_course
from imgrec.features.cache import FeatureDataModule

# Lite0 at 64 px: the curve is about growth, and 4x fewer pixels than 128 px keep the 64k point affordable.
MODEL = ["model.net.input_size=64"]


def reset_peak() -> None:
    Path("/proc/self/clear_refs").write_text("5")  # Linux: VmHWM starts again from the current RSS


def peak_mb() -> float:
    status = dict(line.split(":", 1) for line in Path("/proc/self/status").read_text().splitlines())
    return int(status["VmHWM"].split()[0]) / 1024


def report(phase: str, seconds: float, cpu_seconds: float) -> None:
    print(json.dumps({"phase": phase, "seconds": seconds, "cpu_seconds": cpu_seconds, "peak_rss_mb": peak_mb()}),
          flush=True)


def timed(phase: str, work: Callable[[], object]) -> None:
    reset_peak()
    start, cpu = time.perf_counter(), time.process_time()
    work()
    report(phase, time.perf_counter() - start, time.process_time() - cpu)


class PhaseClock(pl.Callback):
    """Reports the first training epoch (its validation included) and the evaluation after fit (the best
    checkpoint validated, thresholds fitted, tested)."""

    def __init__(self) -> None:
        self.start = self.cpu = 0.0

    def _begin(self) -> None:
        reset_peak()
        self.start, self.cpu = time.perf_counter(), time.process_time()

    def _end(self, phase: str) -> None:
        report(phase, time.perf_counter() - self.start, time.process_time() - self.cpu)

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._begin()

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._end("epoch")

    def on_fit_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._begin()

    def on_test_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._end("evaluate")


def run_config(root: Path, work: Path) -> DictConfig:
    return compose_config(work / "run", ["data=idl", f"data.root={root}", f"paths.cache_dir={work / 'cache'}",
                                         "logger=none", "report.enabled=false", "trainer.max_epochs=1", *MODEL,
                                         "+callbacks.phase_clock._target_=bench.scaling_phases.PhaseClock"])


def extract(cfg: DictConfig) -> None:
    """The feature cache's extraction as ``imgrec.run`` starts it (the data's fingerprint included)."""
    pl.seed_everything(cfg.seed, verbose=False)
    images = instantiate(cfg.data)
    images.setup("fit")
    net = instantiate(cfg.model.net)(num_classes=len(images.label_names))
    features = FeatureDataModule(images, net.backbones, cfg.cache.dir, cfg.cache.views, cfg.cache.engine)
    timed("extract", features.setup)


def predict(root: Path, work: Path) -> None:
    from imgrec.predict import predict

    found = sorted((work / "run" / "checkpoints").glob("epoch_*.ckpt"))
    if not found:
        raise SystemExit(f"{work / 'run'}: no checkpoint; run the epoch phase first (--phases epoch predict)")
    ckpt = found[-1]
    cfg = OmegaConf.load(CONF_DIR / "predict.yaml")
    cfg.merge_with({"ckpt": str(ckpt), "input": str(root / "images"), "out": str(work / "predictions")})
    timed("predict", lambda: predict(cfg))


def main(phase: str, root: Path, work: Path) -> None:
    if phase == "decode":
        timed("decode", lambda: read_course(root, Decoding(128), cache_dir=work / "cache"))
    elif phase == "extract":
        extract(run_config(root, work))
    elif phase == "train":
        from imgrec.run import train

        train(run_config(root, work))
    elif phase == "predict":
        predict(root, work)
    else:
        raise SystemExit(f"unknown phase {phase!r}")


if __name__ == "__main__":
    main(sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3]))
