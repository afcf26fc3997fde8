"""Lightning callbacks of imgrec."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
from pytorch_lightning.trainer.states import TrainerFn

from imgrec.data.batch_augment import BatchAugment
from imgrec.training.run_summary import write_pruned
from imgrec.utils.errors import ImgrecError

log = logging.getLogger(__name__)

# The trial's user attribute that tells the sweeper a run was pruned (the epoch it stopped after).
PRUNED_AT = "pruned_at_epoch"


class FiniteLoss(pl.Callback):
    """Stop at the first NaN or infinite training loss, naming the epoch and step.

    A step's loss is checked when the next step ends (or its epoch): reading a value from the GPU makes
    the CPU wait until the GPU has computed it, and by then the next step is already queued, so the
    check never leaves the GPU idle (reading the step's own loss would, every step)."""

    def __init__(self) -> None:
        self._pending: tuple[torch.Tensor, torch.Tensor, int, int, int] | None = None

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, batch: Any,
                           batch_idx: int) -> None:
        self._check()
        loss = outputs["loss"] if isinstance(outputs, dict) else outputs
        if loss is not None:
            loss = loss.detach()
            self._pending = torch.isfinite(loss).all(), loss, trainer.current_epoch, batch_idx, trainer.global_step

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._check()

    def _check(self) -> None:
        if self._pending is None:
            return
        finite, loss, epoch, batch_idx, step = self._pending
        self._pending = None
        if not finite:
            raise ImgrecError(f"training loss is {loss.item()} at epoch {epoch}, batch {batch_idx} "
                              f"(global step {step}): lower the learning rate or use loss=seed_bce")


class OptunaPruning(pl.Callback):
    """Report ``monitor`` after each validation to trial ``trial`` of an Optuna study and stop the run
    when the study's pruner says so (``hparams_search=optuna`` adds it; the sweeper in ``hydra_plugins/``
    sets ``trial`` to the run's trial number).

    The run reopens the study from its storage, so it works in the sweeper's process and in a
    launcher's workers alike. A pruned run ends as an early-stopped one (evaluated, ``metrics.json``)
    with ``pruned.json`` in its folder; the trial's ``pruned_at_epoch`` user attribute tells the
    sweeper to record it as PRUNED. ``trial=None`` (a run outside a search) does nothing.
    """

    def __init__(self, storage: str, study_name: str, trial: int | None, monitor: str, output_dir: str,
                 pruner: Any) -> None:
        self.storage, self.study_name, self.number = storage, study_name, trial
        self.monitor, self.output_dir = monitor, Path(output_dir)
        self.pruner = pruner  # an optuna pruner; not None, which Optuna reads as its MedianPruner
        self._trial: Any = None

    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self.number is None or not trainer.is_global_zero:
            return
        import optuna

        study = optuna.load_study(study_name=self.study_name, storage=self.storage, pruner=self.pruner)
        trial_id = study._storage.get_trial_id_from_study_id_trial_number(study._study_id, self.number)
        self._trial = optuna.trial.Trial(study, trial_id)

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self.number is None or trainer.sanity_checking or trainer.state.fn != TrainerFn.FITTING:
            return  # not the best checkpoint's validation after fit
        prune = False
        if self._trial is not None:
            value = trainer.callback_metrics.get(self.monitor)
            if value is None:
                raise ImgrecError(f"{self.monitor}: not logged, cannot report it to the Optuna trial")
            epoch = trainer.current_epoch
            self._trial.report(float(value), step=epoch)
            prune = self._trial.should_prune()
            if prune:
                self._trial.set_user_attr(PRUNED_AT, epoch)
                write_pruned(self.output_dir, self.number, epoch, self.monitor, float(value))
        if trainer.strategy.broadcast(prune):  # every rank stops together
            log.info("Optuna trial %d pruned after epoch %d", self.number, trainer.current_epoch)
            trainer.should_stop = True


class AugmentationState(pl.Callback):
    """Keep the augmentation's random state in checkpoints, so that a resumed run draws the augmentations
    the uninterrupted run would have drawn.

    albumentations gives a seeded ``Compose`` and each of its transforms generators of their own
    (``random_generator``, ``py_random``); all of them are saved, as plain data (checkpoints load with
    ``weights_only=True``). Only the image path augments while training (the feature cache draws its
    views when it extracts them). Per image the pipeline runs in the loader: with ``data.num_workers > 0``
    each worker draws from its own copy, seeded from (seed, epoch the workers started in, rank, worker;
    ``imgrec.data.datamodule.WorkerSeeds``), which this callback cannot reach: a rerun draws the same
    augmentations, a resumed run others. ``augment.on_device`` (a :class:`BatchAugment`) draws in this
    process from one generator, saved here: exact resume with any number of workers.
    """

    def __init__(self) -> None:
        self._pending: list[dict[str, Any]] | torch.Tensor | None = None
        self._pipeline: Any = None

    @staticmethod
    def _nodes(pipeline: Any) -> list[Any]:
        """The pipeline and every transform in it, depth first."""
        return [pipeline, *(n for t in getattr(pipeline, "transforms", []) for n in AugmentationState._nodes(t))]

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        import albumentations as A

        pipeline = getattr(trainer.datamodule, "augment", None)
        self._pipeline = pipeline if isinstance(pipeline, (A.BaseCompose, BatchAugment)) else None
        workers = getattr(trainer.datamodule, "num_workers", 0)
        if isinstance(self._pipeline, A.BaseCompose) and workers > 0:
            log.warning("augmentation runs in %d loader workers: a resumed run will not draw the same "
                        "augmentations (data.num_workers=0 or augment.on_device=true resume exactly)", workers)

    def state_dict(self) -> dict[str, Any]:
        if isinstance(self._pipeline, BatchAugment):
            return {"generator": self._pipeline.generator.get_state()}
        if self._pipeline is None:
            return {}
        return {"nodes": [{"numpy": n.random_generator.bit_generator.state, "python": n.py_random.getstate()}
                          for n in self._nodes(self._pipeline)]}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self._pending = state_dict.get("nodes", state_dict.get("generator"))

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self._pending is None or self._pipeline is None:
            return
        pending, self._pending = self._pending, None
        if isinstance(self._pipeline, BatchAugment) and isinstance(pending, torch.Tensor):
            self._pipeline.generator.set_state(pending)
            return
        saved = "true" if isinstance(pending, torch.Tensor) else "false"
        if saved == "true" or isinstance(self._pipeline, BatchAugment):
            raise ImgrecError(f"checkpoint: its augmentation state is that of augment.on_device={saved}, "
                              "the configured augmentation's is not")
        nodes = self._nodes(self._pipeline)
        if len(nodes) != len(pending):
            raise ImgrecError(f"checkpoint: its augmentation state has {len(pending)} transforms, "
                              f"the configured pipeline {len(nodes)}")
        for node, state in zip(nodes, pending):
            node.random_generator.bit_generator.state = state["numpy"]
            node.py_random.setstate(state["python"])
