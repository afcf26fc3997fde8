"""The runs of ``make reproduce`` (``logs/idl2020/<step>/<n>/``) as the report reads them: each run's
summary, model description, scores and cost, the seeded steps and the final model's choice."""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from omegaconf import OmegaConf
from sklearn.metrics import f1_score

from imgrec.evaluation.thresholds import DEFAULT_RULES, best_rule, cross_fitted_scores, random_groups
from imgrec.models.checkpoint import read_checkpoint
from imgrec.training.evaluate import Evaluation
from imgrec.training.run_summary import RunSummary, run_folders

PER_LABEL_MIN_SUPPORT = 10  # thresholds.min_support's default: labels with 10 val positives get their own
SINGLE_SEED_STEPS = ("preproc", "transfer", "balancing", "scratch", "finetune")


@dataclass(frozen=True)
class Run:
    step: str
    folder: Path
    summary: RunSummary

    @property
    def metrics(self) -> dict[str, float]:
        return self.summary.metrics

    def m(self, key: str) -> float:
        return float(self.metrics[key])

    @property
    def overrides(self) -> list[str]:
        return self.summary.overrides

    def override(self, key: str, default: str = "") -> str:
        return next((o.split("=", 1)[1] for o in self.overrides if o.split("=", 1)[0].lstrip("+") == key), default)

    def evaluation(self) -> Evaluation:
        return Evaluation.load(self.folder / "predictions.npz")


def load_runs(logs: Path, step: str) -> list[Run]:
    return [Run(step, folder, RunSummary.read(folder)) for folder in run_folders(logs / step, finished_only=True)]


def backbone_label(name: str) -> str:
    return name.replace("efficientnet_lite", "Lite")


def describe(run: Run) -> dict[str, str]:
    return _describe(run.folder, run.summary.checkpoint, run.override("arch"))


@functools.cache  # a finished run's files never change; the report names a run many times
def _describe(folder: Path, checkpoint: str, arch: str) -> dict[str, str]:
    """Model, input size and head of a run: from its composed config, and the input sizes the
    backbones really used from its checkpoint (``CheckpointMeta.input_sizes``)."""
    net = OmegaConf.load(folder / ".hydra" / "config.yaml").model.net
    meta, _ = read_checkpoint(checkpoint)
    head = "linear" if not net.head.hidden else f"{net.head.hidden} hidden"
    size = "/".join(str(s) for s in meta.input_sizes)
    if "backbones" not in net:  # a scratch CNN
        blocks = "+".join(sorted({s.block for s in net.stages}))
        return {"model": f"scratch {blocks} ({arch})", "input": size, "head": head}
    blocks = net.get("train_blocks", 0)  # runs from before partial fine-tuning have no such key
    state = " fine-tuned" if not net.freeze else f" last {blocks} stage(s) trained" if blocks else " frozen"
    tta = ", flip TTA" if net.get("tta", "none") == "flip" else ""
    model = " + ".join(backbone_label(b.name) for b in net.backbones) + state + tta
    return {"model": model, "input": size, "head": head}


def name(run: Run) -> str:
    d = describe(run)
    return f"{d['model']}, {d['input']} px, {d['head']}"


def scores(run: Run) -> dict[str, float]:
    return {"val F1": run.m("val/f1_micro"), "test F1": run.m("test/f1_micro"), "test P": run.m("test/precision"),
            "test R": run.m("test/recall"), "test macro F1": run.m("test/f1_macro"), "test mAP": run.m("test/map")}


def cost(run: Run) -> dict[str, object]:
    """Trainable parameters, epochs, seconds of fit + evaluation, and whether the run extracted its
    backbone features or found them cached by an earlier run (its log says which)."""
    size = run.summary.size
    log = (run.folder / "run.log").read_text() if (run.folder / "run.log").is_file() else ""
    net = OmegaConf.load(run.folder / ".hydra" / "config.yaml").model.net
    frozen = "backbones" in net and net.freeze
    features = "-" if not frozen else "cache hit" if "features: cache hit" in log else "extracted"
    return {"trainable": f"{size.get('trainable_params', 0) / 1e6:.2f} M", "epochs": run.summary.epochs,
            "s": round(run.summary.seconds), "features": features}


