"""Scaling: wall time per phase and peak memory against the number of images (1k, 4k, 16k and 64k
synthetic images at 128 px), ``python -m bench scaling [--sizes N ...] [--phases PHASE ...]``.

The images are written once in the course format for the largest size (the ``write`` phase: drawing,
JPEG encoding and writing, on every core); a smaller set links to the first N of them (image ``i``
depends only on (seed, i), so the sets nest). Per size, each phase runs in a fresh process
(:mod:`bench.scaling_phases`), in data-flow order: ``decode`` (the decoded-image cache), ``extract``
(frozen Lite0 features, OpenVINO as ``cache.engine=auto`` picks), ``epoch`` and ``evaluate`` (one
process: one epoch on the cached features, then the evaluation of the best checkpoint), ``predict``
(``imgrec.predict`` over the images folder). Every size is measured ``REPEATS`` times, each phase from
cold (its cache or run folder removed first), and a phase's row is the median of its wall and CPU
seconds and the highest of its peaks: a single measurement on a 2-core machine moved by up to 30%
(extraction of 64k images: 47 s in one run, 39 s in the next). Results merge into
``bench/out/scaling.json``, so that ``--phases predict`` reruns one phase and keeps the others; the
plot is ``bench/scaling.png``.

Linear growth is judged on the marginal cost per image between successive sizes, (t(N2) - t(N1)) /
(N2 - N1), which a fixed start-up cost (building a model, exporting it to OpenVINO) does not move:
every step must lie within +-25% of the last one (16k -> 64k). Peak RSS at the largest size < 3 GB.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
from PIL import Image

from bench.common import OUT, Result
from imgrec.data.synthetic import LABELS, synthetic_image

ROOT = Path(__file__).resolve().parents[1]
SIZES = (1000, 4000, 16000, 64000)
QUICK_SIZES = (200, 400)
PHASES = ("decode", "extract", "epoch", "evaluate", "predict")
PROCESS = {"decode": "decode", "extract": "extract", "epoch": "train", "evaluate": "train", "predict": "predict"}
TOLERANCE, PEAK_MB, REPEATS = 0.25, 3000.0, 3
PLOT = Path(__file__).resolve().parent / "scaling.png"


def write_part(root: Path, start: int, stop: int) -> np.ndarray:
    targets = np.zeros((stop - start, len(LABELS)), dtype=np.uint8)
    for i in range(start, stop):
        image, targets[i - start] = synthetic_image(i)
        Image.fromarray(image).save(root / "images" / f"im{i + 1}.jpg", quality=95)
    return targets


def write_annotations(root: Path, targets: np.ndarray) -> None:
    (root / "annotations").mkdir(parents=True, exist_ok=True)
    for j, label in enumerate(LABELS):
        numbers = np.flatnonzero(targets[:, j]) + 1
        (root / "annotations" / f"{label}.txt").write_text("".join(f"{n}\n" for n in numbers))


def write_images(root: Path, n: int) -> float:
    """The course format for ``n`` synthetic images, written in parts by one process per core; seconds."""
    if (root / "targets.npy").is_file():
        return float("nan")  # written by an earlier run
    (root / "images").mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    bounds = list(range(0, n, 2000)) + [n]
    with ProcessPoolExecutor(os.cpu_count()) as pool:
        parts = list(pool.map(write_part, [root] * (len(bounds) - 1), bounds[:-1], bounds[1:]))
    targets = np.concatenate(parts)
    write_annotations(root, targets)
    seconds = time.perf_counter() - start
    np.save(root / "targets.npy", targets)  # last: marks the folder complete
    return seconds


def linked_subset(full: Path, root: Path, n: int) -> None:
    """The first ``n`` images of ``full`` as links, with their annotations."""
    if root.is_dir():
        return
    (root / "images").mkdir(parents=True)
    for i in range(1, n + 1):
        (root / "images" / f"im{i}.jpg").symlink_to(full / "images" / f"im{i}.jpg")
    write_annotations(root, np.load(full / "targets.npy")[:n])


def run_phase(process: str, root: Path, work: Path) -> dict[str, dict[str, float]]:
    done = subprocess.run([sys.executable, "-m", "bench.scaling_phases", process, str(root), str(work)], cwd=ROOT,
                          capture_output=True, text=True, env={**os.environ, "WANDB_MODE": "offline"})
    if done.returncode != 0:
        raise RuntimeError(f"scaling phase {process} at {root} failed:\n{done.stderr[-3000:]}")
    rows = [json.loads(line) for line in done.stdout.splitlines() if line.startswith('{"phase"')]
    load = os.getloadavg()[0]  # the machine is shared: each row says how busy it was
    return {row.pop("phase"): {**row, "load_1min": load} for row in rows}


def fresh(process: str, work: Path) -> None:
    """Remove what ``process`` would otherwise find from an earlier measurement: its phases start cold.
    The features stay for ``decode`` (keyed by content, they are valid for the same images)."""
    stale = {"decode": work / "cache" / "images", "extract": work / "cache" / "features", "train": work / "run"}
    if process in stale:
        shutil.rmtree(stale[process], ignore_errors=True)


def median_row(rows: list[dict[str, float]]) -> dict[str, float]:
    """Repeated measurements of a phase: median seconds, highest peak, every wall time kept."""
    return {"seconds": float(np.median([r["seconds"] for r in rows])),
            "cpu_seconds": float(np.median([r["cpu_seconds"] for r in rows])),
            "peak_rss_mb": max(r["peak_rss_mb"] for r in rows), "load_1min": max(r["load_1min"] for r in rows),
            "seconds_each": [r["seconds"] for r in rows]}


def marginal(rows: dict[str, dict[str, float]], key: str = "seconds") -> list[float]:
    """Seconds (``key``: wall or CPU) per image between successive sizes."""
    sizes = sorted((n for n in rows if key in rows[n]), key=int)
    return [(rows[b][key] - rows[a][key]) / (int(b) - int(a)) for a, b in zip(sizes, sizes[1:])]


def verdicts(table: dict[str, dict[str, dict[str, float]]]) -> dict[str, dict[str, object]]:
    """Per phase, for wall and CPU seconds: the marginal cost per image of each step, its deviation
    from the last step's, and whether every step lies within the tolerance."""
    out: dict[str, dict[str, object]] = {}
    for phase, rows in table.items():
        out[phase] = {"peak_rss_mb_largest": rows[max(rows, key=int)]["peak_rss_mb"]}
        for key in ("seconds", "cpu_seconds"):
            steps = marginal(rows, key)
            spread = [s / steps[-1] - 1 for s in steps] if steps and steps[-1] > 0 else []
            out[phase][key] = {"marginal_s_per_image": steps, "spread": spread,
                               "linear": bool(spread) and all(abs(s) <= TOLERANCE for s in spread)}
    return out


