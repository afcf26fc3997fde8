"""What an imgrec checkpoint carries besides its weights: the one writer and reader of ``hyper_parameters``.

A checkpoint describes itself, so that predict, export, the CV's final model and the reports rebuild the
net without the run: the label names; the net's config (YAML text, rebuilt with pretrained weights off);
per backbone its name, input size and normalisation; the size images were decoded at; the data
fingerprint; and the decision thresholds with their rule. All of it is stored as plain containers under
``hyper_parameters`` (``label_names`` and ``meta``), so that checkpoints load with ``weights_only=True``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import torch
from torch import nn

from imgrec.evaluation.thresholds import Thresholds
from imgrec.models.summary import describe
from imgrec.utils.errors import ImgrecError

REQUIRED = ("net_config", "input_sizes", "normalisation", "image_size")  # what rebuilding the net needs


@dataclass(frozen=True)
class CheckpointMeta:
    label_names: list[str]
    net_config: str | None = None  # the net's Hydra config as YAML text
    data_fingerprint: str | None = None
    image_size: int | None = None  # images are decoded at this size, before any backbone resizes them
    backbones: list[str] = field(default_factory=list)
    input_sizes: list[int] = field(default_factory=list)
    normalisation: list[dict[str, list[float]]] = field(default_factory=list)  # per backbone: mean, std
    thresholds: Thresholds | None = None  # None: none fitted yet, 0.5 applies

    @classmethod
    def of_net(cls, label_names: list[str], net: nn.Module, net_config: str | None = None,
               data_fingerprint: str | None = None, image_size: int | None = None) -> CheckpointMeta:
        """The metadata of a freshly built ``net``: its backbones' preprocessing is read from the net."""
        return cls([str(n) for n in label_names], net_config, data_fingerprint, image_size, **describe(net))

    @classmethod
    def of_members(cls, members: Sequence[CheckpointMeta], net_config: str) -> CheckpointMeta:
        """The metadata of a net made of ``members``' nets, in order (``net_config``: that net's YAML): their
        backbones' preprocessing one after the other, no thresholds. Members must share the label names and
        the decoded image size (one image goes to all), and the data fingerprint where recorded."""
        first = members[0]
        for meta in members[1:]:
            for what in ("label_names", "image_size"):
                if getattr(meta, what) != getattr(first, what):
                    raise ImgrecError(f"members differ in {what}: {getattr(first, what)} and {getattr(meta, what)}")
        fingerprints = {m.data_fingerprint for m in members} - {None}
        if len(fingerprints) > 1:
            raise ImgrecError(f"members were trained on other data (fingerprints {', '.join(sorted(fingerprints))})")
        return cls(list(first.label_names), net_config, first.data_fingerprint, first.image_size,
                   [b for m in members for b in m.backbones], [s for m in members for s in m.input_sizes],
                   [n for m in members for n in m.normalisation])

    def with_thresholds(self, thresholds: Thresholds) -> CheckpointMeta:
        return replace(self, thresholds=thresholds)

    @property
    def applied(self) -> Thresholds:
        """The thresholds predict applies: the stored ones, or 0.5 when none were fitted."""
        return self.thresholds or Thresholds.half(len(self.label_names))

    def missing(self) -> list[str]:
        """Required keys absent, so that the net cannot be rebuilt from this checkpoint."""
        present = {k for k in REQUIRED if getattr(self, k) not in (None, [])}
        return [k for k in REQUIRED if k not in present] + ([] if self.label_names else ["label_names"])

    def to_hparams(self) -> dict[str, Any]:
        """The writer: Lightning's ``hyper_parameters`` of the checkpoint."""
        meta = {"net_config": self.net_config, "data_fingerprint": self.data_fingerprint,
                "image_size": self.image_size, "backbones": list(self.backbones),
                "input_sizes": [int(s) for s in self.input_sizes], "normalisation": list(self.normalisation)}
        meta = {k: v for k, v in meta.items() if v is not None}
        if self.thresholds is not None:
            meta.update(self.thresholds.as_dict())
        return {"label_names": list(self.label_names), "meta": meta}

    @classmethod
    def from_hparams(cls, hparams: dict[str, Any]) -> CheckpointMeta:
        """The reader of what :meth:`to_hparams` wrote (also of checkpoints written before thresholds
        had rules). It does not require anything: :meth:`missing` says what is absent."""
        labels, meta = list(hparams.get("label_names") or []), dict(hparams.get("meta") or {})
        size = meta.get("image_size")
        return cls(labels, meta.get("net_config"), meta.get("data_fingerprint"),
                   None if size is None else int(size), list(meta.get("backbones") or []),
                   [int(s) for s in meta.get("input_sizes") or []], list(meta.get("normalisation") or []),
                   Thresholds.from_dict(meta, len(labels)) if "thresholds" in meta else None)


def read_checkpoint(path: str | Path) -> tuple[CheckpointMeta, dict[str, Any]]:
    """The metadata and the whole checkpoint of ``path`` (loaded with ``weights_only=True``), after the
    checks every reader needs: the file exists, loads, has weights and rebuildable metadata."""
    path = Path(path)
    if not path.is_file():
        raise ImgrecError(f"{path}: checkpoint not found")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # pickle, zip and torch errors alike: not a checkpoint we can read safely
        raise ImgrecError(f"{path}: not a readable checkpoint ({type(err).__name__})") from err
    if not isinstance(ckpt, dict):
        raise ImgrecError(f"{path}: not an imgrec checkpoint (a {type(ckpt).__name__}, not a dict)")
    try:
        meta = CheckpointMeta.from_hparams(ckpt.get("hyper_parameters") or {})
    except ImgrecError as err:
        raise ImgrecError(f"{path}: {err}") from None
    missing = meta.missing() + ([] if "state_dict" in ckpt else ["state_dict"])
    if missing:
        raise ImgrecError(f"{path}: not an imgrec checkpoint with what predict needs (missing: {', '.join(missing)})")
    return meta, ckpt


def write_checkpoint(ckpt: dict[str, Any], meta: CheckpointMeta, path: str | Path) -> Path:
    """``ckpt`` with ``meta`` as its ``hyper_parameters``, saved atomically to ``path``."""
    # Imported here: Lightning's import (seconds) is for writing; predict and export only read checkpoints.
    from imgrec.utils.checkpoint_io import AtomicCheckpointIO

    ckpt["hyper_parameters"] = meta.to_hparams()
    AtomicCheckpointIO().save_checkpoint(ckpt, path)
    return Path(path)


def store_thresholds(path: str | Path, thresholds: Thresholds) -> Path:
    """Rewrite the checkpoint at ``path`` with ``thresholds`` in its metadata (what predict applies)."""
    meta, ckpt = read_checkpoint(path)
    return write_checkpoint(ckpt, meta.with_thresholds(thresholds), path)
