"""A run folder's outcome: ``metrics.json`` when the run finished, ``failed.json`` when it failed in a
sweep, and ``pruned.json`` beside ``metrics.json`` when an Optuna search stopped it early. This module
is the one writer and reader of the three files.

``metrics.json`` is written last, so its presence marks a finished run: a restarted sweep skips it.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from imgrec.utils.io import write_json

FINISHED, FAILED, PRUNED = "metrics.json", "failed.json", "pruned.json"


@dataclass
class RunSummary:
    overrides: list[str]  # the run's command-line overrides (Hydra's task overrides)
    metrics: dict[str, float] = field(default_factory=dict)  # every logged val/test metric
    epochs: int | None = None
    seconds: float | None = None  # fit + evaluation
    checkpoint: str = ""  # the best checkpoint, holding the thresholds
    data_fingerprint: str = ""
    thresholds: dict[str, Any] = field(default_factory=dict)  # Thresholds.as_dict()
    size: dict[str, Any] = field(default_factory=dict)  # models.summary.model_size
    error: str | None = None  # set: the run failed
    pruned_at: int | None = None  # set: an Optuna pruner stopped the run after this epoch (pruned.json)

    @property
    def failed(self) -> bool:
        return self.error is not None

    @property
    def status(self) -> str:
        """What a sweep's table shows: ``ok``, ``pruned after epoch N`` or ``failed: <error>``."""
        if self.failed:
            return f"failed: {self.error}"
        return "ok" if self.pruned_at is None else f"pruned after epoch {self.pruned_at}"

    def write(self, folder: str | Path) -> Path:
        folder = Path(folder)
        if self.failed:
            return write_json(folder / FAILED, {"error": self.error, "overrides": self.overrides})
        (folder / FAILED).unlink(missing_ok=True)
        outcome = {k: v for k, v in asdict(self).items() if k not in ("error", "pruned_at")}  # pruned.json's
        return write_json(folder / FINISHED, outcome)

    @classmethod
    def read(cls, folder: str | Path) -> RunSummary | None:
        """The folder's outcome: finished, failed, or None (neither file: not a run, or still running)."""
        folder = Path(folder)
        for name in (FINISHED, FAILED):
            if (folder / name).is_file():
                data = json.loads((folder / name).read_text())
                summary = cls(**{k: v for k, v in data.items() if k in cls.__dataclass_fields__})
                if (folder / PRUNED).is_file():
                    summary.pruned_at = json.loads((folder / PRUNED).read_text())["epoch"]
                return summary
        return None


def write_pruned(folder: str | Path, trial: int, epoch: int, monitor: str, value: float) -> Path:
    """Mark the run in ``folder`` as stopped by the pruner of an Optuna search after ``epoch``."""
    return write_json(Path(folder) / PRUNED, {"trial": trial, "epoch": epoch, monitor: value})


def clear_failure(folder: str | Path) -> None:
    """A run that starts again in ``folder`` is no longer failed."""
    (Path(folder) / FAILED).unlink(missing_ok=True)


def run_folders(parent: str | Path, finished_only: bool = False) -> list[Path]:
    """The run folders directly under a sweep folder, in run-number order."""
    names = (FINISHED,) if finished_only else (FINISHED, FAILED)
    folders = {p.parent for name in names for p in Path(parent).glob(f"*/{name}")}
    return sorted(folders, key=lambda p: (len(p.name), p.name))


def finished_runs(root: str | Path) -> list[Path]:
    """Every finished run folder anywhere under ``root``, oldest first."""
    return [p.parent for p in sorted(Path(root).rglob(FINISHED), key=lambda p: p.stat().st_mtime)]
