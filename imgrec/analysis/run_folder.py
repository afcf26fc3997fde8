"""Read back what ``imgrec.run`` left in a run folder (for notebooks and later analysis)."""

from __future__ import annotations

import json
from pathlib import Path

from imgrec.errors import ImgrecError
from imgrec.evaluation import Evaluation


def latest_run(log_dir: str | Path) -> Path:
    """The most recently finished run folder under ``log_dir`` (the one whose metrics.json is newest)."""
    markers = sorted(Path(log_dir).rglob("metrics.json"), key=lambda p: p.stat().st_mtime)
    if not markers:
        raise ImgrecError(f"{log_dir}: no finished run (metrics.json) under it")
    return markers[-1].parent


def load_run(run_dir: str | Path) -> Evaluation:
    """The run's val/test outputs and thresholds (``predictions.npz``) with its metrics."""
    run_dir = Path(run_dir)
    for name in ("predictions.npz", "metrics.json"):
        if not (run_dir / name).is_file():
            raise ImgrecError(f"{run_dir}: no {name}; is this a finished imgrec run folder?")
    metrics = json.loads((run_dir / "metrics.json").read_text())["metrics"]
    return Evaluation.load(run_dir / "predictions.npz", metrics)
