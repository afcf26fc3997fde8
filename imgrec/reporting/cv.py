"""Cross-validation: when a multirun of folds (``+experiment=cv``) ends, aggregate each setting's folds.

A fold run's val split is its held-out fold, so the folds' val outputs are out-of-fold (OOF)
predictions for every train+val image. From them, per setting:

- ``cv.json`` / ``cv.md``: every metric as mean ± std over the folds, the per-label table with std,
  and the threshold rule chosen by cross-fitting on the OOF predictions (the folds are the groups);
- ``oof.npz``: OOF probabilities, targets, fold and image name of every train+val image;
- ``missing_label_candidates.csv``: cleanlab's label issues over all of train+val, from OOF probabilities;
- ``final.ckpt``: the fold models' weights averaged, carrying the OOF thresholds; ``imgrec predict``
  takes it like any checkpoint. Its test score is measured beside the folds' mean.

A multirun over settings × folds writes one ``cv_<k>/`` folder per setting and ``cv_results.md``,
which flags every difference from the best setting that is smaller than the folds' std.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from imgrec.evaluation.scores import per_class, summary
from imgrec.evaluation.thresholds import ThresholdPolicy, Thresholds
from imgrec.models.checkpoint import read_checkpoint, write_checkpoint
from imgrec.reporting.label_issues import candidate_missing_labels
from imgrec.reporting.run_report import markdown
from imgrec.training.evaluate import Evaluation
from imgrec.training.run_summary import RunSummary, run_folders
from imgrec.utils.io import write_json, write_text

log = logging.getLogger(__name__)

FOLD = "split.fold="
CV_JSON, OOF_NPZ, FINAL_CKPT = "cv.json", "oof.npz", "final.ckpt"  # a CV folder's (ensemble selection reads them)
KEY_METRICS = ("f1_micro", "precision", "recall", "f1_macro", "map")  # cv.md's table; cv.json has every metric


@dataclass
class Fold:
    folder: Path
    fold: int
    summary: RunSummary
    evaluation: Evaluation


def fold_groups(sweep_dir: Path) -> dict[str, list[Path]]:
    """Finished run folders of a sweep grouped by setting (their overrides but ``split.fold``)."""
    runs = {}
    for folder in run_folders(sweep_dir, finished_only=True):
        overrides = RunSummary.read(folder).overrides
        if any(o.startswith(FOLD) for o in overrides):
            runs[folder] = [o for o in overrides if not o.startswith(FOLD)]
    shared = set.intersection(*map(set, runs.values())) if runs else set()
    groups: dict[str, list[Path]] = {}
    for folder, overrides in runs.items():
        groups.setdefault(" ".join(o for o in overrides if o not in shared), []).append(folder)
    return groups


def load_folds(folders: list[Path]) -> list[Fold]:
    folds = []
    for folder in folders:
        summary_ = RunSummary.read(folder)
        fold = int(next(o for o in summary_.overrides if o.startswith(FOLD)).removeprefix(FOLD))
        folds.append(Fold(folder, fold, summary_, Evaluation.load(folder / "predictions.npz")))
    return sorted(folds, key=lambda f: f.fold)


@dataclass
class OutOfFold:
    probs: np.ndarray  # (N, C): row k is image indices[k]
    targets: np.ndarray
    folds: np.ndarray
    indices: np.ndarray

    def save(self, path: Path, names: list[str], label_names: list[str]) -> None:
        tmp = path.with_name(f".{path.stem}.tmp.npz")
        np.savez_compressed(tmp, probs=self.probs, targets=self.targets, folds=self.folds, indices=self.indices,
                            names=np.array([names[i] for i in self.indices]), label_names=np.array(label_names))
        tmp.replace(path)

    @classmethod
    def load(cls, path: Path) -> tuple[OutOfFold, list[str]]:
        """What :meth:`save` wrote, and the label names."""
        with np.load(path) as z:
            return cls(z["probs"], z["targets"], z["folds"], z["indices"]), z["label_names"].tolist()


def out_of_fold(folds: list[Fold]) -> OutOfFold:
    """Every fold's val outputs stacked; each train+val image must be held out exactly once."""
    indices = np.concatenate([f.evaluation.val.indices for f in folds])
    if len(np.unique(indices)) != len(indices):
        raise RuntimeError("an image is in the val split of two folds: not the folds of one cross-validation")
    order = np.argsort(indices, kind="stable")
    probs, targets = (np.concatenate([getattr(f.evaluation.val, field) for f in folds])[order]
                      for field in ("probs", "targets"))
    groups = np.concatenate([np.full(len(f.evaluation.val.indices), f.fold) for f in folds])[order]
    return OutOfFold(probs, targets, groups, indices[order])


