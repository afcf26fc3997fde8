"""Ensemble selection over finished runs: ``imgrec select <folders...>`` and :func:`select_ensemble`.

From the candidates' held-out predictions (:mod:`imgrec.reporting.candidates`: CV out-of-fold, or one
val split) greedy forward selection with replacement (:mod:`imgrec.evaluation.selection`) picks members
and weights; the threshold rule is chosen on the selected ensemble's held-out probabilities with the
runs' own policy (cross-fitted, the folds as groups), as a CV does. The result is one checkpoint of a
:class:`~imgrec.models.probability_average.ProbabilityAverageNet` that predict and export take like any
other, and beside it ``selection.json`` / ``selection.md``: members, counts and weights, the held-out
score of every candidate and of the ensemble (mean ± std over folds for a CV), the rule, and the
ensemble's test score, measured after the choice and never used for it.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from imgrec.evaluation.micro import micro_scores
from imgrec.evaluation.scores import summary
from imgrec.evaluation.selection import HeldOut, greedy_selection, heldout_f1, weighted_mean
from imgrec.evaluation.thresholds import ThresholdPolicy
from imgrec.models.checkpoint import read_checkpoint, write_checkpoint
from imgrec.models.probability_average import average_checkpoint
from imgrec.reporting.candidates import Candidate, load_candidates, settings
from imgrec.reporting.cv import final_test_probs
from imgrec.utils.io import write_json, write_text

log = logging.getLogger(__name__)

CHECKPOINT, RECORD, MARKDOWN = "selected.ckpt", "selection.json", "selection.md"
FOLDER = "selection"  # the default output folder, in the first candidate folder


def select_ensemble(folders: Sequence[str | Path], out: str | Path | None = None, rounds: int = 20, init: int = 1,
                    policy: ThresholdPolicy | None = None) -> dict:
    """Select an ensemble from the candidates under ``folders`` (CV folders, finished runs, or sweeps of
    either) and write its checkpoint and record into ``out`` (default: ``<first folder>/selection``).
    ``policy``: the threshold rules (default: the candidates' runs' ``thresholds`` block). Returns the
    record (``selection.json``); ``record["ensemble"]["checkpoint"]`` is the model."""
    candidates = load_candidates(list(folders))
    first = candidates[0]
    policy = policy or first.policy()
    targets, groups = first.heldout.targets, first.groups
    library = [c.heldout.probs for c in candidates]
    log.info("ensemble selection over %d %s candidate(s), %d held-out images", len(candidates), first.kind,
             len(targets))
    selection = greedy_selection(library, lambda p: heldout_f1(p, targets, groups, policy).f1_micro, rounds, init)
    chosen = np.flatnonzero(selection.counts)
    probs = weighted_mean(library, selection.weights)
    thresholds = policy.choose(probs, targets, groups)
    out = Path(out) if out is not None else Path(folders[0]) / FOLDER
    meta, ckpt = average_checkpoint([read_checkpoint(candidates[i].checkpoint) for i in chosen],
                                    selection.weights[chosen])
    path = write_checkpoint(ckpt, meta.with_thresholds(thresholds), out / CHECKPOINT)
    test_probs = final_test_probs(path, first.run, first.test.indices)
    test = None if test_probs is None else {
        "f1_micro": summary(test_probs, first.test.targets)["f1_micro"],
        "f1_micro_at_rule": summary(test_probs, first.test.targets, thresholds.applied())["f1_micro"]}
    singles = [heldout_f1(p, targets, groups, policy) for p in library]
    ensemble = heldout_f1(probs, targets, groups, policy)
    record = {
        "heldout": "out-of-fold" if first.folds is not None else "val", "images": len(targets),
        "folds": None if first.folds is None else len(np.unique(first.folds)), "rounds": rounds, "init": init,
        "candidates": [{"folder": str(c.folder), "setting": setting, "checkpoint": str(c.checkpoint),
                        "count": int(n), "weight": float(w), "heldout": heldout_dict(h, c.folds is not None),
                        "test_f1_micro": c.test_f1, "test_folds": fold_test([c], np.ones(1))}
                       for c, setting, n, w, h in
                       zip(candidates, settings(candidates), selection.counts, selection.weights, singles)],
        "ensemble": {"checkpoint": str(path), "heldout": heldout_dict(ensemble, first.folds is not None),
                     "thresholds": {**thresholds.as_dict(), "cross_fitted": thresholds.scores}, "test": test,
                     "test_folds": fold_test(candidates, selection.weights),
                     "vs_best_single": versus(ensemble, max(singles, key=lambda h: h.f1_micro), first)},
        "history": [{"added": i, "score": s} for i, s in selection.history],
    }
    write_json(out / RECORD, record)
    write_text(out / MARKDOWN, markdown(record))
    log.info("selected %s: held-out micro F1 %.4f (best single %.4f); %s", path, ensemble.f1_micro,
             max(h.f1_micro for h in singles), out / MARKDOWN)
    return record


def fold_test(candidates: list[Candidate], weights: np.ndarray) -> dict | None:
    """For CV candidates: test micro F1 at 0.5 of each fold's models, their probabilities weighted, as
    mean ± std over the folds. For one candidate that is its CV's ``test/f1_micro``; for the ensemble a
    score to compare with it fold by fold (the weights were chosen on out-of-fold predictions)."""
    if candidates[0].fold_tests is None:
        return None
    targets = np.asarray(candidates[0].test.targets).astype(bool)
    per_fold = [micro_scores(targets, sum(w * c.fold_tests[k].astype(np.float64) for c, w in zip(candidates, weights)
                                          if w > 0) > 0.5)["f1_micro"] for k in range(len(candidates[0].fold_tests))]
    return {"mean": float(np.mean(per_fold)), "std": float(np.std(per_fold, ddof=1)), "per_fold": per_fold}


def heldout_dict(score: HeldOut, folds: bool) -> dict:
    """The score's rule and pooled micro F1, and for a CV its mean ± std over the folds."""
    mean, std = score.spread
    return {"rule": score.rule, "f1_micro": score.f1_micro, **({"mean": mean, "std": std} if folds else {})}


