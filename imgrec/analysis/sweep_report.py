"""When a sweep ends, collect every run's ``metrics.json`` into one results table (markdown + CSV)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pandas as pd
from hydra.experimental.callback import Callback
from hydra.utils import instantiate
from omegaconf import DictConfig

from imgrec.analysis.cv import write_cv
from imgrec.analysis.sweep_compare import write_sweep_report
from imgrec.io import write_text
from imgrec.run_summary import RunSummary, run_folders

log = logging.getLogger(__name__)

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


# The console's short table: the columns a person compares (results.md/.csv keep them all).
CONSOLE = {"settings": "setting", "val/f1_micro": "val F1", "test/f1_micro": "test F1", "test/precision": "test P",
           "test/recall": "test R", "test_tuned/f1_micro": "tuned F1", "seconds": "s"}


def console_table(table: pd.DataFrame) -> str:
    short = table[list(CONSOLE)].rename(columns=CONSOLE)
    short["s"] = short["s"].map(lambda v: "" if pd.isna(v) else f"{v:.0f}")
    if (table["status"] != "ok").any():
        short.insert(1, "status", table["status"])
    return short.to_markdown(index=False, floatfmt=".3f")


def write_results(sweep_dir: Path, metric: str = "val/f1_micro") -> pd.DataFrame:
    table = collect(sweep_dir)
    if table.empty:
        log.warning("no finished runs in %s", sweep_dir)
        return table
    write_text(sweep_dir / "results.csv", table.to_csv(index=False))
    markdown = table.to_markdown(index=False, floatfmt=".4f")
    write_text(sweep_dir / "results.md", markdown + "\n")
    print(f"\nResults ({sweep_dir}; every column in results.md):\n{console_table(table)}\n", flush=True)
    write_sweep_report(sweep_dir, table, metric)  # report.md: + per-label F1 heatmap, best run's analysis
    return table


class SweepReport(Callback):
    """Writes the table when a sweep ends, then exits non-zero if any run failed."""

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        from imgrec.dashboard.page import write_dashboard  # it reads this module's table

        sweep_dir = Path(config.hydra.sweep.dir)
        table = write_results(sweep_dir, config.optimized_metric)
        write_cv(sweep_dir, config.optimized_metric, instantiate(config.thresholds))
        if not table.empty:  # the last line names the page (imgrec.dashboard)
            print(f"dashboard: {write_dashboard(sweep_dir, metric=config.optimized_metric).resolve()}", flush=True)
        failed = failed_runs(table)
        if failed:
            raise SystemExit(f"error: {failed} of {len(table)} runs failed (see the status column)")
