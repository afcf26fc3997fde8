"""Regenerate committed reference runs: ``python experiments/reference.py NAME`` (``make experiment NAME=...``).

Each run goes through ``python -m imgrec.run`` into ``logs/NAME/`` (checkpoints stay there, out of git,
and the feature cache in ``logs/cache`` is shared with other runs); then ``experiments/NAME/`` gets its
command, config, metrics and report: tables, plots and, for the synthetic data only, the image
galleries (course images stay out of the repository).
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from imgrec.training.run_summary import RunSummary, finished_runs

ROOT = Path(__file__).resolve().parents[1]
HERE = ROOT / "experiments"
LOGS = ROOT / "logs"
GALLERIES = ("worst_images.png", "missing_label_candidates.png")
MAX_PNG_BYTES = 200_000


@dataclass(frozen=True)
class Experiment:
    description: str
    overrides: tuple[str, ...]
    galleries: bool  # commit the image galleries (synthetic data only)
    synthetic_drop_rate: float | None = None  # check the missing-label candidates against the known truth
    sweep: bool = False  # a multirun: commit the sweep's report and its best run's


EXPERIMENTS = {
    "synthetic_lite0": Experiment(
        "The embedded synthetic data (1200 images) with the defaults: frozen EfficientNet-Lite0 at 224 px, "
        "linear head, BCE, early stopping on val micro F1.",
        ("logger=csv",), galleries=True),
    "synthetic_missing_labels": Experiment(
        "The synthetic data (3000 images, so that the test split holds a few dozen missing labels) with 10% of "
        "the labels removed from the annotations while the motif stays in the picture (`data.drop_rate=0.1`), "
        "the situation of the study's §6.1: does the candidate list find them? Otherwise the defaults.",
        ("logger=csv", "data.n_images=3000", "data.drop_rate=0.1"), galleries=True, synthetic_drop_rate=0.1),
    "idl2020_dev_lite0": Experiment(
        "The 6000 labelled course images of `../shared/data/idl2020-dev` (every image there has at least one "
        "label), frozen EfficientNet-Lite0 at 224 px, linear head. Galleries are left out (course images).",
        ("data=idl", "data.root=../shared/data/idl2020-dev", "logger=csv"), galleries=False),
    "synthetic_preproc_sweep": Experiment(
        "The study's preprocessing sweep (`make run`) on the embedded synthetic data: split only; + augmentation "
        "(4 cached augmented views per image); + augmentation + 4x oversampling. Frozen Lite0 at 224 px.",
        ("+experiment=preproc_sweep", "logger=csv"), galleries=True, sweep=True),
}


def command(name: str, exp: Experiment) -> list[str]:
    return ["python", "-m", "imgrec.run", *exp.overrides, f"task_name={name}"]


def known_missing_section(run: Path, drop_rate: float) -> list[str]:
    """How many of the labels dropped from the test annotations the candidate list recovers."""
    from imgrec.data.synthetic import make_synthetic
    from imgrec.reporting.run_folder import load_run

    ev = load_run(run)
    n = len(ev.names)
    truth = make_synthetic(n, 0, 0.0).targets[ev.test.indices].astype(bool)
    given = ev.test.targets.astype(bool)
    dropped = truth & ~given
    candidates = pd.read_csv(run / "report" / "missing_label_candidates.csv")
    col = {name: j for j, name in enumerate(ev.label_names)}
    row = {name: k for k, name in enumerate(ev.names[i] for i in ev.test.indices)}
    hit = np.array([dropped[row[img], col[lab]] for img, lab in zip(candidates["image"], candidates["label"])])
    flagged = candidates["cleanlab"].to_numpy(bool)
    k = min(int(dropped.sum()), len(candidates))
    return ["## Known missing labels", "",
            f"The synthetic data knows its truth: {int(dropped.sum())} labels were dropped from the "
            f"{len(given)} test images' annotations (`drop_rate={drop_rate}`).", "",
            "| candidates | listed | truly dropped | precision |", "| --- | ---: | ---: | ---: |",
            f"| all | {len(candidates)} | {int(hit.sum())} | {hit.mean() if len(hit) else 0:.2f} |",
            f"| top {k} (as many as were dropped) | {k} | {int(hit[:k].sum())} | {hit[:k].mean() if k else 0:.2f} |",
            f"| flagged by cleanlab | {int(flagged.sum())} | {int(hit[flagged].sum())} | "
            f"{hit[flagged].mean() if flagged.any() else 0:.2f} |", "",
            f"Recall of the whole list: {hit.sum() / max(dropped.sum(), 1):.2f} of the dropped labels.", ""]


def demote(markdown: str) -> str:
    """Every heading one level down, below the experiment's own title."""
    return re.sub(r"^(#+) ", r"#\1 ", markdown, flags=re.M)


