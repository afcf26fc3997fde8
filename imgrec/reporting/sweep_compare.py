"""A sweep's ``report.md``: the results table, test F1 per label as a runs x labels heatmap, and the
best run's error analysis (linked from its own run folder, not copied)."""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd

from imgrec.reporting import plots
from imgrec.reporting.run_report import ERROR_ANALYSIS, REPORT_DIR
from imgrec.training.run_summary import RunSummary
from imgrec.utils.io import write_text


def per_label_f1(sweep_dir: Path, table: pd.DataFrame) -> pd.DataFrame:
    """Runs (``"<run>: <settings>"``) x labels: test F1 at the tuned thresholds, from each run's report."""
    rows = {}
    for run, settings in zip(table["run"], table["settings"]):
        path = sweep_dir / str(run) / REPORT_DIR / "per_label_test.csv"
        if path.is_file():
            rows[f"{run}: {settings}".rstrip(": ")] = pd.read_csv(path).set_index("label")["f1"]
    return pd.DataFrame(rows).T


def best_run(sweep_dir: Path, table: pd.DataFrame, metric: str) -> tuple[str, float] | None:
    """The finished run with the highest ``metric`` (from its :class:`RunSummary`)."""
    scores = {}
    for run in table["run"]:
        summary = RunSummary.read(sweep_dir / str(run))
        if summary is not None and metric in summary.metrics:
            scores[str(run)] = float(summary.metrics[metric])
    return max(scores.items(), key=lambda kv: kv[1]) if scores else None


def error_analysis_section(run_dir: Path, link_prefix: str) -> str:
    """The error-analysis part of a run's report, its links made relative to the sweep folder."""
    path = run_dir / "report.md"
    if not path.is_file():
        return ""
    text = path.read_text()
    start = text.find(ERROR_ANALYSIS)
    if start < 0:
        return ""
    section = re.sub(r"^(#+) ", r"#\1 ", text[start:], flags=re.M)  # one level down, under "Best run"
    section = section.replace(f"#{ERROR_ANALYSIS}", f"#{ERROR_ANALYSIS} of the best run", 1)
    return section.replace(f"]({REPORT_DIR}/", f"]({link_prefix}/{REPORT_DIR}/").replace(
        f"`{REPORT_DIR}/", f"`{link_prefix}/{REPORT_DIR}/")


def write_sweep_report(sweep_dir: Path, table: pd.DataFrame, metric: str) -> Path:
    md = ["# Sweep report", "", f"Runs of `{sweep_dir}`; selection by `{metric}` on val.", "",
          table.to_markdown(index=False, floatfmt=".4f"), ""]
    heat = per_label_f1(sweep_dir, table)
    if not heat.empty:
        plots.save(plots.f1_heatmap(heat), sweep_dir / "f1_per_label.png")
        md += ["## Test F1 per label", "", "![test F1 per label](f1_per_label.png)", ""]
    best = best_run(sweep_dir, table, metric)
    if best is not None:
        run, score = best
        settings = table.loc[table["run"].astype(str) == run, "settings"].iloc[0]
        md += [f"## Best run: {run} ({settings or 'defaults'})", "",
               f"`{metric}` = {score:.4f}. Full report: [{run}/report.md]({run}/report.md).", "",
               error_analysis_section(sweep_dir / run, run)]
    return write_text(sweep_dir / "report.md", "\n".join(md).rstrip() + "\n")
