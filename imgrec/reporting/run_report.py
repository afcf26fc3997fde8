"""One run's report: ``report.md`` and, under ``report/``, the PNG figures and CSV tables behind it.

Everything is computed from the saved val/test outputs (``predictions.npz``, an
:class:`~imgrec.training.evaluate.Evaluation`), so a report can be rebuilt from a run folder alone; images
for the galleries are optional.
"""

from __future__ import annotations

import html
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from imgrec.data.record import Dataset
from imgrec.data.split import Split
from imgrec.data.stats import cooccurrence
from imgrec.evaluation.scores import binarize, per_class, summary
from imgrec.reporting import plots
from imgrec.reporting.dashboard.thumbnails import REVIEW, save_thumbnails
from imgrec.reporting.error_analysis import caption, mislabels, worst_images, wrong_label_distribution
from imgrec.reporting.label_issues import candidate_missing_labels
from imgrec.training.evaluate import Evaluation
from imgrec.utils.io import write_text

log = logging.getLogger(__name__)

REPORT_DIR = "report"
# Section heading that sweep reports copy from their best run.
ERROR_ANALYSIS = "## Error analysis"


@dataclass
class RunReport:
    path: Path
    tables: dict[str, pd.DataFrame] = field(default_factory=dict)
    figures: dict[str, Path] = field(default_factory=dict)

    def figure(self, name: str, fig: Any) -> str:
        """Save ``fig`` under ``report/`` and return its markdown link."""
        self.figures[name] = plots.save(fig, self.path.parent / REPORT_DIR / f"{name}.png")
        return f"![{name}]({REPORT_DIR}/{name}.png)"

    def table(self, name: str, df: pd.DataFrame, index: bool = False) -> None:
        """Keep ``df`` and write it as ``report/<name>.csv``."""
        self.tables[name] = df.reset_index() if index else df
        write_text(self.path.parent / REPORT_DIR / f"{name}.csv", df.to_csv(index=index))


def as_text(value: Any) -> Any:
    """A table cell as markdown that shows a name (label, file) as written: markdown viewers pass HTML
    through, so ``<``, ``>`` and ``&`` become entities; ``|`` would end the cell."""
    return html.escape(value, quote=False).replace("|", "\\|") if isinstance(value, str) else value


def markdown(table: pd.DataFrame, floatfmt: str = ".3f", index: bool = False) -> str:
    return table.map(as_text).rename(index=as_text, columns=as_text).to_markdown(index=index, floatfmt=floatfmt)


def summary_table(ev: Evaluation) -> pd.DataFrame:
    """Val at 0.5, and test at 0.5, at the global and at the per-label thresholds, side by side."""
    t = ev.thresholds
    columns = {
        "val @ 0.5": summary(ev.val.probs, ev.val.targets),
        "test @ 0.5": summary(ev.test.probs, ev.test.targets),
        f"test @ global {t.global_threshold:.2f}": summary(ev.test.probs, ev.test.targets, t.global_threshold),
        "test @ per-label": summary(ev.test.probs, ev.test.targets, t.per_class),
    }
    return pd.DataFrame(columns).rename_axis("metric")


def rule_scores(ev: Evaluation) -> str:
    return ", ".join(f"{rule} {score:.4f}" for rule, score in ev.thresholds.scores.items()) or "not stored"


def per_class_table(ev: Evaluation, split: str) -> pd.DataFrame:
    outputs = getattr(ev, split)
    table = per_class(outputs.probs, outputs.targets, ev.thresholds.applied(), ev.label_names)
    table.insert(3, "own_threshold", ev.thresholds.fitted)
    return table


def write_run_report(out_dir: str | Path, ev: Evaluation, images: np.ndarray | None, context: dict[str, Any],
                     min_support: int, gallery_size: int = 12) -> RunReport:
    """``images`` are the dataset's images (indexed like ``ev.names``), or None for no galleries.
    ``context`` rows (run, data, checkpoint...) head the report."""
    rep = RunReport(Path(out_dir) / "report.md")
    preds = binarize(ev.test.probs, ev.thresholds.applied())
    md = ["# Run report", "", markdown(pd.DataFrame(list(context.items()), columns=["", ""])), "",
          *metrics_section(rep, ev, min_support), *per_label_section(rep, ev),
          *errors_section(rep, ev, preds, images, gallery_size)]
    write_text(rep.path, "\n".join(md))
    log.info("report: %s", rep.path)
    return rep


def metrics_section(rep: RunReport, ev: Evaluation, min_support: int) -> list[str]:
    rep.table("summary", summary_table(ev), index=True)
    no_label_accuracy = 1 - float(ev.test.targets.mean())
    return ["## Metrics", "",
            "Selection metric and thresholds use the val split only; test is measured once, at 0.5 and at the "
            "thresholds fitted on val.", "",
            markdown(rep.tables["summary"].set_index("metric"), floatfmt=".4f", index=True), "",
            f"Accuracy is shown for completeness only: predicting no label at all scores {no_label_accuracy:.4f} "
            "on test. Samples-averaged scores count an image with no true and no predicted label as 1. "
            "mAP averages AP over the labels with at least one positive in the split.", "",
            "## Thresholds", "",
            f"Fitted on the val outputs of the best checkpoint and stored in it (`meta.thresholds`): global "
            f"{ev.thresholds.global_threshold:.3f} (maximises val micro F1); per label, the threshold maximising "
            f"that label's val F1 where val has at least {min_support} positives "
            f"({int(ev.thresholds.fitted.sum())} of {len(ev.label_names)} labels), else the global one. "
            f"Applied by default: **{ev.thresholds.rule}**, the rule with the best cross-fitted val micro F1 "
            f"({rule_scores(ev)}); `test_tuned` metrics and `imgrec predict` use it.", ""]


