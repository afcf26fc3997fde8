"""Ensemble selection over finished runs (imgrec.reporting.selection, ``imgrec select``): one small CV
sweep of two settings (input 48 and 64 px) offers both kinds of candidate, its CV folders and its
fold-0 runs (one shared val split)."""

from __future__ import annotations

import json
import shutil
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf
from sklearn.metrics import f1_score

from imgrec.evaluation.selection import heldout_f1
from imgrec.evaluation.thresholds import ThresholdPolicy, choose_rule
from imgrec.inference.predictor import load_predictor
from imgrec.reporting.candidates import check_comparable, load_candidates, settings
from imgrec.reporting.cv import OutOfFold
from imgrec.reporting.selection import select_ensemble, short_names
from imgrec.reporting.sweep_report import SweepReport
from imgrec.training.evaluate import Evaluation, SplitOutputs
from imgrec.training.run_summary import RunSummary, run_folders
from imgrec.utils.errors import ImgrecError
from tests.conftest import assert_one_line_error, run_in_process

POLICY = ThresholdPolicy(10, 0.0, ("0.5", "global"))  # conf/config.yaml's thresholds block


@pytest.fixture(scope="module")
def sweep(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("select")
    r = run_in_process(["imgrec.run", "+experiment=cv", "split.folds=2", "split.test_fraction=0.25",
                        "data.n_images=600", "model.net.input_size=48,64", "trainer.max_epochs=4", "logger=none",
                        "report.enabled=false", "cache.engine=eager", f"paths.log_dir={tmp}"], cwd=tmp)
    assert r.returncode == 0, r.stderr[-3000:]
    (folder,) = (tmp / "cv" / "multiruns").iterdir()
    return folder


def fold_runs(sweep: Path, fold: int) -> list[Path]:
    return [p for p in run_folders(sweep, finished_only=True) if f"split.fold={fold}" in RunSummary.read(p).overrides]


@pytest.fixture(scope="module")
def test_split(sweep: Path) -> tuple[SplitOutputs, np.ndarray]:
    """The test split all the sweep's runs share, and its images."""
    run = fold_runs(sweep, 0)[0]
    test = Evaluation.load(run / "predictions.npz").test
    datamodule = instantiate(OmegaConf.load(run / "config_resolved.yaml").data)
    datamodule.setup("test")
    return test, np.asarray(datamodule.data.images[test.indices])


def test_cv_folders_select_on_out_of_fold_predictions(sweep: Path, test_split) -> None:
    r = run_in_process(["imgrec.cli", "select", str(sweep), "--rounds", "6"], cwd=sweep)
    assert r.returncode == 0, r.stderr[-3000:]
    out = sweep / "selection"  # the default
    assert r.stdout.strip().splitlines()[-1] == f"selected ensemble: {(out / 'selected.ckpt').resolve()}"
    record = json.loads((out / "selection.json").read_text())
    assert record["heldout"] == "out-of-fold" and record["folds"] == 2 and (out / "selection.md").is_file()
    weights = np.array([c["weight"] for c in record["candidates"]])
    counts = np.array([c["count"] for c in record["candidates"]])
    assert np.allclose(weights, counts / counts.sum()) and 1 <= counts.sum() <= 6
    oofs = [OutOfFold.load(sweep / f"cv_{k}" / "oof.npz")[0] for k in range(2)]
    for candidate in record["candidates"]:  # each alone scores what its CV reported for its rule
        alone = candidate["heldout"]
        cv = json.loads((Path(candidate["folder"]) / "cv.json").read_text())
        assert alone["f1_micro"] == pytest.approx(cv["thresholds"]["cross_fitted"][alone["rule"]])
    mean = sum(w * oof.probs.astype(np.float64) for w, oof in zip(weights, oofs))
    targets, folds = oofs[0].targets, oofs[0].folds
    ensemble = record["ensemble"]
    assert ensemble["heldout"]["f1_micro"] == pytest.approx(heldout_f1(mean, targets, folds, POLICY).f1_micro)
    assert ensemble["heldout"]["f1_micro"] >= max(c["heldout"]["f1_micro"] for c in record["candidates"])
    predictor = load_predictor(ensemble["checkpoint"])  # the rule was chosen on the ensemble's OOF probabilities
    chosen = choose_rule(mean, targets, 10, groups=folds)
    assert predictor.rule == chosen.rule and np.allclose(predictor.thresholds, chosen.applied(), atol=1e-6)
    # test: scored after the choice, on the weighted mean of the members' final models
    test, images = test_split
    members = sum(w * load_predictor(sweep / f"cv_{k}" / "final.ckpt").probabilities(images)
                  for k, w in enumerate(weights) if w > 0)
    probs = predictor.probabilities(images)
    np.testing.assert_allclose(probs, members, atol=1e-5, rtol=0)
    assert ensemble["test"]["f1_micro_at_rule"] == pytest.approx(f1_score(test.targets, probs > chosen.applied(),
                                                                          average="micro"))
    # the CV test score of the fold models: each candidate's is its CV's; the ensemble's weights its members'
    for candidate in record["candidates"]:
        cv = json.loads((Path(candidate["folder"]) / "cv.json").read_text())
        assert candidate["test_folds"]["mean"] == pytest.approx(cv["metrics"]["test/f1_micro"]["mean"])
    per_fold = []
    for fold in range(2):
        runs = fold_runs(sweep, fold)
        mean = sum(c["weight"] * Evaluation.load(next(p for p in runs if c["setting"] in RunSummary.read(p).overrides)
                                                 / "predictions.npz").test.probs for c in record["candidates"])
        per_fold.append(f1_score(test.targets, mean > 0.5, average="micro"))
    assert ensemble["test_folds"]["per_fold"] == pytest.approx(per_fold)


def test_single_runs_select_on_their_shared_val_split(sweep: Path, test_split, tmp_path: Path) -> None:
    runs = fold_runs(sweep, 0)
    record = select_ensemble(runs, tmp_path / "single", rounds=4)  # what a multirun's end calls
    assert record["heldout"] == "val" and record["folds"] is None and record["ensemble"]["vs_best_single"] is None
    evaluations = [Evaluation.load(run / "predictions.npz") for run in runs]
    weights = [c["weight"] for c in record["candidates"]]
    val = sum(w * e.val.probs.astype(np.float64) for w, e in zip(weights, evaluations))
    chosen = choose_rule(val, evaluations[0].val.targets, 10)  # a single run's own rule choice: random parts of val
    predictor = load_predictor(record["ensemble"]["checkpoint"])
    assert predictor.rule == chosen.rule and np.allclose(predictor.thresholds, chosen.applied(), atol=1e-6)
    test, images = test_split
    assert all(np.array_equal(e.test.indices, test.indices) for e in evaluations)
    expected = sum(w * e.test.probs for w, e in zip(weights, evaluations))  # the members' own test outputs
    probs = predictor.probabilities(images)
    np.testing.assert_allclose(probs, expected, atol=1e-5, rtol=0)
    assert record["ensemble"]["test"]["f1_micro"] == pytest.approx(f1_score(test.targets, probs > 0.5,
                                                                            average="micro"))


def test_mixed_or_mismatched_candidates_are_refused_in_one_line(sweep: Path, tmp_path: Path) -> None:
    fold0, fold1 = fold_runs(sweep, 0), fold_runs(sweep, 1)
    (tmp_path / "empty").mkdir()
    cases = {(sweep / "cv_0", fold0[0]): f"{fold0[0]}: a single run among CV candidates",
             (fold0[0], fold1[1]): f"{fold1[1]}: its held-out images differ from those of {fold0[0]}",
             (tmp_path / "empty",): f"{tmp_path / 'empty'}: no CV folder (cv.json), finished run",
             (tmp_path / "absent",): f"{tmp_path / 'absent'}: not a folder"}
    for folders, message in cases.items():
        assert_one_line_error(run_in_process(["imgrec.cli", "select", *map(str, folders)], cwd=tmp_path), message)
    a, b = load_candidates([sweep])
    for field, value in (("label_names", ["x"] * 14), ("image_size", 32), ("data_fingerprint", "other")):
        with pytest.raises(ImgrecError, match=f"{b.folder}: its .* differ from those of {a.folder}"):
            check_comparable([a, replace(b, meta=replace(b.meta, **{field: value}))])


def sweep_end(folder: Path) -> DictConfig:
    """What Hydra hands ``SweepReport`` when the sweep in ``folder`` ends."""
    run = OmegaConf.load(next(folder.glob("*/config_resolved.yaml")))
    return OmegaConf.create({"hydra": {"sweep": {"dir": str(folder)}}, "optimized_metric": run.optimized_metric,
                             "thresholds": run.thresholds})


def test_a_sweep_with_select_ends_with_the_final_checkpoint(sweep: Path, tmp_path: Path, capsys) -> None:
    """``hydra.callbacks.sweep_report.select=true`` (``+experiment=best``): after the CV aggregates, the
    ensemble selected over the sweep's settings, and the checkpoint named on the last line."""
    copy = shutil.copytree(sweep, tmp_path / "sweep")
    shutil.rmtree(copy / "selection", ignore_errors=True)
    SweepReport(select=True).on_multirun_end(sweep_end(copy))
    checkpoint = (copy / "selection" / "selected.ckpt").resolve()
    assert capsys.readouterr().out.strip().splitlines()[-1] == f"final checkpoint: {checkpoint}"
    record = json.loads((copy / "selection" / "selection.json").read_text())
    assert record["heldout"] == "out-of-fold" and len(record["candidates"]) == 2
    assert Path(record["ensemble"]["checkpoint"]).resolve() == checkpoint and load_predictor(checkpoint).rule


def test_select_from_adds_an_earlier_sweeps_settings(sweep: Path, tmp_path: Path) -> None:
    """``select_from`` (``make reproduce``'s best step): an earlier sweep on the same folds cross-validated one
    setting, this sweep the other; the selection is over both, and written into this sweep."""
    own, earlier = shutil.copytree(sweep, tmp_path / "own"), shutil.copytree(sweep, tmp_path / "earlier")
    for folder, other in ((own, "model.net.input_size=64"), (earlier, "model.net.input_size=48")):
        for derived in [folder / "selection", *folder.glob("cv_*")]:
            shutil.rmtree(derived, ignore_errors=True)
        for run in run_folders(folder):
            if other in RunSummary.read(run).overrides:
                shutil.rmtree(run)
    SweepReport().on_multirun_end(sweep_end(earlier))  # the earlier sweep ended without a selection
    assert not (earlier / "selection").exists()
    SweepReport(select=True, select_from=[str(earlier)]).on_multirun_end(sweep_end(own))
    record = json.loads((own / "selection" / "selection.json").read_text())
    assert {Path(c["folder"]).name: c["setting"] for c in record["candidates"]} == {
        "own": "model.net.input_size=48", "earlier": "model.net.input_size=64"}


def test_the_table_names_candidates_below_the_folder_above_their_sweeps():
    assert short_names(["/x/logs/best/cv_0", "/x/logs/transfer-cv/cv_2"]) == ["best/cv_0", "transfer-cv/cv_2"]
    assert short_names(["/x/logs/best/cv_0", "/x/logs/best/cv_1"]) == ["best/cv_0", "best/cv_1"]
    assert short_names(["/x/sweep/0", "/x/sweep/1"]) == ["sweep/0", "sweep/1"]


def test_a_candidates_setting_leaves_out_what_all_share_and_its_task_name():
    own = SimpleNamespace(overrides=["data=idl", "task_name=best", "+arch=partial_lite0"])
    earlier = SimpleNamespace(overrides=["data=idl", "task_name=transfer-cv", "+arch=transfer_lite0"])
    assert settings([own, earlier]) == ["+arch=partial_lite0", "+arch=transfer_lite0"]
