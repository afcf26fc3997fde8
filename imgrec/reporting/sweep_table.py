"""A sweep's results table: one row per run folder, from each run's ``metrics.json`` or ``failed.json``
(the sweep report, the dashboard and the W&B summary all read it from here)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from imgrec.training.run_summary import RunSummary, run_folders

COLUMNS = ["val/f1_micro", "val/precision", "val/recall", "test/f1_micro", "test/precision", "test/recall"]
COLUMNS += ["test_tuned/f1_micro", "test/map"]  # at the thresholds fitted on val; mean average precision


def collect(sweep_dir: Path) -> pd.DataFrame:
    """One row per run, finished (``metrics.json``) or failed (``failed.json``); ``settings`` lists only
    the overrides that differ between runs."""
    return table_of(run_folders(sweep_dir))


def table_of(folders: list[Path]) -> pd.DataFrame:
    """The table of these run folders' outcomes (:class:`RunSummary`), one row each."""
    summaries = [RunSummary.read(folder) for folder in folders]
    shared = set.intersection(*(set(s.overrides) for s in summaries)) if len(summaries) > 1 else set()
    rows = []
    for folder, summary in zip(folders, summaries):
        settings = [o for o in summary.overrides if o not in shared]
        row: dict[str, Any] = {"run": folder.name, "settings": " ".join(settings),
                               "status": summary.status}
        row.update({c: summary.metrics.get(c) for c in COLUMNS})
        size = summary.size  # the model's, logged at start (imgrec.models.summary.model_size)
        row.update({"params": size.get("params"), "trainable": size.get("trainable_params"),
                    "epochs": summary.epochs, "seconds": summary.seconds})
        rows.append(row)
    return pd.DataFrame(rows)


def failed_runs(table: pd.DataFrame) -> int:
    """Runs that failed (``failed.json``); a run that Optuna pruned was evaluated and counts as finished."""
    return int(table["status"].str.startswith("failed").sum()) if not table.empty else 0
