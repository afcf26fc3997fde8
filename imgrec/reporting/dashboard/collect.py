"""What a dashboard shows, read from a run, sweep or cross-validation folder into plain JSON data.

Everything comes from files the runs already wrote: ``metrics.json`` (through the sweep table,
:func:`imgrec.reporting.sweep_report.table_of`), ``predictions.npz`` (curves, per-label F1, galleries,
co-occurrence), ``report/missing_label_candidates.csv`` and ``report/thumbnails.json`` (label review).
A CV folder is a sweep of fold runs with the aggregate of :mod:`imgrec.reporting.cv`: its table gets the
mean ± std over the folds from ``cv.json``, and the review lists its out-of-fold candidates (train+val
images, whose thumbnails are read through the runs' data config, as for runs saved without any).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn.metrics import precision_recall_curve

from imgrec.data.stats import cooccurrence
from imgrec.evaluation.scores import binarize, per_class
from imgrec.reporting.dashboard import thumbnails
from imgrec.reporting.error_analysis import caption, worst_images
from imgrec.reporting.label_issues import candidate_missing_labels
from imgrec.reporting.run_folder import load_run
from imgrec.reporting.run_report import REPORT_DIR
from imgrec.reporting.sweep_compare import best_run
from imgrec.reporting.sweep_table import COLUMNS, collect, table_of
from imgrec.training.evaluate import Evaluation
from imgrec.training.run_summary import RunSummary, run_folders
from imgrec.utils.errors import ImgrecError

GALLERY = 12  # images in each run's error gallery
CURVE_POINTS = 100  # points kept per curve (keeps a sweep's page small)
CANDIDATES = "missing_label_candidates.csv"  # a run's report/ and a CV folder hold one
GRID = np.round(np.linspace(0.01, 0.99, 99), 2)  # thresholds of the F1-against-threshold curves


def cv_folders(path: Path) -> list[Path]:
    """The CV aggregates of a sweep: the folder itself (one setting) or its ``cv_<k>/`` (one per setting)."""
    if (path / "cv.json").is_file():
        return [path]
    return sorted((p.parent for p in path.glob("cv_*/cv.json")), key=lambda p: (len(p.name), p.name))


def folder_kind(path: Path) -> str:
    """``run`` (has metrics.json or failed.json), ``cv`` (has a CV aggregate) or ``sweep`` (has run subfolders)."""
    if RunSummary.read(path) is not None:
        return "run"
    if cv_folders(path):
        return "cv"
    if run_folders(path):
        return "sweep"
    raise ImgrecError(f"{path}: not a run, sweep or CV folder (no metrics.json in it or in its subfolders)")


def thin(xs: np.ndarray, ys: np.ndarray, n: int = CURVE_POINTS) -> tuple[list[float], list[float]]:
    keep = np.unique(np.linspace(0, len(xs) - 1, min(n, len(xs))).round().astype(int))
    return np.round(xs[keep], 4).tolist(), np.round(ys[keep], 4).tolist()


def f1_at(probs: np.ndarray, targets: np.ndarray) -> list[float]:
    """F1 of one label at each threshold of GRID."""
    pred = probs[:, None] > GRID[None, :]
    truth = targets.astype(bool)[:, None]
    tp, fp, fn = (pred & truth).sum(0), (pred & ~truth).sum(0), (~pred & truth).sum(0)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.round(np.nan_to_num(2 * tp / (2 * tp + fp + fn)), 4).tolist()


def curves(ev: Evaluation, thresholds: np.ndarray) -> list[dict[str, Any]]:
    """Per label: the test PR curve with the point at the label's threshold, and val/test F1 against
    the threshold."""
    out = []
    test, val = ev.test, ev.val
    for j, label in enumerate(ev.label_names):
        entry: dict[str, Any] = {"label": label, "threshold": round(float(thresholds[j]), 4),
                                 "f1_val": f1_at(val.probs[:, j], val.targets[:, j]),
                                 "f1_test": f1_at(test.probs[:, j], test.targets[:, j])}
        if test.targets[:, j].any():
            precision, recall, _ = precision_recall_curve(test.targets[:, j], test.probs[:, j])
            entry["recall"], entry["precision"] = thin(recall, precision)
            pred = test.probs[:, j] > thresholds[j]
            tp = float((pred & (test.targets[:, j] == 1)).sum())
            entry["at_threshold"] = [round(tp / test.targets[:, j].sum(), 4), round(tp / max(pred.sum(), 1), 4)]
        out.append(entry)
    return out


class Images:
    """Thumbnails inlined once each (keyed by content), so a sweep's runs can share them."""

    def __init__(self) -> None:
        self.uris: dict[str, str] = {}

    def key(self, uri: str | None) -> str | None:
        if uri is None:
            return None
        key = "i" + hashlib.sha1(uri.encode()).hexdigest()[:12]
        self.uris[key] = uri
        return key


