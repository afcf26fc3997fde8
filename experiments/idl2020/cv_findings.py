"""REPORT.md's cross-validated findings: the study's claims re-checked over 5 folds (``*-cv`` steps).

Each setting of a ``*-cv`` step is a 5-fold CV (``imgrec.reporting.cv`` wrote its ``cv.json``). Settings
of a step share their folds, so two settings are compared fold by fold: the mean of the per-fold
differences ± their std. A difference is a finding only when its mean exceeds that std.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from imgrec.training.run_summary import RunSummary

# The frozen +arch options: each backbone ± the 256-unit hidden layer, and the Lite0 + Lite2 ensemble.
TRANSFER = [f"transfer_lite{k}{h}" for k in (0, 1, 2) for h in ("", "_hidden")] + ["ensemble"]
CV_STEPS = {
    # §4.1 on folds: split; + augmentation; + augmentation + oversampling (Lite0, 128 px, frozen).
    "preproc-cv": ["+experiment=preproc_sweep", "model.net.input_size=128"],
    # §4.2/§4.4 on folds: each frozen backbone at its own size, ± the hidden layer, and the ensemble.
    "transfer-cv": ["+arch=" + ",".join(TRANSFER), "model.net.input_size=null"],
}
FOLDS = ["split=kfold", "split.folds=5", "split.fold=range(0,5)"]


@dataclass(frozen=True)
class Setting:
    """One CV of a step: the override that names it and each fold's metrics, in fold order."""

    name: str
    cv: dict
    folds: list[dict]

    def values(self, metric: str) -> np.ndarray:
        return np.array([f[metric] for f in self.folds])


def load_settings(logs: Path, step: str, key: str) -> dict[str, Setting]:
    """The step's CVs by the value of override ``key`` (``preproc``, ``arch``)."""
    settings = {}
    for path in sorted((logs / step).glob("**/cv.json")):
        cv = json.loads(path.read_text())
        folds = sorted((RunSummary.read(run) for run in cv["runs"]),
                       key=lambda s: next(o for o in s.overrides if o.startswith("split.fold=")))
        value = next((o.split("=", 1)[1] for o in folds[0].overrides if o.lstrip("+").startswith(f"{key}=")), "")
        settings[value] = Setting(value, cv, [f.metrics for f in folds])
    return settings


def compare(claim: str, a: Setting, b: Setting, metric: str, expect: str) -> dict[str, str]:
    """``b`` against ``a`` on ``metric``, fold by fold. ``expect``: the study's sign (``+``, ``-``, ``0``)."""
    diff = b.values(metric) - a.values(metric)
    mean, std = float(diff.mean()), float(diff.std(ddof=1))
    beyond = abs(mean) > std
    if expect == "0":
        verdict = "holds (no difference beyond the spread)" if not beyond else "does not hold"
    elif not beyond:
        verdict = "within the spread: not a finding here"
    else:
        verdict = "holds" if (mean > 0) == (expect == "+") else "does not hold (reversed)"
    return {"study's claim": claim, "compared": f"{b.name} vs {a.name}", "metric": metric,
            "a (mean ± std)": pm(a.values(metric)), "b (mean ± std)": pm(b.values(metric)),
            "Δ per fold (mean ± std)": f"{mean:+.4f} ± {std:.4f}", "verdict": f"**{verdict}**"}


def pm(values: np.ndarray) -> str:
    return f"{values.mean():.4f} ± {values.std(ddof=1):.4f}"


def findings(logs: Path) -> pd.DataFrame:
    rows = []
    pre = load_settings(logs, "preproc-cv", "preproc")
    if {"split", "augment", "augment_oversample"} <= set(pre):
        for metric in ("val/f1_micro", "test/f1_micro"):
            rows.append(compare("augmentation barely matters", pre["split"], pre["augment"], metric, "0"))
        rows.append(compare("oversampling hurts precision", pre["augment"], pre["augment_oversample"],
                            "test/precision", "-"))
    arch = load_settings(logs, "transfer-cv", "arch")
    for k in (0, 1, 2):
        plain, hidden = arch.get(f"transfer_lite{k}"), arch.get(f"transfer_lite{k}_hidden")
        if plain and hidden:
            rows.append(compare("the hidden layer brings little", plain, hidden, "val/f1_micro", "0"))
    members = [arch[m] for m in ("transfer_lite0", "transfer_lite2") if m in arch]
    if "ensemble" in arch and members:
        best = max(members, key=lambda s: s.values("val/f1_micro").mean())
        for metric in ("val/f1_micro", "test/f1_micro"):
            rows.append(compare("the ensemble is slightly better than its best member", best, arch["ensemble"],
                                metric, "+"))
    return pd.DataFrame(rows)


def section(logs: Path) -> list[str]:
    """The report's lines: the findings table, or nothing when no CV step ran."""
    table = findings(logs)
    if table.empty:
        return []
    return ["## The findings over 5 folds", "",
            "Each setting is a 5-fold multi-label stratified cross-validation over train+val (test held out: "
            "the same images for every fold and setting), frozen backbones on cached features. Settings share "
            "their folds, so each comparison is fold by fold: the mean of the 5 per-fold differences ± their "
            "std. `val` is each fold's held-out part (out-of-fold); `test` scores each fold's model on the "
            "held-out test split. A difference within that std is not a finding.", "",
            table.to_markdown(index=False), ""]
