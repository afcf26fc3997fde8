"""When a sweep ends: its results table (markdown + CSV, :mod:`imgrec.reporting.sweep_table`), report,
CV aggregate and dashboard; with ``select``, one model selected from the CV settings
(:mod:`imgrec.reporting.selection`)."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd
from hydra.experimental.callback import Callback
from hydra.utils import instantiate
from omegaconf import DictConfig

from imgrec.reporting.cv import write_cv
from imgrec.reporting.dashboard.page import write_dashboard
from imgrec.reporting.selection import select_ensemble
from imgrec.reporting.sweep_compare import write_sweep_report
from imgrec.reporting.sweep_table import collect, failed_runs
from imgrec.utils.io import write_text

log = logging.getLogger(__name__)

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
    """Writes the table when a sweep ends, then exits non-zero if any run failed.

    ``select``: after the CV aggregates, select an ensemble of the sweep's CV settings on their
    out-of-fold predictions into ``<sweep>/selection/`` and print ``final checkpoint: <path>`` last
    (``+experiment=best``). ``select_from``: earlier CV sweeps on the same folds whose settings join the
    candidates, so that a setting another sweep already cross-validated is not trained again
    (``make reproduce`` takes ``+experiment=best``'s frozen candidates from its ``transfer-cv`` step)."""

    def __init__(self, select: bool = False, select_from: Sequence[str] = ()) -> None:
        self.select, self.select_from = select, [Path(folder) for folder in select_from]

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        sweep_dir = Path(config.hydra.sweep.dir)
        table = write_results(sweep_dir, config.optimized_metric)
        policy = instantiate(config.thresholds)
        cv = write_cv(sweep_dir, config.optimized_metric, policy)
        if not table.empty:
            print(f"dashboard: {write_dashboard(sweep_dir, metric=config.optimized_metric).resolve()}", flush=True)
        if self.select and cv:
            record = select_ensemble([sweep_dir, *self.select_from], policy=policy)
            print(f"final checkpoint: {Path(record['ensemble']['checkpoint']).resolve()}", flush=True)
        failed = failed_runs(table)
        if failed:
            raise SystemExit(f"error: {failed} of {len(table)} runs failed (see the status column)")