def run_data(run_dir: Path, name: str, images: Images) -> dict[str, Any] | None:
    """Curves, per-label F1, error gallery and co-occurrence of one finished run."""
    if not (run_dir / "predictions.npz").is_file():
        return None
    ev = load_run(run_dir)
    thresholds = ev.thresholds.applied()
    test = ev.test
    preds = binarize(test.probs, thresholds)
    thumbs = thumbnails.load_thumbnails(run_dir / REPORT_DIR)
    gallery = []
    for r in worst_images(test.probs, preds, test.targets, GALLERY):
        image = ev.names[test.indices[r]]
        gallery.append({"image": image, "img": images.key(thumbs.get(image)),
                        "caption": caption(test.targets[r], preds[r], ev.label_names)})
    table = per_class(test.probs, test.targets, thresholds, ev.label_names)
    return {"name": name, "labels": ev.label_names, "f1": dict(zip(table["label"], table["f1"].round(4))),
            "curves": curves(ev, thresholds), "gallery": gallery,
            "cooc_targets": cooccurrence(test.targets, ev.label_names).to_numpy().tolist(),
            "cooc_predictions": cooccurrence(preds, ev.label_names).to_numpy().tolist()}


def candidates_of(run_dir: Path, review: int) -> pd.DataFrame:
    """The run's missing-label candidates (its report's CSV, else recomputed from its test outputs)."""
    path = run_dir / REPORT_DIR / CANDIDATES
    if path.is_file():
        return pd.read_csv(path, keep_default_na=False).head(review)
    ev = load_run(run_dir)
    names = [ev.names[i] for i in ev.test.indices]
    return candidate_missing_labels(ev.test.probs, ev.test.targets, ev.thresholds.applied(), ev.label_names,
                                    names).head(review)


def review_data(candidates: pd.DataFrame, thumbs: dict[str, str], images: Images) -> list[dict[str, Any]]:
    return [{"image": str(row.image), "label": str(row.label), "probability": float(row.probability),
             "given": str(row.given_labels), "img": images.key(thumbs.get(str(row.image)))}
            for row in candidates.itertuples()]


def settings_of(table: pd.DataFrame) -> dict[str, list[str | None]]:
    """Each swept key (its ``key=value`` overrides differ between runs) with each run's value (None: not
    set); nothing for one run, whose settings column lists all of its overrides."""
    parsed = [dict(o.split("=", 1) for o in str(s).split() if "=" in o) for s in table["settings"].fillna("")]
    keys = list(dict.fromkeys(k for p in parsed for k in p))
    values = {k: [p.get(k) for p in parsed] for k in keys}
    return {k: v for k, v in values.items() if len(set(v)) > 1}


def cv_summary(folder: Path, table: pd.DataFrame) -> dict[str, Any]:
    """One setting's mean and std over the folds of each metric, as its aggregate wrote them
    (``cv.json``), named by the settings its fold runs share."""
    result = json.loads((folder / "cv.json").read_text())
    runs = {Path(r).name for r in result.get("runs", [])}
    settings = [set(str(s).split()) for run, s in zip(table["run"].astype(str), table["settings"].fillna(""))
                if run in runs]
    shared = " ".join(sorted(set.intersection(*settings))) if settings else ""
    return {"name": f"{folder.name}: {shared}".rstrip(": "), "runs": sorted(runs),
            "stats": {name: [stat["mean"], stat["std"]] for name, stat in result.get("metrics", {}).items()}}


def collect_folder(path: str | Path, metric: str = "val/f1_micro", review: int = thumbnails.REVIEW) -> dict[str, Any]:
    """Everything the page shows."""
    path = Path(path).resolve()
    kind = folder_kind(path)
    if kind == "run":
        table = table_of([path])
        table["run"] = path.name
        run_dirs = {path.name: path}
    else:
        table = collect(path)
        run_dirs = {str(run): path / str(run) for run in table["run"]}
    images = Images()
    runs = [r for run, d in run_dirs.items() if (r := run_data(d, run, images)) is not None]
    best = path.name if kind == "run" else (best_run(path, table, metric) or (None,))[0]
    folders = cv_folders(path) if kind == "cv" else []
    summaries = [cv_summary(folder, table) for folder in folders]
    # out-of-fold candidates (every train+val image): the CV's, or that of the setting with the best run
    oof = folders if len(folders) == 1 else [f for f, summary in zip(folders, summaries) if best in summary["runs"]]
    candidates, thumbs = pd.DataFrame(), {}
    if oof and (oof[0] / CANDIDATES).is_file():
        candidates = pd.read_csv(oof[0] / CANDIDATES, keep_default_na=False).head(review)
    elif best is not None and (run_dirs[best] / "predictions.npz").is_file():
        candidates = candidates_of(run_dirs[best], review)
        thumbs = thumbnails.load_thumbnails(run_dirs[best] / REPORT_DIR)
    missing = [name for name in candidates.get("image", pd.Series()).astype(str) if name not in thumbs]
    source = run_dirs.get(best) if best is not None else None
    if missing and source is not None and (source / "config_resolved.yaml").is_file():
        thumbs.update(thumbnails.from_config(source, missing))
    columns = [c for c in ["run", "settings", "status", *COLUMNS, "epochs", "seconds"] if c in table]
    records = json.loads(table[columns].to_json(orient="records"))  # NaN -> null
    return {"title": f"{path.name} ({kind})", "path": str(path), "kind": kind, "metric": metric, "best": best,
            "columns": columns, "rows": records, "summary": summaries,
            "settings": settings_of(table), "runs": runs, "candidates": review_data(candidates, thumbs, images),
            "images": images.uris}
