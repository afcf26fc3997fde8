"""The report's figures, written as small PNGs.

Figures are built as plain ``matplotlib.figure.Figure`` objects, without pyplot: no global state, no
backend to choose (saving renders with Agg, no display needed), and a notebook shows a returned
figure inline.
"""

from __future__ import annotations

import io
import textwrap
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from PIL import Image
from sklearn.metrics import precision_recall_curve

DPI = 80  # keeps every figure well under 200 KB


def save(fig: Figure, path: str | Path) -> Path:
    """Write a 256-colour PNG atomically (temp, then rename), return the path.
    The palette keeps galleries of photos small enough to commit (a few hundred KB as RGB)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=DPI, bbox_inches="tight")
    image = Image.open(buffer).convert("RGB").quantize(colors=256)
    tmp = path.with_name(f".{path.stem}.tmp.png")
    image.save(tmp, optimize=True)
    tmp.replace(path)
    return path


def per_class_f1_bars(table: pd.DataFrame) -> Figure:
    """F1 per label at 0.5 and at the tuned threshold, with the label's support."""
    fig = Figure(figsize=(7, 0.3 * len(table) + 1.2))
    ax = fig.subplots()
    y = np.arange(len(table))
    ax.barh(y - 0.2, table["f1_at_0.5"], height=0.4, label="at 0.5", color="#9ab")
    ax.barh(y + 0.2, table["f1"], height=0.4, label="at tuned threshold", color="#247")
    ax.set_yticks(y, [f"{lab} ({n})" for lab, n in zip(table["label"], table["support"])])
    ax.invert_yaxis()
    ax.set_xlim(0, 1)
    ax.set_xlabel("F1 (support in brackets)")
    ax.legend(loc="lower right", fontsize=8)
    return fig


def pr_curves(probs: np.ndarray, targets: np.ndarray, label_names: Sequence[str],
              thresholds: np.ndarray | None = None, ap: Sequence[float] | None = None) -> Figure:
    """One small precision-recall curve per label; the dot is the tuned threshold's operating point."""
    cols = 5
    rows = -(-len(label_names) // cols)
    fig = Figure(figsize=(2.2 * cols, 2.0 * rows))
    axes = fig.subplots(rows, cols, sharex=True, sharey=True, squeeze=False)
    for j, ax in enumerate(axes.flat):
        if j >= len(label_names):
            ax.axis("off")
            continue
        title = label_names[j] if ap is None else f"{label_names[j]} AP {ap[j]:.2f}"
        ax.set_title(title, fontsize=8)
        ax.tick_params(labelsize=7)
        y = targets[:, j]
        if y.sum() == 0:
            ax.text(0.5, 0.5, "no positive", ha="center", va="center", fontsize=8)
            continue
        precision, recall, _ = precision_recall_curve(y, probs[:, j])
        ax.plot(recall, precision, lw=1.2)
        if thresholds is not None:
            pred = probs[:, j] > thresholds[j]
            tp = float((pred & (y == 1)).sum())
            if pred.any():
                ax.plot(tp / y.sum(), tp / pred.sum(), "o", ms=4, color="C3")
    fig.supxlabel("recall", fontsize=9)
    fig.supylabel("precision", fontsize=9)
    fig.tight_layout()
    return fig


def gallery(images: Sequence[np.ndarray], captions: Sequence[str], cols: int = 4, width: int = 26) -> Figure:
    """Thumbnails with wrapped captions below (``true : predicted``, or a candidate's label)."""
    rows = max(1, -(-len(images) // cols))
    fig = Figure(figsize=(2.0 * cols, 2.5 * rows))
    axes = fig.subplots(rows, cols, squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, image, text in zip(axes.flat, images, captions):
        ax.imshow(image)
        ax.set_title("\n".join(textwrap.wrap(text, width)) or "-", fontsize=7, y=-0.04, va="top")
    fig.tight_layout(h_pad=2.5)
    return fig


def heatmap(matrix: pd.DataFrame, title: str, ax: Axes, fmt: str = "d", vmax: float | None = None) -> None:
    """Annotated heatmap of a DataFrame (rows x columns) into ``ax``."""
    values = matrix.to_numpy(dtype=np.float64)
    ax.imshow(values, cmap="Blues", vmin=0, vmax=vmax if vmax is not None else max(values.max(), 1e-9),
              aspect="auto")
    ax.set_xticks(range(matrix.shape[1]), matrix.columns, rotation=90, fontsize=7)
    ax.set_yticks(range(matrix.shape[0]), matrix.index, fontsize=7)
    ax.set_title(title, fontsize=9)
    limit = 0.6 * (vmax if vmax is not None else values.max())
    for (i, j), v in np.ndenumerate(values):
        ax.text(j, i, format(int(v) if fmt == "d" else v, fmt), ha="center", va="center", fontsize=5.5,
                color="white" if v > limit else "black")


def cooccurrence_pair(targets_cooc: pd.DataFrame, preds_cooc: pd.DataFrame) -> Figure:
    """Co-occurrence of the target labels beside that of the predicted labels, on one colour scale."""
    fig = Figure(figsize=(11, 5))
    axes = fig.subplots(1, 2)
    vmax = float(max(targets_cooc.to_numpy().max(), preds_cooc.to_numpy().max()))
    heatmap(targets_cooc, "targets", axes[0], vmax=vmax)
    heatmap(preds_cooc, "predictions", axes[1], vmax=vmax)
    fig.tight_layout()
    return fig


def counts_bars(counts: pd.Series, xlabel: str, ylabel: str = "images") -> Figure:
    """A bar per index value (labels per image, wrong labels per image...)."""
    fig = Figure(figsize=(5, 3))
    ax = fig.subplots()
    x = np.arange(len(counts))
    ax.bar(x, counts.to_numpy(), color="#247")
    ax.set_xticks(x, [str(i) for i in counts.index])
    for xi, v in zip(x, counts.to_numpy()):
        ax.text(xi, v, str(int(v)), ha="center", va="bottom", fontsize=8)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    return fig


def grouped_bars(table: pd.DataFrame, ylabel: str) -> Figure:
    """One group of bars per row of ``table`` (e.g. labels), one bar per column (e.g. before/after)."""
    fig = Figure(figsize=(8, 3.2))
    ax = fig.subplots()
    width = 0.8 / table.shape[1]
    x = np.arange(len(table))
    for k, column in enumerate(table.columns):
        ax.bar(x + (k - (table.shape[1] - 1) / 2) * width, table[column], width, label=str(column))
    ax.set_xticks(x, table.index, rotation=60, fontsize=8)
    ax.set_ylabel(ylabel)
    ax.legend(fontsize=8)
    return fig


def f1_heatmap(table: pd.DataFrame) -> Figure:
    """Runs (rows) x labels (columns) of per-label F1, for a sweep."""
    fig = Figure(figsize=(0.5 * table.shape[1] + 2.5, 0.4 * table.shape[0] + 1.8))
    heatmap(table, "test F1 per label (tuned thresholds)", fig.subplots(), fmt=".2f", vmax=1.0)
    return fig


def cooccurrence_heatmap(matrix: pd.DataFrame, title: str = "label co-occurrence") -> Figure:
    fig = Figure(figsize=(7, 6))
    heatmap(matrix, title, fig.subplots())
    return fig
