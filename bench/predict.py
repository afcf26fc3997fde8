"""7. ``imgrec predict`` at engine speed: whole processes of ``python -m imgrec.predict ... engine=eager`` against
``engine=auto`` (OpenVINO on a CPU where it is installed) on the same folder, alternated round by round; the
ratio is taken pair by pair and the median quoted. Also: the ``results.txt`` of both sides (each decision
that differs is listed with its probabilities) and each process's peak RSS (predict streams the folder in
chunks, so it should not grow with the number of images: ``auto`` is also run on a quarter of them).
Predict's >= 2.5x target was against the predict before engines, whose eager path was slower than
today's; that side by side is in bench/RESULTS.md.

The checkpoint is the default model's net (frozen EfficientNet-Lite0 with its ImageNet weights at 224 px,
linear head) with a seeded random head, written as ``imgrec.run`` writes checkpoints: what predict costs
does not depend on the head's weights. Quick: 96 synthetic images and a 64 px Lite0.
"""

from __future__ import annotations

import csv
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from hydra.utils import instantiate
from omegaconf import OmegaConf

from bench.common import IDL_DEV, Result
from imgrec.config.compose import compose_config
from imgrec.data.readers import list_images
from imgrec.data.synthetic import LABELS, make_synthetic, write_course_format

ROOT = Path(__file__).resolve().parents[1]


def checkpoint(folder: Path, input_size: int, image_size: int) -> Path:
    """The default transfer net (frozen Lite0 + linear head, seeded) saved as ``imgrec.run`` saves one."""
    cfg = compose_config(folder / "run", [f"model.net.backbones.0.input_size={input_size}"])
    meta = {"net_config": OmegaConf.to_yaml(cfg.model.net, resolve=True), "data_fingerprint": "bench",
            "image_size": image_size}
    torch.manual_seed(0)
    module = instantiate(cfg.model, label_names=list(LABELS), meta=meta).eval()
    path = folder / "model.ckpt"
    torch.save({"state_dict": module.state_dict(), "hyper_parameters": dict(module.hparams)}, path)
    return path


def folder_of(root: Path, n: int, quick: bool) -> Path:
    """``n`` images in a plain folder: the first of idl2020-dev (linked), or synthetic ones."""
    if quick or not IDL_DEV.is_dir():
        return write_course_format(make_synthetic(n, seed=0), root / "synthetic") / "images"
    images = root / f"dev{n}"
    images.mkdir()
    for path in list_images(IDL_DEV / "images")[:n]:
        (images / path.name).symlink_to(path)
    return images


def predict(ckpt: Path, images: Path, out: Path, engine: str) -> tuple[float, float]:
    """Wall seconds and peak RSS (MiB) of one ``python -m imgrec.predict`` process."""
    args = [sys.executable, "-m", "imgrec.predict", f"ckpt={ckpt}", f"input={images}", f"out={out}", f"engine={engine}"]
    log = out.with_name(f"{out.name}.log")
    with log.open("w") as stderr:
        start = time.perf_counter()
        process = subprocess.Popen(args, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=stderr)
        _, status, usage = os.wait4(process.pid, 0)  # the rusage of this child alone
        seconds = time.perf_counter() - start
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode != 0:
        raise RuntimeError(f"predict engine={engine} failed:\n{log.read_text()[-3000:]}")
    return seconds, usage.ru_maxrss / 1024


def decisions(out: Path) -> tuple[list[str], np.ndarray, np.ndarray]:
    rows = list(csv.reader((out / "predictions.csv").open()))[1:]
    return [r[0] for r in rows], np.array([r[1:-2] for r in rows], float), np.loadtxt(out / "results.txt", dtype=int)


def flips(eager: Path, auto: Path) -> list[str]:
    """Each (image, label) decided differently, with both probabilities."""
    names, p_eager, y_eager = decisions(eager)
    _, p_auto, y_auto = decisions(auto)
    return [f"{names[i]} {LABELS[j]}: eager {p_eager[i, j]:.6f}, auto {p_auto[i, j]:.6f}"
            for i, j in zip(*np.nonzero(y_eager != y_auto))]


def run(quick: bool = False, n_images: int = 2000, rounds: int = 3) -> Result:
    n, rounds = (96, 1) if quick else (n_images, rounds)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        ckpt = checkpoint(tmp, 64 if quick else 224, 128)
        images = folder_of(tmp, n, quick)
        times: dict[str, list[float]] = {"eager": [], "auto": []}
        peaks: dict[str, list[float]] = {"eager": [], "auto": []}
        for r in range(rounds):
            for engine in ("eager", "auto") if r % 2 == 0 else ("auto", "eager"):
                seconds, peak = predict(ckpt, images, tmp / engine, engine)
                times[engine].append(seconds)
                peaks[engine].append(peak)
        quarter = tmp / "quarter"
        quarter.mkdir()
        for path in sorted(images.iterdir())[:n // 4]:
            (quarter / path.name).symlink_to(path.resolve())
        _, quarter_peak = predict(ckpt, quarter, tmp / "auto_quarter", "auto")
        changed = flips(tmp / "eager", tmp / "auto")
    ratios = [e / a for e, a in zip(times["eager"], times["auto"])]
    eager_s, auto_s = statistics.median(times["eager"]), statistics.median(times["auto"])
    return Result("predict", "engine=eager", "engine=auto", n / eager_s, n / auto_s, "images/s (whole process)",
                  statistics.median(ratios), "report", True,
                  {"images": n, "rounds": rounds, "seconds": times, "pair_ratios": ratios, "peak_rss_mib": peaks,
                   "peak_rss_mib_auto_quarter": quarter_peak, "decisions_changed": changed,
                   "checkpoint": "frozen Lite0 at 224 px (64 px quick), linear head, seeded random head weights"})
