"""``experiments/idl2020/REPORT.md`` from the runs of ``make reproduce`` (``logs/idl2020/<step>/<n>/``).

Every number in the report is read from a run's ``metrics.json`` or ``predictions.npz``; every verdict
on a finding of the study is computed from the rows of the table it cites (:mod:`findings`,
:mod:`cv_findings`, :mod:`best_model`). The runs and their descriptions come from :mod:`runs`.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from experiments.idl2020 import best_model, cv_findings, findings
from experiments.idl2020.runs import (
    SINGLE_SEED_STEPS,
    Run,
    command,
    config_label,
    cost,
    describe,
    final_model,
    load_runs,
    md,
    mean_std,
    scores,
    seed_steps,
    threshold_scores,
    unlabelled,
)
from imgrec.reporting import plots
from imgrec.reporting.dashboard.thumbnails import FILE as THUMBNAILS
from imgrec.reporting.run_report import ERROR_ANALYSIS, REPORT_DIR

# Course photos stay out of git: the galleries, and the dashboard's thumbnails (imgrec.reporting.dashboard.thumbnails).
COURSE_IMAGES = ("worst_images.png", "missing_label_candidates.png", THUMBNAILS)
PREPROC_NAMES = {"split": "split only", "augment": "+ augmentation",
                 "augment_oversample": "+ augmentation + oversampling"}
ARCH_COLUMNS = ["model", "input", "head", "val F1", "test F1", "test P", "test R", "test macro F1", "test mAP",
                "trainable", "epochs", "s", "features"]


@dataclass
class Tables:
    """The runs of every step and the report's tables built from them."""

    steps: dict[str, list[Run]]
    seeded: dict[str, list[Run]]
    final_runs: list[Run]
    preproc: dict[str, Run]
    pre: pd.DataFrame
    arch: pd.DataFrame
    transfer: dict[tuple[str, str, str], Run]
    bal: pd.DataFrame
    seeds: pd.DataFrame
    thresholds: pd.DataFrame
    thr_means: list[dict[str, float]]


def build_tables(logs: Path, shared: list[str]) -> Tables:
    steps = {s: load_runs(logs, s) for s in SINGLE_SEED_STEPS}
    seeded = seed_steps(logs)
    preproc = {r.override("preproc"): r for r in steps["preproc"]}
    pre = pd.DataFrame([{"setting": PREPROC_NAMES[k], **scores(r), **cost(r)} for k, r in preproc.items()])
    arch_runs = steps["transfer"] + steps["scratch"] + steps["finetune"]
    arch = pd.DataFrame([{**describe(r), **scores(r), **cost(r), "step": r.step} for r in arch_runs])
    transfer = {(d["model"], d["input"], d["head"]): r for r in steps["transfer"] if (d := describe(r))}
    bal = pd.DataFrame([{"balance": r.override("balance", "none"), "loss": r.override("loss", "bce"), **scores(r),
                         **cost(r)} for r in steps["balancing"]])
    seed_rows, thr_rows, thr_means = [], [], []
    for step, rs in seeded.items():
        label = config_label(rs[0], shared) + (" (baseline)" if step == "seeds-0" else "")
        val, test = [r.m("val/f1_micro") for r in rs], [r.m("test/f1_micro") for r in rs]
        seed_rows.append({"step": step, "configuration": label, "seeds": len(rs), "val mean": np.mean(val),
                          "val std": np.std(val, ddof=1), "test mean": np.mean(test), "test std": np.std(test, ddof=1),
                          "val F1": mean_std(val), "test F1": mean_std(test),
                          "test P": mean_std([r.m("test/precision") for r in rs]),
                          "test R": mean_std([r.m("test/recall") for r in rs])})
        ts = [threshold_scores(r) for r in rs]
        thr_rows.append({"configuration": label, **{k: mean_std([t[k] for t in ts]) for k in ts[0]}})
        thr_means.append({k: float(np.mean([t[k] for t in ts])) for k in ts[0]})
    return Tables(steps, seeded, load_runs(logs, "final"), preproc, pre, arch, transfer, bal, pd.DataFrame(seed_rows),
                  pd.DataFrame(thr_rows), thr_means)


