"""Train, validate and test one configuration: ``python -m imgrec.run [overrides]``.

reader -> split -> augment/balance -> loader -> model -> metrics -> ``metrics.json`` in the run folder.
"""

from __future__ import annotations

import functools
import logging
import sys
import time
from pathlib import Path

import hydra
import pytorch_lightning as pl
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf
from pytorch_lightning.callbacks import ProgressBar

from imgrec.config.compose import CONF_DIR, check_cli, resolvers
from imgrec.data.datamodule import MultiLabelDataModule
from imgrec.evaluation.metrics import check_optimized_metric
from imgrec.evaluation.thresholds import ThresholdPolicy
from imgrec.features.cache import FeatureDataModule
from imgrec.features.engines import check_setting
from imgrec.models.export import export_safetensors
from imgrec.models.transfer import TransferNet
from imgrec.reporting.run_report import log_to_wandb, run_context, write_run_report
from imgrec.training.distributed import end_job
from imgrec.training.evaluate import evaluate_best
from imgrec.training.provenance import write_provenance
from imgrec.training.run_summary import RunSummary, clear_failure
from imgrec.training.wandb_start import start_wandb
from imgrec.utils import console
from imgrec.utils.device import check_accelerator
from imgrec.utils.errors import ImgrecError, user_error

log = logging.getLogger(__name__)
resolvers.register()
console.quiet()


def build_loggers(cfg: DictConfig) -> list[pl.loggers.Logger]:
    loggers = [console.quiet_logger(instantiate(c)) for c in (cfg.get("logger") or {}).values()]
    for logger in loggers:
        if isinstance(logger, pl.loggers.WandbLogger):
            start_wandb(logger)
    return loggers


def train(cfg: DictConfig) -> RunSummary:
    """Fit, then validate and test the best checkpoint. Returns the run summary also written to disk."""
    out = Path(cfg.paths.output_dir)
    check_accelerator(cfg.trainer.accelerator)
    check_optimized_metric(cfg.optimized_metric)
    check_setting(cfg.cache.engine)  # before the data are read
    policy: ThresholdPolicy = instantiate(cfg.thresholds)
    pl.seed_everything(cfg.seed, workers=True)
    datamodule: MultiLabelDataModule = instantiate(cfg.data)
    datamodule.setup("fit")  # reads and checks every input before any model is built
    write_provenance(out, cfg, datamodule.data.fingerprint)
    # The net's config as YAML text: plain data for the checkpoint, and not instantiated by Hydra.
    meta = {"net_config": OmegaConf.to_yaml(cfg.model.net, resolve=True),
            "data_fingerprint": datamodule.data.fingerprint,
            "image_size": int(datamodule.data.images.shape[1])}  # predict decodes images at this size
    loss = instantiate(cfg.model.loss)
    if isinstance(loss, functools.partial):  # a data-dependent loss (pos_weight) gets the train targets
        loss = loss(train_targets=datamodule.data.targets[datamodule.train_indices])
    model = instantiate(cfg.model, label_names=datamodule.label_names, meta=meta, loss=loss)
    if cfg.cache.features and isinstance(model.net, TransferNet) and model.net.freeze:
        datamodule = FeatureDataModule(datamodule, model.net.cached_parts(), cfg.cache.dir, cfg.cache.views,
                                       cfg.cache.engine, mirror_eval=model.net.tta == "flip")
        model.train_on_features()
    callbacks = [instantiate(c) for c in (cfg.get("callbacks") or {}).values()]
    if cfg.trainer.get("enable_progress_bar") is False:  # Lightning refuses a bar callback with the bar off
        callbacks = [c for c in callbacks if not isinstance(c, ProgressBar)]
    trainer: pl.Trainer = instantiate(cfg.trainer, callbacks=callbacks, logger=build_loggers(cfg) or False)

    start = time.time()
    trainer.fit(model, datamodule=datamodule, ckpt_path=cfg.ckpt_path or ("last" if cfg.resume else None))
    best = trainer.checkpoint_callback.best_model_path if trainer.checkpoint_callback else ""
    score = getattr(trainer.checkpoint_callback, "best_model_score", None)
    log.info("fit: %d epoch(s) in %.0f s, best %s %.4f", trainer.current_epoch, time.time() - start,
             cfg.optimized_metric, float("nan") if score is None else float(score))
    ckpt = best or None
    evaluation = evaluate_best(trainer, model, datamodule, ckpt, policy)
    metrics = evaluation.metrics
    log.info("thresholds: rule %s fitted on val (global %.2f)", evaluation.thresholds.rule,
             evaluation.thresholds.global_threshold)
    if trainer.is_global_zero:  # every rank has the same (synced) metrics and gathered outputs
        evaluation.save(out / "predictions.npz")
        if cfg.report.enabled:
            context = run_context(out, datamodule.data, datamodule.split, len(datamodule.train_indices),
                                  f"best `{cfg.optimized_metric}` over {trainer.current_epoch} epochs", best)
            report = write_run_report(out, evaluation, datamodule.data.images, context, policy.min_support,
                                      cfg.report.gallery)
            log_to_wandb(report, trainer.loggers)
    summary = RunSummary(task_overrides(), {k: float(v) for k, v in metrics.items()}, trainer.current_epoch,
                         round(time.time() - start, 2), best, meta["data_fingerprint"],
                         evaluation.thresholds.as_dict(), model.size)
    if trainer.is_global_zero:
        if best:
            export_safetensors(best, out / "model.safetensors")
        summary.write(out)  # last: its presence marks the run finished
    log.info("test: micro F1 %.4f at 0.5, %.4f at the tuned thresholds (val %.4f); run folder %s",
             metrics.get("test/f1_micro", float("nan")), metrics.get("test_tuned/f1_micro", float("nan")),
             metrics.get("val/f1_micro", float("nan")), out)
    return summary


