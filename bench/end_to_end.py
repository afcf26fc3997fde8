"""5. End to end: wall time of the sweeps, with and without the caches: ``preproc_sweep`` and
``arch_sweep`` on the dev data; ``make_run``: the cold wall time of exactly what ``make run`` runs
(``preproc_sweep`` on the embedded data, W&B offline, empty caches) against its 120 s target; and
``train_predict``: what a user does first, one run on the dev data with the defaults (cold caches),
then ``imgrec predict`` with its best checkpoint on the 500 test-sample images, as whole processes.

Each side is a fresh subprocess with its own empty cache folder, so the cached side pays for
filling its caches. Epochs are capped (``trainer.max_epochs``) to keep the uncached side affordable
on a CPU; the cap is recorded. Without the cap the ratio only grows: the uncached side pays a
backbone pass every epoch, the cached side once.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.common import IDL_DEV, IDL_TEST, Result
from imgrec.data.synthetic import make_synthetic, write_course_format

ROOT = Path(__file__).resolve().parents[1]
MAKE_RUN = ["+experiment=preproc_sweep"]  # the Makefile's `run` target


def sweep_seconds(experiment: str, overrides: list[str], cached: bool, workdir: Path, files: bool) -> float:
    """``files``: the data is read from image files (the synthetic data has no decoded-image cache)."""
    caches = [] if cached else ["cache.features=false", *(["data.cache_dir=null"] if files else [])]
    args = [sys.executable, "-m", "imgrec.run", f"+experiment={experiment}", f"paths.log_dir={workdir}",
            f"paths.cache_dir={workdir / 'cache'}", "logger=none", *overrides, *caches]
    start = time.perf_counter()
    done = subprocess.run(args, cwd=ROOT, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"{experiment} failed:\n{done.stderr[-3000:]}")
    return time.perf_counter() - start


def make_run_seconds(workdir: Path) -> float:
    """``make run`` (the Makefile's command line) with empty caches under ``workdir``."""
    env = {k: v for k, v in os.environ.items() if k != "IMGREC_CACHE_DIR"}
    env.update(WANDB_MODE="offline", WANDB_SILENT="true")
    args = [sys.executable, "-m", "imgrec.run", *MAKE_RUN, f"paths.log_dir={workdir}"]
    start = time.perf_counter()
    done = subprocess.run(args, cwd=ROOT, capture_output=True, text=True, env=env)
    if done.returncode != 0:
        raise RuntimeError(f"make run failed:\n{done.stderr[-3000:]}")
    return time.perf_counter() - start


def timed(args: list[str], env: dict[str, str] | None = None) -> float:
    start = time.perf_counter()
    done = subprocess.run(args, cwd=ROOT, capture_output=True, text=True, env=env)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(args[2:4])} failed:\n{done.stderr[-3000:]}")
    return time.perf_counter() - start


def train_predict(quick: bool, workdir: Path) -> Result:
    """Train with the defaults (frozen Lite0 at 224 px, W&B offline), then predict a folder of new images."""
    env = {**{k: v for k, v in os.environ.items() if k != "IMGREC_CACHE_DIR"}, "WANDB_MODE": "offline"}
    data = ["data.n_images=200", "model.net.input_size=64"] if quick else ["data=idl", f"data.root={IDL_DEV}"]
    train = timed([sys.executable, "-m", "imgrec.run", *data, f"paths.log_dir={workdir}",
                   f"paths.cache_dir={workdir / 'cache'}"], env)
    (summary,) = workdir.glob("train/runs/*/metrics.json")
    ckpt = json.loads(summary.read_text())["checkpoint"]
    images = workdir / "course" / "images" if quick else IDL_TEST / "images"
    if quick:
        write_course_format(make_synthetic(50, seed=5), workdir / "course")
    predict = timed([sys.executable, "-m", "imgrec.predict", f"ckpt={ckpt}", f"input={images}",
                     f"out={workdir / 'predictions'}"], env)
    return Result("train_predict", "train (dev data, defaults, cold caches)", "predict (500 test-sample images)",
                  train, predict, "s (wall)", (train + predict) / train, "report", True,
                  {"train_s": train, "predict_s": predict, "total_s": train + predict, "data": data})


def run(quick: bool = False, experiment: str = "preproc_sweep", make_run: bool = False,
        first_run: bool = False) -> Result:
    if first_run:
        with tempfile.TemporaryDirectory() as tmp:
            return train_predict(quick, Path(tmp))
    if make_run:
        with tempfile.TemporaryDirectory() as tmp:
            seconds = make_run_seconds(Path(tmp))
        return Result("make_run", "target", "make run, cold caches", 120.0, seconds, "s (wall)", seconds / 120.0,
                      "<= 120 s", seconds <= 120.0, {"command": " ".join(MAKE_RUN)})
    if quick:
        data = ["data=synthetic", "data.n_images=200", "model.net.backbones.0.input_size=64"]
    else:
        data = ["data=idl", f"data.root={IDL_DEV}", "model.net.backbones.0.input_size=128"]
    epochs = 2 if quick else 3
    overrides = [*data, f"trainer.max_epochs={epochs}"]
    with tempfile.TemporaryDirectory() as tmp:
        files = not quick
        cached = sweep_seconds(experiment, overrides, True, Path(tmp) / "cached", files)
        full = sweep_seconds(experiment, overrides, False, Path(tmp) / "full", files)
    return Result(f"end_to_end_{experiment}", "no caches", "feature + image caches", full, cached, "s (wall)",
                  full / cached, "report", True, {"overrides": overrides, "epochs": epochs})