def mean_std(frames: list[pd.Series]) -> pd.DataFrame:
    table = pd.concat(frames, axis=1)
    return pd.DataFrame({"mean": table.mean(axis=1), "std": table.std(axis=1, ddof=1)})


def average_checkpoints(folds: list[Fold], thresholds: Thresholds, path: Path) -> Path:
    """The fold models' weights averaged into fold 0's checkpoint, with the OOF thresholds in its meta.
    For frozen backbones (shared by every fold) and a linear head this is the mean of the folds' logits."""
    (meta, merged), *others = [read_checkpoint(f.summary.checkpoint) for f in folds]
    for key, value in merged["state_dict"].items():
        if torch.is_floating_point(value):
            merged["state_dict"][key] = torch.stack([value, *(c["state_dict"][key] for _, c in others)]).mean(0)
    for key in ("optimizer_states", "lr_schedulers", "callbacks", "loops"):
        merged.pop(key, None)  # a final model, not a run to resume
    return write_checkpoint(merged, meta.with_thresholds(thresholds), path)


def final_test_probs(path: Path, run_dir: Path, test_indices: np.ndarray) -> np.ndarray | None:
    """The test probabilities of the checkpoint at ``path`` (the averaged fold models, or a selected
    ensemble), on the data of the run in ``run_dir`` (its resolved config; its backbones on the engine
    its feature cache ran, ``cache.engine``); None without that config."""
    from hydra.utils import instantiate
    from omegaconf import OmegaConf

    from imgrec.inference.predictor import load_predictor

    config = run_dir / "config_resolved.yaml"
    if not config.is_file():
        return None
    cfg = OmegaConf.load(config)
    datamodule = instantiate(cfg.data)
    datamodule.setup("test")
    predictor = load_predictor(path, engine=OmegaConf.select(cfg, "cache.engine", default="eager"))
    return predictor.probabilities(np.asarray(datamodule.data.images[test_indices]))


def fold_metrics(folds: list[Fold]) -> pd.DataFrame:
    """Every logged metric as mean ± std over the folds (scalar metrics, not the per-label ones)."""
    series = [pd.Series({k: v for k, v in f.summary.metrics.items() if k.count("/") == 1}, name=f.fold)
              for f in folds]
    return mean_std(series).rename_axis("metric")


def per_label_table(folds: list[Fold], oof: OutOfFold, thresholds: Thresholds,
                    label_names: list[str]) -> pd.DataFrame:
    """Per label: OOF support and F1 at the chosen thresholds, and test F1 mean ± std over the folds."""
    oof_table = per_class(oof.probs, oof.targets, thresholds.applied(), label_names)
    table = oof_table[["label", "support", "threshold"]].assign(oof_f1=oof_table["f1"])
    test = mean_std([per_class(f.evaluation.test.probs, f.evaluation.test.targets, thresholds.applied(),
                               label_names).set_index("label")["f1"] for f in folds])
    table["test_f1_mean"], table["test_f1_std"] = test["mean"].to_numpy(), test["std"].to_numpy()
    return table


def aggregate(folds: list[Fold], out: Path, policy: ThresholdPolicy) -> dict:
    """Write the CV outputs of one setting's folds into ``out``; returns ``cv.json``'s content."""
    ev = folds[0].evaluation
    oof = out_of_fold(folds)
    oof.save(out / OOF_NPZ, ev.names, ev.label_names)
    thresholds = policy.choose(oof.probs, oof.targets, groups=oof.folds)
    metrics = fold_metrics(folds)
    test = ev.test  # the same held-out test split in every fold
    final = average_checkpoints(folds, thresholds, out / FINAL_CKPT)
    probs = final_test_probs(final, folds[0].folder, test.indices)
    final_scores = {} if probs is None else {
        "test/f1_micro": summary(probs, test.targets)["f1_micro"],
        "test_tuned/f1_micro": summary(probs, test.targets, thresholds.applied())["f1_micro"]}
    fold_mean = np.mean([f.evaluation.test.probs for f in folds], axis=0)  # the folds as an ensemble
    candidates = candidate_missing_labels(oof.probs, oof.targets, thresholds.applied(), ev.label_names,
                                          [ev.names[i] for i in oof.indices])
    write_text(out / "missing_label_candidates.csv", candidates.drop(columns="row").to_csv(index=False))
    result = {
        "folds": len(folds), "runs": [str(f.folder) for f in folds], "images": len(oof.indices),
        "metrics": {name: {"mean": float(r["mean"]), "std": float(r["std"])} for name, r in metrics.iterrows()},
        "oof": {rule: summary(oof.probs, oof.targets, thresholds.applied(rule))["f1_micro"]
                for rule in thresholds.scores},
        "thresholds": {**thresholds.as_dict(), "cross_fitted": thresholds.scores},
        "final": {"checkpoint": str(final), **final_scores,
                  "fold_ensemble_test/f1_micro": summary(fold_mean, test.targets, thresholds.applied())["f1_micro"]},
        "missing_label_candidates": len(candidates),
    }
    write_json(out / CV_JSON, result)
    write_text(out / "cv.md", cv_markdown(result, per_label_table(folds, oof, thresholds, ev.label_names)))
    return result