def header(t: Tables, data: Path, timings: dict[str, float]) -> list[str]:
    ev = next(r for rs in t.steps.values() for r in rs).evaluation()
    n_val, n_test = len(ev.val.indices), len(ev.test.indices)
    n_train = len(ev.names) - n_val - n_test
    total = sum(timings.values())
    return [
        "# The study on idl2020-dev: reproduced", "",
        "Regenerate everything here with `make reproduce` (runs in `logs/idl2020/`, finished runs are skipped, so an "
        "interrupted reproduce continues). Its wall time on this machine (2 x86_64 CPU cores, no GPU), per step: "
        + ", ".join(f"{k} {v / 60:.1f} min" for k, v in timings.items()) + f"; **total {total / 60:.0f} min**. "
        "A frozen run whose features column says \"cache hit\" found its backbone features already extracted "
        "(by an earlier run of another step, or an earlier reproduce): that extraction is not in these times.", "",
        f"Data: `{data.name}`, {n_train + n_val + n_test} images, {unlabelled(data)} of them without any label, "
        f"{len(ev.label_names)} labels, split {n_train}/{n_val}/{n_test} (train/val/test, seed 42, the study's "
        "85/7.5/7.5 %). The study had 20,000 images, 9,824 of them without any label, and a 17,000/1,500/1,500 "
        f"split; here val and test hold {n_val} and {n_test} images (so one test image is worth about "
        f"{1 / max(n_test, 1):.3f} F1 and rare labels have a handful of test positives), and the absolute numbers "
        "are **not** comparable with the study's.", "",
        "Every model is selected (checkpoint, early stopping) on val micro F1; test is scored once at the end. "
        "F1 is micro-averaged over labels at threshold 0.5 unless a column says otherwise; P and R are micro "
        "precision and recall; macro F1 averages the 14 labels' F1; mAP is the mean average precision. "
        "Backbones are the offline ImageNet EfficientNet-Lite0/1/2 (the study's ResNeXt/DenseNet need a download; "
        "see the README). Frozen backbones train their head on cached features.", "",
    ]


def study_findings(t: Tables) -> list[str]:
    seed_std = float(t.seeds["test std"].max()) if not t.seeds.empty else float("nan")
    found = [*findings.preprocessing(t.preproc, t.bal, seed_std), *findings.hidden_layer(t.transfer),
             *findings.scratch_gap(t.steps["scratch"], t.transfer), *findings.ensemble(t.transfer, seed_std)]
    return ["## The study's findings, checked", "", *found, "", *findings.beyond_the_study(t.bal, t.thr_means)]


def final_section(t: Tables, logs: Path, shared: list[str]) -> list[str]:
    """The study's final configuration against the baseline, at 0.5 and at its thresholds, each margin
    against the spread."""
    if not (t.final_runs and len(t.seeds)):
        return []
    fr, choice, seeds = t.final_runs[0], final_model(logs, shared), t.seeds
    base = seeds.iloc[0]
    final_row = seeds[seeds["step"] == choice.step].iloc[0]
    margin = final_row["test mean"] - base["test mean"]
    spread = max(final_row["test std"], base["test std"])
    rule = f"test @{choice.rule}"
    tuned = {k: [threshold_scores(r)[rule] for r in t.seeded[k]] for k in (choice.step, "seeds-0")}
    tuned_margin = np.mean(tuned[choice.step]) - np.mean(tuned["seeds-0"])
    tuned_spread = max(np.std(v, ddof=1) for v in tuned.values())
    return [
        "## The study's final configuration", "",
        f"Chosen on validation only: **{choice.config}** (`{' '.join(choice.overrides[:-2])}`), the configuration "
        f"with the best mean val F1 over three seeds (table 5); seed {choice.seed}, the best of its three on val; "
        f"threshold rule **{choice.rule}**, of the default candidates (0.5, one global threshold) the one with "
        "the better mean val F1 over its seeds when fitted on one half of val and scored on the other (table 4).", "",
        f"Its test micro F1 is **{fr.m('test/f1_micro'):.4f}** at 0.5 and **{fr.m('test_tuned/f1_micro'):.4f}** at "
        f"its rule {choice.rule} (precision {fr.m('test_tuned/precision'):.4f}, recall "
        f"{fr.m('test_tuned/recall'):.4f}, mAP {fr.m('test/map'):.4f}).", "",
        "Against the study's approach with the offline backbone (frozen Lite0, linear head, at its own 224 px): "
        f"mean test F1 over three seeds at 0.5 {final_row['test mean']:.4f} against {base['test mean']:.4f}, "
        f"a margin of {margin:+.4f}, {'more' if margin > spread else 'not more'} than the seed-to-seed spread "
        f"(std up to {spread:.4f}; table 5); at rule {choice.rule} fitted on val "
        f"{np.mean(tuned[choice.step]):.4f} against {np.mean(tuned['seeds-0']):.4f}, a margin of "
        f"{tuned_margin:+.4f}, {'more' if tuned_margin > tuned_spread else 'not more'} than the spread "
        f"(std up to {tuned_spread:.4f}; table 4).", "",
    ]


