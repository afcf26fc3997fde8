"""After fit: thresholds fitted on val only, stored in the best checkpoint, applied in test; the report."""

import json
from pathlib import Path

import numpy as np
import pytest
import pytorch_lightning as pl
import torch
from hydra.core.global_hydra import GlobalHydra
from hydra.utils import instantiate
from sklearn.metrics import f1_score

from imgrec.evaluation.thresholds import choose_rule, fit_thresholds
from imgrec.features.cache import FeatureDataModule
from imgrec.models.checkpoint import read_checkpoint
from imgrec.run import train
from imgrec.training.evaluate import Evaluation, evaluate_best
from tests.conftest import assert_one_line_error, compose_cfg, run_in_process


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("eval")
    train(compose_cfg(tmp, ["data.n_images=300", "trainer.max_epochs=8", "report.enabled=true"]))
    GlobalHydra.instance().clear()
    return tmp / "run"


def test_tuned_thresholds_are_stored_and_applied_in_test(run_dir):
    summary = json.loads((run_dir / "metrics.json").read_text())
    m = summary["metrics"]
    ev = Evaluation.load(run_dir / "predictions.npz")
    meta = torch.load(summary["checkpoint"], weights_only=True)["hyper_parameters"]["meta"]  # the stored layout
    assert meta["thresholds"] == summary["thresholds"]["thresholds"] == ev.thresholds.per_class.tolist()
    assert meta["global_threshold"] == ev.thresholds.global_threshold
    # fitted on the val outputs of the best checkpoint, nothing else
    refit = fit_thresholds(ev.val.probs, ev.val.targets, min_support=10)
    assert np.allclose(refit.per_class, ev.thresholds.per_class)
    test = ev.test
    assert np.isclose(m["test/f1_micro"], f1_score(test.targets, test.probs > 0.5, average="micro"), atol=1e-6)
    # test_tuned applies the rule chosen by cross-fitting on val, stored with the thresholds
    chosen = choose_rule(ev.val.probs, ev.val.targets, min_support=10)
    assert meta["threshold_rule"] == ev.thresholds.rule == chosen.rule
    assert chosen.scores[chosen.rule] >= chosen.scores["0.5"]
    applied = read_checkpoint(summary["checkpoint"])[0].applied.applied()
    tuned = f1_score(test.targets, test.probs > applied, average="micro")
    assert np.isclose(m["test_tuned/f1_micro"], tuned, atol=1e-6)
    assert {"val/map", "test/map", "test/f1_samples", "test_tuned/f1_samples", "test/hamming_loss"} <= set(m)


def test_run_report(run_dir):
    text = (run_dir / "report.md").read_text()
    for heading in ("## Metrics", "test @ 0.5", "test @ per-label", "## Thresholds", "## Per label (test)",
                    "### Mislabels per label", "### Wrong labels per image", "### Images with the most wrong labels",
                    "### Candidate missing labels", "### Label co-occurrence"):
        assert heading in text, heading
    report = run_dir / "report"
    pngs = sorted(p.name for p in report.glob("*.png"))
    assert {"cooccurrence.png", "f1_per_label.png", "pr_curves.png", "worst_images.png",
            "wrong_labels_per_image.png"} <= set(pngs)
    assert all((report / p).stat().st_size < 200_000 for p in pngs)
    for png in pngs:
        assert f"(report/{png})" in text
    header = (report / "missing_label_candidates.csv").read_text().splitlines()[0]
    assert header.startswith("rank,image,label,probability") and header.endswith("verdict")


def test_test_split_never_influences_thresholds(tmp_path):
    cfg = compose_cfg(tmp_path, ["data.n_images=240", "trainer.max_epochs=4"])
    pl.seed_everything(cfg.seed)
    images = instantiate(cfg.data)
    images.setup("fit")
    model = instantiate(cfg.model, label_names=images.label_names, meta={})
    datamodule = FeatureDataModule(images, model.net.backbones, cfg.cache.dir, engine=cfg.cache.engine)
    model.train_on_features()
    trainer = pl.Trainer(max_epochs=4, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                         enable_model_summary=False)
    trainer.fit(model, datamodule=datamodule)
    policy = instantiate(cfg.thresholds, min_support=3)
    first = evaluate_best(trainer, model, datamodule, None, policy)
    test_rows = images.split.test
    images.data.targets[test_rows] = np.random.default_rng(0).permutation(images.data.targets[test_rows])
    second = evaluate_best(trainer, model, datamodule, None, policy)
    assert np.array_equal(first.thresholds.per_class, second.thresholds.per_class)
    assert first.thresholds.global_threshold == second.thresholds.global_threshold
    assert first.metrics["test/f1_micro"] != second.metrics["test/f1_micro"]  # the test labels did change
    assert first.metrics["val/f1_micro"] == second.metrics["val/f1_micro"]


def test_optimized_metric_typo_fails_at_start(tmp_path):
    r = run_in_process(["imgrec.run", "optimized_metric=val/f1_mikro", f"paths.log_dir={tmp_path}", "logger=none"],
                       cwd=tmp_path)
    assert_one_line_error(r, "error: optimized_metric='val/f1_mikro'", "val/f1_micro")


def test_accuracy_is_not_the_default_selection_metric(tmp_path):
    cfg = compose_cfg(tmp_path)
    GlobalHydra.instance().clear()
    assert "accuracy" not in cfg.optimized_metric
    assert cfg.callbacks.model_checkpoint.monitor == cfg.callbacks.early_stopping.monitor == cfg.optimized_metric
