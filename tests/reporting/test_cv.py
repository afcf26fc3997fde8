"""k-fold cross-validation end to end: one multirun of folds, then the aggregate (imgrec.reporting.cv)."""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from omegaconf import OmegaConf
from sklearn.metrics import f1_score

from imgrec.evaluation.thresholds import choose_rule
from imgrec.inference.predictor import load_predictor
from imgrec.reporting.cv import comparison, final_test_probs
from imgrec.training.evaluate import Evaluation
from tests.conftest import most_frequent_f1, run_in_process

FOLDS = 3


@pytest.fixture(scope="module")
def cv_dir(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    tmp = tmp_path_factory.mktemp("cv")
    r = run_in_process(["imgrec.run", "+experiment=cv", f"split.folds={FOLDS}", "split.test_fraction=0.1",
                       "data.n_images=1200", "model.net.input_size=64", "trainer.max_epochs=6", "logger=none",
                 "report.enabled=false", f"paths.log_dir={tmp}"], cwd=tmp)
    assert r.returncode == 0, r.stderr[-3000:]
    (sweep,) = (tmp / "cv" / "multiruns").iterdir()
    return sweep, r.stdout + r.stderr


def test_metrics_are_mean_and_std_over_the_folds(cv_dir):
    sweep, _ = cv_dir
    result = json.loads((sweep / "cv.json").read_text())
    runs = [json.loads((sweep / str(k) / "metrics.json").read_text())["metrics"] for k in range(FOLDS)]
    assert result["folds"] == FOLDS
    for name in ("val/f1_micro", "test/f1_micro", "test/map"):
        values = [m[name] for m in runs]
        assert result["metrics"][name]["mean"] == pytest.approx(np.mean(values))
        assert result["metrics"][name]["std"] == pytest.approx(np.std(values, ddof=1))
    assert "± " in (sweep / "cv.md").read_text()


def test_out_of_fold_predictions_cover_train_val_once_and_learned(cv_dir):
    sweep, _ = cv_dir
    with np.load(sweep / "oof.npz") as z:
        probs, targets, folds, indices = z["probs"], z["targets"], z["folds"], z["indices"]
    test = Evaluation.load(sweep / "0" / "predictions.npz").test.indices
    assert np.array_equal(indices, np.setdiff1d(np.arange(1200), test))  # every train+val image, once
    for k in range(FOLDS):
        val = Evaluation.load(sweep / str(k) / "predictions.npz").val
        rows = np.searchsorted(indices, val.indices)
        assert np.all(folds[rows] == k) and np.allclose(probs[rows], val.probs)
    oof_f1 = f1_score(targets, probs > 0.5, average="micro")
    assert oof_f1 > most_frequent_f1(targets) + 0.2


def test_thresholds_are_chosen_on_the_out_of_fold_predictions(cv_dir):
    sweep, _ = cv_dir
    with np.load(sweep / "oof.npz") as z:
        chosen = choose_rule(z["probs"], z["targets"], 10, groups=z["folds"])
    stored = json.loads((sweep / "cv.json").read_text())["thresholds"]
    assert stored["threshold_rule"] == chosen.rule
    assert stored["cross_fitted"][chosen.rule] >= stored["cross_fitted"]["0.5"]
    predictor = load_predictor(sweep / "final.ckpt")  # the averaged fold models, like any checkpoint
    assert predictor.rule == chosen.rule and np.allclose(predictor.thresholds, chosen.applied())


def test_final_model_scores_like_the_folds(cv_dir):
    sweep, _ = cv_dir
    result = json.loads((sweep / "cv.json").read_text())
    final, folds = result["final"]["test_tuned/f1_micro"], result["metrics"]["test_tuned/f1_micro"]
    assert final > folds["mean"] - 3 * folds["std"] - 0.01


def test_final_model_is_scored_on_the_engine_of_the_runs_feature_cache(cv_dir, tmp_path, caplog):
    sweep, _ = cv_dir
    run = tmp_path / "run"
    shutil.copytree(sweep / "0", run, ignore=shutil.ignore_patterns("checkpoints"))
    cfg = OmegaConf.load(run / "config_resolved.yaml")
    cfg.cache.engine = "onnxruntime"
    OmegaConf.save(cfg, run / "config_resolved.yaml")
    test = Evaluation.load(run / "predictions.npz").test
    with caplog.at_level(logging.INFO, logger="imgrec.inference.predictor"):
        probs = final_test_probs(sweep / "final.ckpt", run, test.indices)
    assert "runs on onnxruntime" in caplog.text
    eager = final_test_probs(sweep / "final.ckpt", sweep / "0", test.indices)
    assert np.abs(probs - eager).max() < 1e-3
    final = json.loads((sweep / "cv.json").read_text())["final"]
    assert f1_score(test.targets, eager > 0.5, average="micro") == pytest.approx(final["test/f1_micro"], abs=1e-6)


def test_label_issues_cover_train_and_val_and_features_are_extracted_once(cv_dir):
    sweep, log = cv_dir
    candidates = pd.read_csv(sweep / "missing_label_candidates.csv")
    test_names = {f"im{i + 1}" for i in Evaluation.load(sweep / "0" / "predictions.npz").test.indices}
    assert len(candidates) and not set(candidates["image"].str.removesuffix(".jpg")) <= test_names
    assert log.count("features: extracting") == 1, log[-3000:]


def test_sweep_over_cv_flags_differences_within_the_fold_spread():
    def result(mean: float, std: float) -> dict:
        return {"metrics": {"val/f1_micro": {"mean": mean, "std": std}}, "thresholds": {"threshold_rule": "global"}}

    table = comparison({"a": result(0.80, 0.01), "b": result(0.795, 0.01), "c": result(0.70, 0.01)}, "val/f1_micro")
    assert table.set_index("setting")["within_std"].to_dict() == {"a": "", "b": "yes", "c": "no"}