def pm(stat: dict) -> str:
    return f"{stat['mean']:.4f} ± {stat['std']:.4f}"


def cv_markdown(result: dict, per_label: pd.DataFrame) -> str:
    m, t = result["metrics"], result["thresholds"]
    rows = [(name, pm(stat)) for name, stat in m.items() if name.split("/")[1] in KEY_METRICS]
    final = result["final"]
    lines = [f"# Cross-validation ({result['folds']} folds, {result['images']} train+val images)", "",
             "Each fold's model chose its checkpoint on its own val fold; test is the same held-out split for all.",
             "", pd.DataFrame(rows, columns=["metric", "mean ± std over folds"]).to_markdown(index=False), "",
             "Every metric is in `cv.json`.", "",
             "## Thresholds (out-of-fold)", "",
             "Micro F1 of each rule on the out-of-fold predictions, fitted on the other folds (cross-fitted): "
             + ", ".join(f"{rule} {score:.4f}" for rule, score in t["cross_fitted"].items())
             + f". Chosen: **{t['threshold_rule']}** (global threshold {t['global_threshold']:.3f}).", "",
             "## Final model", "",
             f"`final.ckpt`: the {result['folds']} fold models' weights averaged, with the out-of-fold thresholds."]
    if "test/f1_micro" in final:
        lines += ["", f"Test micro F1 {final['test/f1_micro']:.4f} at 0.5, {final['test_tuned/f1_micro']:.4f} at "
                  f"the chosen rule; the folds' probabilities averaged score {final['fold_ensemble_test/f1_micro']:.4f}"
                  f" there; one fold model scores {pm(m['test_tuned/f1_micro'])}."]
    lines += ["", "## Per label", "", "`oof_f1`: out-of-fold F1 at the chosen thresholds; test F1 over the folds.",
              "", markdown(per_label), "",
              f"Missing-label candidates over all of train+val: `missing_label_candidates.csv` "
              f"({result['missing_label_candidates']} rows)."]
    return "\n".join(lines) + "\n"


def comparison(results: dict[str, dict], metric: str) -> pd.DataFrame:
    """One row per setting, mean ± std; ``within_std`` marks a difference from the best setting (by
    ``metric``) that is smaller than either one's std over folds: not a finding."""
    best = max(results, key=lambda s: results[s]["metrics"][metric]["mean"])
    rows = []
    for setting, r in results.items():
        m = r["metrics"]
        diff = m[metric]["mean"] - results[best]["metrics"][metric]["mean"]
        spread = max(m[metric]["std"], results[best]["metrics"][metric]["std"])
        rows.append({"setting": setting or "defaults", **{k: pm(m[k]) for k in (metric, "test/f1_micro",
                                                                              "test_tuned/f1_micro") if k in m},
                     f"Δ {metric}": "best" if setting == best else f"{diff:+.4f}",
                     "within_std": "" if setting == best else ("yes" if abs(diff) < spread else "no"),
                     "rule": r["thresholds"]["threshold_rule"]})
    return pd.DataFrame(rows)


def write_cv(sweep_dir: Path, metric: str, policy: ThresholdPolicy) -> dict[str, dict]:
    """Aggregate every setting of a sweep whose runs are folds; nothing when none are."""
    groups = fold_groups(sweep_dir)
    results = {}
    for k, (setting, folders) in enumerate(groups.items()):
        if len(folders) < 2:
            log.warning("cv: %s has %d finished fold(s); no aggregate", setting or "defaults", len(folders))
            continue
        out = sweep_dir if len(groups) == 1 else sweep_dir / f"cv_{k}"
        out.mkdir(exist_ok=True)
        results[setting] = result = aggregate(load_folds(folders), out, policy)
        log.info("cv %s: %s %s over %d folds; OOF thresholds %s; %s", setting or "defaults", metric,
                 pm(result["metrics"][metric]), result["folds"], result["thresholds"]["threshold_rule"], out / "cv.md")
    if len(results) > 1:
        table = comparison(results, metric)
        write_text(sweep_dir / "cv_results.md", table.to_markdown(index=False) + "\n")
        print(f"\nCross-validation ({sweep_dir}):\n{table.to_markdown(index=False)}\n", flush=True)
    return results