def task_overrides() -> list[str]:
    return list(HydraConfig.get().overrides.task) if HydraConfig.initialized() else []


def finished(out: Path) -> RunSummary | None:
    """The summary of a run that already finished in ``out``, so a restarted sweep skips it. A finished
    run of another configuration is an error."""
    summary = RunSummary.read(out)
    if summary is None or summary.failed:
        return None
    if summary.overrides != task_overrides():
        raise ImgrecError(f"{out}: holds a finished run of other overrides {summary.overrides}; use a new folder")
    return summary


def is_multirun() -> bool:
    return HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN


@hydra.main(version_base="1.3", config_path=str(CONF_DIR), config_name="config")
def main(cfg: DictConfig) -> float | None:
    out = Path(cfg.paths.output_dir)
    try:
        summary = finished(out)
        if summary is not None:
            log.info("%s: already finished (metrics.json), skipping", out)
        else:
            clear_failure(out)
            summary = train(cfg)
    except Exception as exc:
        err = user_error(exc)
        if is_multirun():  # record the failure; the sweep goes on and its table shows it
            RunSummary(task_overrides(), error=str(err or repr(exc))).write(out)
            log.exception("run failed: %s", err or exc)
            return None
        if err is None:
            raise
        log.error("%s", err)
        raise SystemExit(f"error: {err}") from None
    finally:
        if "wandb" in sys.modules:  # always close the W&B run, even on a crash
            sys.modules["wandb"].finish()
        end_job()  # DDP: the next run of a sweep in this process starts its own ranks
    return summary.metrics.get(cfg.optimized_metric)


def cli() -> None:
    """The command line: check overrides and the output folder first, then Hydra runs :func:`main`."""
    try:
        check_cli(sys.argv[1:])
    except ImgrecError as err:
        raise SystemExit(f"error: {err}") from None
    main()


if __name__ == "__main__":
    cli()