def plot(table: dict[str, dict[str, dict[str, float]]], path: Path) -> None:
    """Wall seconds, CPU seconds and peak RSS per phase against the number of images, log-log, with a
    dotted line of slope 1 (linear growth) through each time panel's largest point."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(12, 3.6), dpi=80)
    panels = (("seconds", "wall time per phase (s)", 1.0), ("cpu_seconds", "CPU time per phase (s)", 1.0),
              ("peak_rss_mb", "peak RSS per phase (GB)", 1 / 1024))
    for ax, (key, title, scale) in zip(axes, panels):
        for phase, rows in table.items():
            sizes = sorted((n for n in rows if rows[n].get(key) == rows[n].get(key) and key in rows[n]), key=int)
            ax.plot([int(n) for n in sizes], [rows[n][key] * scale for n in sizes], "o-", label=phase)
        if key == "peak_rss_mb":
            ax.axhline(PEAK_MB / 1024, color="k", linestyle=":", label="3 GB")
        else:
            points = [(int(n), r[n][key]) for r in table.values() for n in r if key in r[n]]
            if points:
                top = max(points)
                ax.plot([top[0] / 64, top[0]], [top[1] / 64, top[1]], "k:", label="linear")
        ax.set(xscale="log", yscale="log", xlabel="images", title=title)
        ax.grid(True, which="both", alpha=0.3)
    axes[0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def run(quick: bool = False, sizes: list[int] | None = None, phases: list[str] | None = None,
        work: str | None = None, repeats: int | None = None) -> Result:
    sizes = sorted(sizes or (QUICK_SIZES if quick else SIZES))
    repeats = repeats or (1 if quick else REPEATS)
    phases = [p for p in PHASES if p in (phases or PHASES)]
    folder = Path(work or Path(tempfile.gettempdir()) / "imgrec-scaling")
    full = folder / f"data-{max(sizes)}"
    written = write_images(full, max(sizes))
    saved = OUT / "scaling.json"
    previous = json.loads(saved.read_text())["details"] if saved.is_file() and not quick else {}
    previous = {} if previous.get("quick") else previous  # a smoke run's sizes are not merged
    table: dict[str, dict[str, dict[str, float]]] = previous.get("table", {})
    for n in sizes:
        root = full if n == max(sizes) else folder / f"data-{n}"
        linked_subset(full, root, n)
        work_n, measured = folder / f"work-{n}", {}
        for repeat in range(repeats):
            for process in dict.fromkeys(PROCESS[p] for p in phases):
                print(f"  scaling: {n} images, {process} ({repeat + 1}/{repeats}) ...", flush=True)
                fresh(process, work_n)
                for phase, row in run_phase(process, root, work_n).items():
                    measured.setdefault(phase, []).append(row)
        for phase, rows in measured.items():
            table.setdefault(phase, {})[str(n)] = median_row(rows)
    table = {p: table[p] for p in PHASES if p in table}
    if written == written:  # nan: the images were written by an earlier run
        table["write"] = {str(max(sizes)): {"seconds": written, "peak_rss_mb": float("nan")}}
    elif "write" in previous.get("table", {}):
        table["write"] = previous["table"]["write"]
    judged = verdicts({p: rows for p, rows in table.items() if p != "write"})
    plot({p: rows for p, rows in table.items() if p != "write"}, PLOT if not quick else folder / "scaling.png")
    largest = str(max(sizes))
    peak = max(rows[largest]["peak_rss_mb"] for p, rows in table.items() if p != "write" and largest in rows)
    linear = [p for p, v in judged.items() if v["seconds"]["linear"]]  # the target is on wall time
    return Result("scaling", f"{min(sizes)} images", f"{max(sizes)} images", float(min(sizes)), float(max(sizes)),
                  "images", max(sizes) / min(sizes), "each phase linear within +-25% per image; peak RSS < 3 GB",
                  len(linear) == len(judged) and peak < PEAK_MB,
                  {"table": table, "verdicts": judged, "peak_rss_mb": peak, "sizes": sizes,
                   "model": "efficientnet_lite0 at 64 px input (images 128 px)", "quick": quick,
                   "repeats": repeats})