def single_run_tables(t: Tables, logs: Path, figures: Path) -> list[str]:
    """Tables 1 to 3: preprocessing, architectures (with its figure) and balancing."""
    baseline_run = t.transfer.get(("Lite0 frozen", "224", "linear"))
    if baseline_run is not None:
        plots.save(bar_figure(t.arch, baseline_run.m("test/f1_micro")), figures / "architectures.png")
    return ["## 1. Preprocessing (the study's §4.1)", "",
            "Frozen Lite0 at the images' own 128 px, linear head. Augmentation: the study's pipeline (one "
            "normal-magnitude affine transform, flip, Gaussian noise), 4 cached augmented views per train "
            "image. Oversampling: the study's, 4x the train split, always adding an image of the currently rarest "
            "label.", "",
            md(t.pre), "", *command(logs, "preproc"),
            "## 2. Architectures (§4.2–4.4)", "",
            "Frozen transfer with each backbone at 128 px (the images' size) and upsampled to the backbone's own "
            "size, with and without the 256-unit hidden layer; the Lite0 + Lite2 ensemble (features "
            "concatenated); two CNNs from scratch (residual blocks; Inception blocks with shortcuts), with an "
            "epoch cap for the CPU; Lite0 fine-tuned end to end at 128 px (1 epoch frozen, then the backbone "
            "at 0.1x the head's learning rate). Seconds include feature extraction "
            "for the first run of each backbone and input size (later runs reuse the cache).", "",
            md(t.arch[ARCH_COLUMNS]), "", *command(logs, "transfer", "scratch", "finetune"),
            "![test F1 per architecture](figures/architectures.png)", "",
            "## 3. Balancing: copies, sampler weights or the loss", "",
            "On the baseline (frozen Lite0, 224 px, linear, no augmentation). `oversample`: the study's copies; "
            "`sampler`: every epoch draws the train images with replacement, weighted by their rarest label's "
            "repeat factor (LVIS repeat-factor sampling); `pos_weight`: BCE with positives weighted by "
            "negatives/positives per label; `asl`: the asymmetric loss (timm).", "",
            md(t.bal), "", *command(logs, "balancing")]


def seeded_tables(t: Tables, logs: Path, figures: Path) -> list[str]:
    """Tables 4 and 5: thresholds and the three seeds of the top configurations."""
    if not len(t.seeds):
        return []
    plots.save(seeds_figure(t.seeds), figures / "seeds.png")
    fine_minutes = sum(r.summary.seconds for r in t.steps["scratch"] + t.steps["finetune"]) / 60
    return ["## 4. Per-class thresholds", "",
            "Test micro F1 at 0.5, at one threshold fitted on val, and at one threshold per label fitted on val "
            "(labels with under 10 val positives keep the global one); the last three columns score each rule "
            "on half of val after fitting it on the other half (val only: how the final model picks its "
            "rule). Mean ± std over the three seeds of table 5.", "",
            md(t.thresholds), "",
            "## 5. Three seeds of the top configurations", "",
            f"The baseline and the {len(t.seeds) - 1} frozen configurations with the best val F1 in tables 2 "
            "and 3, trained with seeds 1, 2, 3 (head initialisation and batch order; the split stays fixed). "
            "Fine-tuned and scratch models were not seeded, to keep `make reproduce` near an hour on 2 CPU "
            f"cores (they took {fine_minutes:.0f} min of the single-seed runs in table 2).", "",
            md(t.seeds[["configuration", "seeds", "val F1", "test F1", "test P", "test R"]]), "",
            *command(logs, *t.seeded), "![seeds](figures/seeds.png)", ""]


