"""5. End to end: wall time of the sweeps, with and without the caches: ``preproc_sweep`` and
``arch_sweep`` on the dev data, and ``make run`` (``preproc_sweep`` on the embedded default data).

Each side is a fresh subprocess with its own empty cache folder, so the cached side pays for
filling its caches. Epochs are capped (``trainer.max_epochs``) to keep the uncached side affordable
on a CPU; the cap is recorded. Without the cap the ratio only grows: the uncached side pays a
backbone pass every epoch, the cached side once.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.common import IDL_DEV, Result

ROOT = Path(__file__).resolve().parents[1]


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


def run(quick: bool = False, experiment: str = "preproc_sweep", make_run: bool = False) -> Result:
    """``make_run``: the embedded default data at its default input size (224 px), as ``make run``."""
    if quick:
        data = ["data=synthetic", "data.n_images=200", "model.net.backbones.0.input_size=64"]
    elif make_run:
        data = []
    else:
        data = ["data=idl", f"data.root={IDL_DEV}", "model.net.backbones.0.input_size=128"]
    epochs = 2 if quick else 3
    overrides = [*data, f"trainer.max_epochs={epochs}"]
    with tempfile.TemporaryDirectory() as tmp:
        files = not (quick or make_run)
        cached = sweep_seconds(experiment, overrides, True, Path(tmp) / "cached", files)
        full = sweep_seconds(experiment, overrides, False, Path(tmp) / "full", files)
    ratio = full / cached
    name = "make_run" if make_run else f"end_to_end_{experiment}"
    target = "several x" if make_run else "report"
    return Result(name, "no caches", "feature + image caches", full, cached, "s (wall)", ratio, target,
                  ratio >= 3 if make_run else True, {"overrides": overrides, "epochs": epochs})
