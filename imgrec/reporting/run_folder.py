"""Read back what ``imgrec.run`` left in a run folder (for notebooks and later analysis)."""

from __future__ import annotations

from pathlib import Path

from imgrec.training.evaluate import Evaluation
from imgrec.training.run_summary import RunSummary, finished_runs
from imgrec.utils.errors import ImgrecError


def latest_run(log_dir: str | Path) -> Path:
    """The most recently finished run folder under ``log_dir`` (the one whose metrics.json is newest)."""
    runs = finished_runs(log_dir)
    if not runs:
        raise ImgrecError(f"{log_dir}: no finished run (metrics.json) under it")
    return runs[-1]


def load_run(run_dir: str | Path) -> Evaluation:
    """The run's val/test outputs and thresholds (``predictions.npz``) with its metrics."""
    run_dir = Path(run_dir)
    summary = RunSummary.read(run_dir)
    if summary is None or summary.failed or not (run_dir / "predictions.npz").is_file():
        raise ImgrecError(f"{run_dir}: not a finished imgrec run folder (no metrics.json or predictions.npz)")
    return Evaluation.load(run_dir / "predictions.npz", summary.metrics)
