"""The candidates of ensemble selection: finished CV settings or finished single runs, with their held-out
predictions, checked to be comparable.

A CV folder (``cv.json``, :mod:`imgrec.reporting.cv`) offers its out-of-fold probabilities (every
train+val image predicted once by a fold model that never saw it) and ``final.ckpt``; a single run its
val probabilities (``predictions.npz``) and best checkpoint. The two are never mixed: their held-out
images differ. Candidates must share the label names, the held-out images and their targets, the
folds (CV) and the test split; anything else is refused in one line naming the folder.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from hydra.utils import instantiate
from omegaconf import OmegaConf

from imgrec.evaluation.thresholds import ThresholdPolicy, crossfit_groups
from imgrec.models.checkpoint import CheckpointMeta, read_checkpoint
from imgrec.reporting.cv import CV_JSON, FINAL_CKPT, FOLD, OOF_NPZ, OutOfFold, load_folds
from imgrec.training.evaluate import Evaluation, SplitOutputs
from imgrec.training.run_summary import FINISHED, RunSummary, run_folders
from imgrec.utils.errors import ImgrecError

CONFIG = "config_resolved.yaml"


@dataclass
class Candidate:
    folder: Path
    overrides: list[str]  # its run's overrides (a CV's without split.fold)
    checkpoint: Path
    meta: CheckpointMeta
    heldout: SplitOutputs  # out-of-fold (CV) or val (single run) outputs, by image index
    folds: np.ndarray | None  # the CV fold of each held-out row; None: one val split
    test: SplitOutputs  # the test split (indices, targets; probabilities of the run's own model)
    run: Path  # a run folder of it: its config reads the data and holds the threshold policy
    test_f1: float | None  # test micro F1 of its own model at its own rule, as its run reported it
    fold_tests: list[np.ndarray] | None = None  # CV: each fold model's test probabilities, in fold order

    @property
    def kind(self) -> str:
        return "CV" if self.folds is not None else "single run"

    @property
    def groups(self) -> np.ndarray:
        """Cross-fitting groups of the held-out rows: the folds, or a single val split's random parts."""
        return self.folds if self.folds is not None else crossfit_groups(len(self.heldout.indices))

    @property
    def config(self) -> Path:
        if not (self.run / CONFIG).is_file():
            raise ImgrecError(f"{self.run}: no {CONFIG} (not a run folder of imgrec.run?)")
        return self.run / CONFIG

    def policy(self) -> ThresholdPolicy:
        """The threshold policy its runs used (their ``thresholds`` block)."""
        return instantiate(OmegaConf.load(self.config).thresholds)


def cv_candidate(folder: Path) -> Candidate:
    result = json.loads((folder / CV_JSON).read_text())
    # the folds are runs of the sweep that holds the CV folder (or is it); cv.json may name them relative
    # to where the sweep was started
    folds = load_folds([fold_run(folder, Path(name).name) for name in result["runs"]])
    oof, _ = OutOfFold.load(folder / OOF_NPZ)
    overrides = [o for o in folds[0].summary.overrides if not o.startswith(FOLD)]
    return Candidate(folder, overrides, folder / FINAL_CKPT, read_checkpoint(folder / FINAL_CKPT)[0],
                     SplitOutputs(oof.probs, oof.targets, oof.indices), oof.folds, folds[0].evaluation.test,
                     folds[0].folder, result["final"].get("test_tuned/f1_micro"),
                     [f.evaluation.test.probs for f in folds])


def fold_run(folder: Path, name: str) -> Path:
    """A fold run of the CV folder: in the sweep that holds the folder (or is it)."""
    run = next((p for p in (folder / name, folder.parent / name) if (p / FINISHED).is_file()), None)
    if run is None:
        raise ImgrecError(f"{folder}: its fold run {name} is not beside it; selection reads its test split")
    return run


def run_candidate(folder: Path) -> Candidate:
    summary, evaluation = RunSummary.read(folder), Evaluation.load(folder / "predictions.npz")
    return Candidate(folder, list(summary.overrides), Path(summary.checkpoint),
                     read_checkpoint(summary.checkpoint)[0], evaluation.val, None, evaluation.test, folder,
                     summary.metrics.get("test_tuned/f1_micro"))


def candidates_in(folder: Path) -> list[Candidate]:
    """A CV folder, a sweep's CV folders (``cv_<k>/``), a finished run, or a sweep's finished runs."""
    if (folder / CV_JSON).is_file():
        return [cv_candidate(folder)]
    cvs = sorted((p.parent for p in folder.glob(f"cv_*/{CV_JSON}")), key=lambda p: (len(p.name), p.name))
    if cvs:
        return [cv_candidate(p) for p in cvs]
    if (folder / FINISHED).is_file():
        return [run_candidate(folder)]
    runs = run_folders(folder, finished_only=True)
    if not runs:
        raise ImgrecError(f"{folder}: no CV folder ({CV_JSON}), finished run ({FINISHED}) or sweep of them")
    return [run_candidate(p) for p in runs]


def load_candidates(folders: list[str | Path]) -> list[Candidate]:
    """Every candidate under ``folders`` (each once), checked to be comparable."""
    found: dict[Path, Candidate] = {}
    for folder in map(Path, folders):
        if not folder.is_dir():
            raise ImgrecError(f"{folder}: not a folder")
        for candidate in candidates_in(folder):
            found.setdefault(candidate.folder.resolve(), candidate)
    candidates = list(found.values())
    check_comparable(candidates)
    return candidates


def settings(candidates: list[Candidate]) -> list[str]:
    """Each candidate's overrides but those all share and ``task_name`` (which names its folder, not its
    model): what sets it apart."""
    shared = set.intersection(*(set(c.overrides) for c in candidates))
    return [" ".join(o for o in c.overrides if o not in shared and not o.startswith("task_name="))
            for c in candidates]


def check_comparable(candidates: list[Candidate]) -> None:
    first = candidates[0]
    for c in candidates[1:]:
        if c.kind != first.kind:
            raise ImgrecError(f"{c.folder}: a {c.kind} among {first.kind} candidates ({first.folder}): "
                              "select from CV folders only or from single runs only")
        pairs = {"label names": (c.meta.label_names, first.meta.label_names),
                 "decoded image size": (c.meta.image_size, first.meta.image_size),
                 "data fingerprint": (c.meta.data_fingerprint, first.meta.data_fingerprint),
                 "held-out images": (c.heldout.indices, first.heldout.indices),
                 "held-out targets": (c.heldout.targets, first.heldout.targets),
                 "folds": (c.folds, first.folds),
                 "test images": (c.test.indices, first.test.indices),
                 "test targets": (c.test.targets, first.test.targets)}
        for what, (a, b) in pairs.items():
            if not same(a, b):
                raise ImgrecError(f"{c.folder}: its {what} differ from those of {first.folder}; candidates "
                                  "must share labels, images, targets and test split")


def same(a: object, b: object) -> bool:
    if a is None or b is None:
        return a is b
    return np.array_equal(np.asarray(a), np.asarray(b))