def copy_report(run: Path, out: Path, galleries: bool) -> str:
    """Copy a run's ``report/`` into ``out/report`` and return its report.md, links kept relative."""
    (out / "report").mkdir(parents=True)
    for f in sorted((run / "report").iterdir()):
        if galleries or f.name not in GALLERIES:
            shutil.copy2(f, out / "report" / f.name)
    report = (run / "report.md").read_text().replace(f"{ROOT}/", "")
    if not galleries:
        report = "\n".join(line for line in report.splitlines() if not any(f"(report/{g})" in line for g in GALLERIES))
    return report


def copy_run(exp: Experiment, run: Path, out: Path) -> str:
    """The run's report, config and metrics; returns the report, one heading level down."""
    report = copy_report(run, out, exp.galleries)
    shutil.copy2(run / ".hydra" / "config.yaml", out / "config.yaml")
    summary = RunSummary.read(run)
    summary.checkpoint = Path(summary.checkpoint).name
    summary.write(out)
    return demote(report)


def copy_sweep(sweep: Path, out: Path) -> str:
    """The sweep's report, table and heatmap, and the best run's report (which the sweep's links into)."""
    out.mkdir(parents=True)
    for name in ("results.csv", "f1_per_label.png"):
        shutil.copy2(sweep / name, out / name)
    shutil.copy2(sweep / "multirun.yaml", out / "config.yaml")
    report = (sweep / "report.md").read_text().replace(f"{ROOT}/", "")
    best = re.search(r"^## Best run: (\S+)", report, flags=re.M)
    if best:
        run_report = copy_report(sweep / best.group(1), out / best.group(1), galleries=True)
        (out / best.group(1) / "report.md").write_text(run_report)
    return demote(report)


def regenerate(name: str) -> Path:
    exp = EXPERIMENTS[name]
    cmd = command(name, exp)
    start = time.time()
    subprocess.run([sys.executable, *cmd[1:]], cwd=ROOT, check=True)
    minutes = (time.time() - start) / 60
    out = HERE / name
    shutil.rmtree(out, ignore_errors=True)
    if exp.sweep:
        sweep = max((LOGS / name).rglob("multiruns/*/report.md"), key=lambda p: p.stat().st_mtime).parent
        report = copy_sweep(sweep, out)
        files = ("`config.yaml` (the sweep's config), `results.csv`, `f1_per_label.png`, and the best run's "
                 "folder (`report.md`, `report/`)")
    else:
        run = finished_runs(LOGS / name)[-1]
        report = copy_run(exp, run, out)
        files = ("`config.yaml` (composed config), `metrics.json`, `report/` (figures and CSV tables, including "
                 "the missing-label candidates to review)")
    md = [f"# {name}", "", exp.description, "", "```bash", " ".join(cmd), "```", "",
          f"Regenerate this folder: `make experiment NAME={name}` ({minutes:.0f} min on 2 CPU cores this time; "
          f"a first run also extracts the backbone features, then cached in `logs/cache`). Files: {files}.", ""]
    if exp.synthetic_drop_rate is not None:
        md += known_missing_section(run, exp.synthetic_drop_rate)
    (out / "README.md").write_text("\n".join(md) + "\n" + report)
    big = [str(p.relative_to(out)) for p in out.rglob("*.png") if p.stat().st_size > MAX_PNG_BYTES]
    if big:
        raise SystemExit(f"{out}: PNG over {MAX_PNG_BYTES} bytes: {', '.join(big)}")
    print(f"wrote {out}")
    return out


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("names", nargs="+", choices=sorted(EXPERIMENTS))
    for experiment in parser.parse_args().names:
        regenerate(experiment)
