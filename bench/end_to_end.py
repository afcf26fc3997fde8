"""5. End to end: wall time of the sweeps on the dev data, with and without the caches.

Each side is a fresh subprocess with its own empty cache folder, so the cached side pays for
filling its caches. Epochs are capped (``trainer.max_epochs``) to keep the uncached side affordable
on a CPU; the cap is recorded.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.common import IDL_DEV, Result

ROOT = Path(__file__).resolve().parents[1]


def sweep_seconds(experiment: str, overrides: list[str], cached: bool, workdir: Path) -> float:
    caches = [] if cached else ["cache.features=false", "data.cache_dir=null"]
    args = [sys.executable, "-m", "imgrec.run", f"+experiment={experiment}", f"paths.log_dir={workdir}",
            f"paths.cache_dir={workdir / 'cache'}", "logger=none", *overrides, *caches]
    start = time.perf_counter()
    done = subprocess.run(args, cwd=ROOT, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"{experiment} failed:\n{done.stderr[-3000:]}")
    return time.perf_counter() - start


def run(quick: bool = False, experiment: str = "preproc_sweep") -> Result:
    if quick:
        data = ["data=synthetic", "data.n_images=200", "model.net.backbones.0.input_size=64"]
    else:
        data = ["data=idl", f"data.root={IDL_DEV}", "model.net.backbones.0.input_size=128"]
    epochs = 2 if quick else 3
    overrides = [*data, f"trainer.max_epochs={epochs}"]
    with tempfile.TemporaryDirectory() as tmp:
        cached = sweep_seconds(experiment, overrides, True, Path(tmp) / "cached")
        full = sweep_seconds(experiment, overrides, False, Path(tmp) / "full")
    ratio = full / cached
    return Result(f"end_to_end_{experiment}", "no caches", "feature + image caches", full, cached, "s (wall)",
                  ratio, "report", True, {"overrides": overrides, "epochs": epochs})