def versus(ensemble: HeldOut, best: HeldOut, first: Candidate) -> dict | None:
    """For a CV: the ensemble minus the best single candidate, fold by fold, and whether the mean
    difference exceeds the larger of the two's std over folds (the project's bar for a finding)."""
    if first.folds is None:
        return None
    diff = np.array([ensemble.per_group[g] - best.per_group[g] for g in ensemble.per_group])
    spread = max(ensemble.spread[1], best.spread[1])
    return {"mean": float(diff.mean()), "std": float(diff.std(ddof=1)), "beyond_fold_spread": bool(
        abs(diff.mean()) > spread)}


def short_names(folders: list[str]) -> list[str]:
    """The candidate folders relative to the folder above their sweeps (``best/cv_0``,
    ``transfer-cv/cv_2``), so that the table names them the same on every machine."""
    sweeps = {Path(f).parent for f in folders}
    base = Path(os.path.commonpath(sweeps)) if len(sweeps) > 1 else sweeps.pop().parent
    return [os.path.relpath(f, base) for f in folders]


def fmt(heldout: dict) -> str:
    spread = f" ({heldout['mean']:.4f} ± {heldout['std']:.4f})" if "mean" in heldout else ""
    return f"{heldout['f1_micro']:.4f}{spread}"


def folds_column(test_folds: dict | None) -> dict:
    if test_folds is None:
        return {}
    return {"test F1 of the fold models": f"{test_folds['mean']:.4f} ± {test_folds['std']:.4f}"}


def markdown(record: dict) -> str:
    """``selection.md``: the candidates and the ensemble in one table, the rule and the test score."""
    cv = record["folds"] is not None
    where = (f"out-of-fold predictions of {record['images']} train+val images ({record['folds']} folds)" if cv
             else f"the val predictions of {record['images']} images (one split)")
    column = "held-out F1" + (" (folds: mean ± std)" if cv else "")
    e = record["ensemble"]
    names = short_names([c["folder"] for c in record["candidates"]])
    rows = [{"candidate": name, "setting": c["setting"] or "defaults", "count": c["count"],
             "weight": f"{c['weight']:.3f}", column: fmt(c["heldout"]), "rule": c["heldout"]["rule"],
             "test F1": c["test_f1_micro"], **folds_column(c["test_folds"])}
            for c, name in zip(record["candidates"], names)]
    rows.append({"candidate": "**selected ensemble**", "setting": "", "count": sum(r["count"] for r in rows),
                 "weight": "1", column: fmt(e["heldout"]), "rule": e["thresholds"]["threshold_rule"],
                 "test F1": None if e["test"] is None else e["test"]["f1_micro_at_rule"],
                 **folds_column(e["test_folds"])})
    lines = ["# Ensemble selection", "",
             f"Greedy forward selection with replacement (Caruana et al., 2004): {record['rounds']} rounds from the "
             + ("best single model" if record["init"] == 1 else f"best {record['init']} single models")
             + f", on {where}. Score: micro F1 at the threshold rule chosen by "
             "cross-fitting, each image decided by thresholds fitted on the other "
             + ("folds." if cv else "parts of val.") + " Weights = selection counts / total.", "",
             pd.DataFrame(rows).to_markdown(index=False, floatfmt=".4f", missingval=""), "",
             "Test F1: at each model's own rule, as its run (a CV: its `final.ckpt`) reported it."
             + (" Test F1 of the fold models: at 0.5, each fold's models (the ensemble: its members' fold models, "
                "weighted) scored on test, mean ± std over the folds." if cv else ""), ""]
    if e["vs_best_single"] is not None:
        d = e["vs_best_single"]
        lines += [f"Ensemble minus the best single candidate, fold by fold: {d['mean']:+.4f} ± {d['std']:.4f} "
                  + ("(beyond the folds' spread)." if d["beyond_fold_spread"] else "(within the folds' spread: "
                     "not a finding)."), ""]
    scores = ", ".join(f"{rule} {score:.4f}" for rule, score in e["thresholds"]["cross_fitted"].items())
    lines += [f"Threshold rule **{e['thresholds']['threshold_rule']}** (global threshold "
              f"{e['thresholds']['global_threshold']:.3f}), chosen on the ensemble's held-out probabilities "
              f"(cross-fitted: {scores}); stored in `{CHECKPOINT}`.", ""]
    if e["test"] is not None:
        lines += [f"Test (measured after the choice, never used for it): micro F1 {e['test']['f1_micro']:.4f} at "
                  f"0.5, **{e['test']['f1_micro_at_rule']:.4f}** at the rule. The held-out scores above are those "
                  "the selection maximised, so they are optimistic; the test score is not.", ""]
    lines += [f"Model: `{e['checkpoint']}` (`imgrec predict ckpt=...`, `imgrec export ckpt=... format=onnx`)."]
    return "\n".join(lines) + "\n"