def per_label_section(rep: RunReport, ev: Evaluation) -> list[str]:
    rep.table("per_label_test", per_class_table(ev, "test"))
    rep.table("per_label_val", per_class_table(ev, "val"))
    test = ev.test
    return ["## Per label (test)", "",
            "Precision, recall and F1 at the chosen rule's threshold; `f1_at_0.5` at 0.5.", "",
            markdown(rep.tables["per_label_test"]), "",
            rep.figure("f1_per_label", plots.per_class_f1_bars(rep.tables["per_label_test"])), "",
            rep.figure("pr_curves", plots.pr_curves(test.probs, test.targets, ev.label_names, ev.thresholds.applied(),
                                                    rep.tables["per_label_test"]["ap"].tolist())), "",
            "## Per label (val)", "", markdown(rep.tables["per_label_val"]), ""]


def errors_section(rep: RunReport, ev: Evaluation, preds: np.ndarray, images: np.ndarray | None,
                   gallery_size: int) -> list[str]:
    """The study's error analysis on test: mislabels, wrong labels per image, the worst images,
    candidate missing labels and label co-occurrence."""
    test = ev.test
    rep.table("mislabels", mislabels(preds, test.targets, ev.label_names))
    wrong = wrong_label_distribution(preds, test.targets)
    rep.table("wrong_labels_per_image", wrong.to_frame(), index=True)
    md = [f"{ERROR_ANALYSIS} (test, tuned thresholds)", "",
          "### Mislabels per label", "", "Mislabelled = false positives + false negatives; the 2x2 table of "
          "each label is TP, FP, FN, TN.", "", markdown(rep.tables["mislabels"]), "",
          "### Wrong labels per image", "", markdown(wrong.to_frame().T, index=True), "",
          rep.figure("wrong_labels_per_image", plots.counts_bars(wrong, "wrong labels per image")), ""]
    worst = worst_images(test.probs, preds, test.targets, gallery_size)
    if images is not None:
        md += ["### Images with the most wrong labels", "", "Captions: true labels : predicted labels.", "",
               rep.figure("worst_images", plots.gallery([images[test.indices[r]] for r in worst],
                                                        [caption(test.targets[r], preds[r], ev.label_names)
                                                         for r in worst])), ""]
    md += candidates_section(rep, ev, images, worst, gallery_size)
    cooc_targets, cooc_preds = cooccurrence(test.targets, ev.label_names), cooccurrence(preds, ev.label_names)
    rep.table("cooccurrence_targets", cooc_targets, index=True)
    rep.table("cooccurrence_predictions", cooc_preds, index=True)
    return md + ["### Label co-occurrence", "",
                 "Images carrying both labels, in the targets and in the predictions (diagonal: the label's count).",
                 "", rep.figure("cooccurrence", plots.cooccurrence_pair(cooc_targets, cooc_preds)), ""]


def candidates_section(rep: RunReport, ev: Evaluation, images: np.ndarray | None, worst: np.ndarray,
                       gallery_size: int) -> list[str]:
    test = ev.test
    names = [ev.names[i] for i in test.indices]
    candidates = candidate_missing_labels(test.probs, test.targets, ev.thresholds.applied(), ev.label_names, names)
    rep.table("missing_label_candidates", candidates.drop(columns="row"))
    md = ["### Candidate missing labels", "",
          f"{len(candidates)} negatives (annotated without the label) that the model predicts above the label's "
          f"threshold or that cleanlab's confident learning flags ({int(candidates['cleanlab'].sum())}), most "
          f"confident first. Review them in `{REPORT_DIR}/missing_label_candidates.csv` (fill in `verdict`).", "",
          markdown(candidates.drop(columns=["row", "verdict"]).head(15), floatfmt=".3f"), ""]
    if images is None:
        return md
    # the dashboard's galleries and label review inline these
    save_thumbnails(rep.path.parent / REPORT_DIR, images, ev.names,
                    [*test.indices[worst], *test.indices[candidates["row"].head(REVIEW)]])
    if len(candidates):
        top = candidates.head(gallery_size)
        md += [rep.figure("missing_label_candidates", plots.gallery(
            [images[test.indices[r]] for r in top["row"]],
            [f"{lab}? p={p:.2f} | given: {given}" for lab, p, given in
             zip(top["label"], top["probability"], top["given_labels"])])), ""]
    return md


def log_to_wandb(rep: RunReport, loggers: list[Any]) -> None:
    """The report's tables as ``wandb.Table`` and its figures as ``wandb.Image``, through every
    Lightning WandbLogger among ``loggers`` (nothing when W&B is off)."""
    from pytorch_lightning.loggers import WandbLogger

    for logger in loggers:
        if not isinstance(logger, WandbLogger):
            continue
        for name, df in rep.tables.items():
            logger.log_table(key=f"report/{name}", dataframe=df)
        for name, path in rep.figures.items():
            logger.log_image(key=f"report/{name}", images=[str(path)])


def run_context(out_dir: Path, data: Dataset, split: Split, train_size: int, selection: str,
                checkpoint: str) -> dict[str, str]:
    """The rows that head a run's report."""
    return {
        "run": str(out_dir),
        "data": f"{len(data)} images, {data.num_classes} labels; train {len(split.train)} "
                f"({train_size} after balancing), val {len(split.val)}, test {len(split.test)}",
        "data fingerprint": data.fingerprint,
        "selection": selection,
        "checkpoint": f"`{Path(checkpoint).name}` (thresholds stored in it)" if checkpoint else "none (last weights)",
    }