def write_report(logs: Path, out: Path, data: Path, predict: Path, shared: list[str],
                 timings: dict[str, float]) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    figures = out / "figures"
    figures.mkdir(exist_ok=True)
    t = build_tables(logs, shared)
    lines = [*header(t, data, timings), *study_findings(t), *final_section(t, logs, shared),
             *best_model.section(logs, predict, timings.get(best_model.STEP)),
             *single_run_tables(t, logs, figures), *seeded_tables(t, logs, figures), *cv_findings.section(logs)]
    if t.final_runs:
        lines += error_analysis(t.final_runs[0], out)
    (out / "REPORT.md").write_text("\n".join(lines) + "\n")
    every = [r for rs in [*t.steps.values(), *t.seeded.values(), t.final_runs] for r in rs]
    results = pd.DataFrame([{"step": r.step, "run": r.folder.name, "overrides": " ".join(r.overrides), **r.metrics,
                             "epochs": r.summary.epochs, "seconds": r.summary.seconds} for r in every])
    results.to_csv(out / "runs.csv", index=False, float_format="%.6f")
    print(f"wrote {out / 'REPORT.md'}")
    return out / "REPORT.md"


def bar_figure(table: pd.DataFrame, baseline: float) -> Figure:
    """Test micro F1 of every architecture, the baseline as a line."""
    fig = Figure(figsize=(8, 0.32 * len(table) + 1.2))
    ax = fig.subplots()
    labels = [f"{m}, {i} px, {h}" for m, i, h in zip(table["model"], table["input"], table["head"])]
    ax.barh(labels[::-1], table["test F1"][::-1], color="tab:blue")
    ax.axvline(baseline, color="tab:red", linestyle="--",
               label=f"baseline (frozen Lite0, linear, 224 px): {baseline:.3f}")
    ax.set_xlim(max(0.0, table["test F1"].min() - 0.1), min(1.0, table["test F1"].max() + 0.05))
    ax.set_xlabel("test micro F1 (threshold 0.5)")
    ax.tick_params(axis="y", labelsize=8)
    ax.legend(fontsize=8, loc="lower right")
    return fig


def seeds_figure(table: pd.DataFrame) -> Figure:
    fig = Figure(figsize=(7, 0.45 * len(table) + 1.2))
    ax = fig.subplots()
    y = np.arange(len(table))[::-1]
    ax.errorbar(table["test mean"], y, xerr=table["test std"], fmt="o", capsize=4, label="test")
    ax.errorbar(table["val mean"], y + 0.15, xerr=table["val std"], fmt="s", capsize=4, label="val")
    ax.set_yticks(y, table["configuration"], fontsize=8)
    ax.set_xlabel("micro F1, mean ± std over 3 seeds")
    ax.legend(fontsize=8)
    return fig


def error_analysis(run: Run, out: Path) -> list[str]:
    """The final run's error analysis (its report's section), its figures and tables copied into
    ``final/``; the galleries show course photos and stay out of the repository."""
    dest = out / "final"
    shutil.rmtree(dest, ignore_errors=True)
    (dest / REPORT_DIR).mkdir(parents=True)
    for f in sorted((run.folder / REPORT_DIR).iterdir()):
        if f.name not in COURSE_IMAGES:
            shutil.copy2(f, dest / REPORT_DIR / f.name)
    text = (run.folder / "report.md").read_text()
    start = text.find(ERROR_ANALYSIS)
    section = text[start:] if start >= 0 else ""
    where = "/".join(run.folder.parts[-3:])
    kept = f"_(a gallery of course photos: in `{where}/report/` under the logs, not in the repository)_"
    section = "\n".join(kept if any(g in line for g in COURSE_IMAGES) else line for line in section.splitlines())
    section = section.replace(f"]({REPORT_DIR}/", f"](final/{REPORT_DIR}/").replace(f"`{REPORT_DIR}/",
                                                                                   f"`final/{REPORT_DIR}/")
    summary = pd.read_csv(dest / REPORT_DIR / "per_label_test.csv")
    return ["## 6. The study's final configuration: per label and error analysis", "",
            "Test F1 per label (at its thresholds):", "", md(summary), "",
            "![F1 per label](final/report/f1_per_label.png)", "",
            section.replace(ERROR_ANALYSIS, "### " + ERROR_ANALYSIS.lstrip("# "), 1), ""]
