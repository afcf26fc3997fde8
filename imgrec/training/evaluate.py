"""After fit: validate the best checkpoint, fit thresholds on its val outputs, store them in the
checkpoint, test at 0.5 and at the tuned thresholds, and keep the outputs for the report.

The outputs come from the validate and test passes themselves (the module keeps them), so the
report costs no extra pass over the data, with images or with cached features alike.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytorch_lightning as pl

from imgrec.evaluation.thresholds import ThresholdPolicy, Thresholds
from imgrec.models.checkpoint import store_thresholds
from imgrec.models.module import MultiLabelModule
from imgrec.training.distributed import gather_in_order


@dataclass
class SplitOutputs:
    """Probabilities and targets of one split, row ``k`` being dataset row ``indices[k]``."""

    probs: np.ndarray  # (N, C) float32
    targets: np.ndarray  # (N, C) uint8
    indices: np.ndarray  # (N,) int64


@dataclass
class Evaluation:
    label_names: list[str]
    names: list[str]  # image names of the whole dataset, indexed by SplitOutputs.indices
    val: SplitOutputs
    test: SplitOutputs
    thresholds: Thresholds
    metrics: dict[str, float]

    def save(self, path: str | Path) -> Path:
        """Everything but the metrics (in ``metrics.json``) as one ``.npz``, for notebooks and sweeps."""
        path = Path(path)
        tmp = path.with_name(f".{path.stem}.tmp.npz")
        arrays = {f"{split}_{field}": getattr(getattr(self, split), field)
                  for split in ("val", "test") for field in ("probs", "targets", "indices")}
        np.savez_compressed(tmp, label_names=np.array(self.label_names), names=np.array(self.names),
                            global_threshold=self.thresholds.global_threshold, thresholds=self.thresholds.per_class,
                            fitted=self.thresholds.fitted, rule=self.thresholds.rule,
                            rule_names=np.array(list(self.thresholds.scores)),
                            rule_scores=np.array(list(self.thresholds.scores.values()), dtype=np.float64), **arrays)
        tmp.replace(path)
        return path

    @classmethod
    def load(cls, path: str | Path, metrics: dict[str, float] | None = None) -> Evaluation:
        with np.load(path) as z:
            splits = {split: SplitOutputs(z[f"{split}_probs"], z[f"{split}_targets"], z[f"{split}_indices"])
                      for split in ("val", "test")}
            rule = str(z["rule"]) if "rule" in z else "per_label"  # written before rules existed: per-label
            scores = dict(zip(z["rule_names"].tolist(), z["rule_scores"].tolist())) if "rule" in z else {}
            thresholds = Thresholds(float(z["global_threshold"]), z["thresholds"], z["fitted"], rule, scores)
            return cls(z["label_names"].tolist(), z["names"].tolist(), splits["val"], splits["test"], thresholds,
                       metrics or {})


def _split_outputs(trainer: pl.Trainer, model: MultiLabelModule, stage: str, indices: np.ndarray) -> SplitOutputs:
    probs, targets = (gather_in_order(trainer, t, len(indices)) for t in model.outputs(stage))  # all ranks' rows
    if len(probs) != len(indices):
        raise RuntimeError(f"{stage}: {len(probs)} outputs for {len(indices)} images (a loader drops rows?)")
    return SplitOutputs(probs.numpy().astype(np.float32), targets.numpy().astype(np.uint8),
                        np.asarray(indices, dtype=np.int64))


def evaluate_best(trainer: pl.Trainer, model: MultiLabelModule, datamodule: pl.LightningDataModule,
                  ckpt_path: str | None, policy: ThresholdPolicy) -> Evaluation:
    """``datamodule`` is an image datamodule or a FeatureDataModule; both expose ``data`` and ``split``
    and serve val and test in the order of ``split.val`` and ``split.test``."""
    metrics: dict[str, float] = {}
    # validate loads the best weights once; test then runs on them as they are (no second load)
    metrics.update(trainer.validate(model, datamodule=datamodule, ckpt_path=ckpt_path, verbose=False)[0])
    val = _split_outputs(trainer, model, "val", datamodule.split.val)
    thresholds = policy.choose(val.probs, val.targets)  # val only, never test
    model.set_thresholds(thresholds)
    metrics.update(trainer.test(model, datamodule=datamodule, verbose=False)[0])
    test = _split_outputs(trainer, model, "test", datamodule.split.test)
    if ckpt_path and trainer.is_global_zero:  # the checkpoint carries what predict applies
        store_thresholds(ckpt_path, thresholds)
    return Evaluation(list(model.label_names), list(datamodule.data.names), val, test, thresholds,
                      {k: float(v) for k, v in metrics.items()})