def command(logs: Path, *steps: str) -> list[str]:
    """The ``python -m imgrec.run -m ...`` line of each step, from its sweep's ``multirun.yaml``."""
    lines = []
    for step in steps:
        path = logs / step / "multirun.yaml"
        if path.is_file():
            task = OmegaConf.load(path).hydra.overrides.task
            shown = [f"data.root=.../{Path(o[10:]).name}" if o.startswith("data.root=") else o for o in task]
            lines.append(f"`python -m imgrec.run -m {' '.join(shown)}`")
    return ["Command" + ("s" if len(lines) > 1 else "") + ": " + "; ".join(lines), ""] if lines else []


def md(table: pd.DataFrame) -> str:
    return table.to_markdown(index=False, floatfmt=".4f")


def threshold_scores(run: Run) -> dict[str, float]:
    return _threshold_scores(run.folder)


@functools.cache  # used by the final model's choice, table 4 and the baseline comparison
def _threshold_scores(folder: Path) -> dict[str, float]:
    """Test micro F1 at 0.5, at one global threshold and at per-label thresholds (both fitted on val),
    with sklearn, and the cross-fitted val estimate of each rule."""
    ev = Evaluation.load(folder / "predictions.npz")
    t, halves = ev.thresholds, random_groups(len(ev.val.probs), 2)
    crossed = cross_fitted_scores(ev.val.probs, ev.val.targets, halves, PER_LABEL_MIN_SUPPORT)
    return {
        "test @0.5": f1_score(ev.test.targets, ev.test.probs > 0.5, average="micro"),
        "test @global": f1_score(ev.test.targets, ev.test.probs > t.global_threshold, average="micro"),
        "test @per-label": f1_score(ev.test.targets, ev.test.probs > t.per_class, average="micro"),
        "val cross-fit 0.5": crossed["0.5"],
        "val cross-fit global": crossed["global"],
        "val cross-fit per-label": crossed["per_label"],
    }


def seed_steps(logs: Path) -> dict[str, list[Run]]:
    seeded = {p.name: load_runs(logs, p.name) for p in sorted(logs.glob("seeds-*"))}
    return {step: rs for step, rs in seeded.items() if rs}


def config_overrides(run: Run, shared: list[str]) -> list[str]:
    """The overrides that make a seeded run's configuration: not the ones every run shares, its seed
    or its task name."""
    return [o for o in run.overrides if o not in shared and not o.startswith(("seed=", "task_name="))]


@dataclass(frozen=True)
class Final:
    """The final model: the configuration with the best mean val F1 over its seeds, the seed with the
    best val F1, and the threshold rule (of the default candidates, 0.5 and global) with the best mean
    cross-fitted val F1 over the seeds, which the final run then applies. Test is never looked at."""

    overrides: list[str]
    step: str  # the seeds-K step it was chosen from
    config: str
    seed: str
    rule: str


def config_label(run: Run, shared: list[str]) -> str:
    """The run's model in words, plus its other overrides (balance, loss...)."""
    named = ("+arch=", "model.net.input_size=")  # already in the name
    extra = [o for o in config_overrides(run, shared) if not o.startswith(named)]
    return name(run) + "".join(f", {o}" for o in extra)


def final_model(logs: Path, shared: list[str]) -> Final:
    seeded = seed_steps(logs)
    step = max(seeded, key=lambda s: np.mean([r.m("val/f1_micro") for r in seeded[s]]))
    best = max(seeded[step], key=lambda r: r.m("val/f1_micro"))
    ts = [threshold_scores(r) for r in seeded[step]]  # the rule by its mean over the seeds: less noisy than one
    rule = best_rule({r: float(np.mean([t[f"val cross-fit {r}"] for t in ts])) for r in DEFAULT_RULES},
                     DEFAULT_RULES)
    overrides = [*config_overrides(best, shared), f"seed={best.override('seed')}", f'thresholds.rules=["{rule}"]']
    return Final(overrides, step, config_label(best, shared), best.override("seed"), rule)


def unlabelled(data: Path) -> int:
    """Images of a course-format folder that no annotation file lists."""
    listed = set()
    for path in (data / "annotations").glob("*.txt"):
        listed.update(int(line) for line in path.read_text().split())
    return sum(1 for p in (data / "images").glob("im*.jpg") if int(p.stem[2:]) not in listed)


def mean_std(values: list[float]) -> str:
    return f"{np.mean(values):.4f} ± {np.std(values, ddof=1):.4f}" if len(values) > 1 else f"{values[0]:.4f}"
