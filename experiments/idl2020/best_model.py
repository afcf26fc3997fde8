"""The ``best`` step of ``make reproduce`` (``+experiment=best``) and REPORT.md's section on it.

``+experiment=best`` is a 5-fold CV of every candidate of ``conf/experiment/best.yaml`` (frozen linear
probes, the frozen ensemble, partial fine-tuning) on the same folds, then ensemble selection on their
out-of-fold predictions (``selection/selection.json``, :mod:`imgrec.reporting.selection`). The frozen
candidates are settings the ``transfer-cv`` step has cross-validated on the same folds already, so the
step trains only the others and selects over both sweeps (:func:`overrides`). The levers are compared
fold by fold as the other CV findings are (:func:`experiments.idl2020.cv_findings.compare`): the test
micro F1 of each fold's model, a difference a finding only when its mean exceeds its std.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
from omegaconf import OmegaConf

from experiments.idl2020.cv_findings import TRANSFER, Setting, compare, load_settings
from imgrec.config.compose import CONF_DIR
from imgrec.reporting.selection import FOLDER, MARKDOWN, RECORD

STEP = "best"
SHARED_STEP = "transfer-cv"  # its CVs of TRANSFER are best's frozen candidates
# (lever, the setting without it, the setting with it): +arch options of conf/experiment/best.yaml
LEVERS = [("partial fine-tuning (Lite0, 224 px, last 2 stages)", "transfer_lite0", "partial_lite0"),
          ("partial fine-tuning (Lite2, 260 px, last stage)", "transfer_lite2", "partial_lite2"),
          ("the frozen Lite0 + Lite2 ensemble (Lite2 alone)", "transfer_lite2", "ensemble")]
TODAY = "ensemble"  # the final model before partial fine-tuning: the frozen Lite0 + Lite2 ensemble


def candidates() -> list[str]:
    """The ``+arch`` options ``+experiment=best`` cross-validates."""
    params = OmegaConf.load(CONF_DIR / "experiment" / "best.yaml").hydra.sweeper.params
    return str(params["+arch"]).split(",")


def overrides(logs: Path) -> list[str]:
    """``+experiment=best`` without the candidates of the shared step, which joins the selection."""
    own = [arch for arch in candidates() if arch not in TRANSFER]
    return ["+experiment=best", f"+arch={','.join(own)}",
            f"hydra.callbacks.sweep_report.select_from=['{logs / SHARED_STEP}']"]


def selected(record: dict) -> Setting:
    """The selected ensemble as a CV setting: its members' fold models, weighted, scored on test."""
    per_fold = record["ensemble"]["test_folds"]["per_fold"]
    return Setting("selected ensemble", {}, [{"test/f1_micro": v} for v in per_fold])


def levers(logs: Path, record: dict) -> pd.DataFrame:
    arch = {**load_settings(logs, SHARED_STEP, "arch"), **load_settings(logs, STEP, "arch")}
    rows = [compare(lever, arch[a], arch[b], metric, "+") for lever, a, b in LEVERS if a in arch and b in arch
            for metric in ("val/f1_micro", "test/f1_micro")]
    if TODAY in arch:
        rows.append(compare("the selected ensemble (the frozen ensemble)", arch[TODAY], selected(record),
                            "test/f1_micro", "+"))
    return pd.DataFrame(rows).rename(columns={"study's claim": "lever"})


def section(logs: Path, predict: Path, seconds: float | None) -> list[str]:
    """The report's lines, or nothing when the step did not finish."""
    folder = logs / STEP / FOLDER
    if not (folder / RECORD).is_file():
        return []
    record = json.loads((folder / RECORD).read_text())
    selection = [line for line in (folder / MARKDOWN).read_text().splitlines()
                 if not line.startswith(("# ", "Model: "))]
    cost = f" It took {seconds / 60:.0f} min on this machine." if seconds else ""
    return ["## The project's final model (`+experiment=best`)", "",
            "`python -m imgrec.run -m +experiment=best`: a 5-fold CV of each candidate on the same folds (test "
            "held out), then greedy ensemble selection on their out-of-fold predictions; nothing is chosen on "
            f"test. The frozen candidates are the `{SHARED_STEP}` step's CVs, which join the selection with "
            f"the other settings of that step; this step trains the others.{cost}", "", *selection, "",
            "What each lever gains, fold by fold (`test`: each fold's model scored on the held-out test split; "
            "the selected ensemble: its members' fold models, weighted):", "",
            levers(logs, record).to_markdown(index=False), "",
            f"Predictions of the selected model for `{predict.name}` in the course's format: "
            "[predictions/results.txt](predictions/results.txt) (one row per image in numeric order, 14 columns "
            "in the course's label order; probabilities in `predictions/predictions.csv`).", ""]
