"""hparams_search=optuna: a seeded TPE search over Optuna's ask/tell API, kept in SQLite in its sweep folder,
resumable, with pruning (hydra_plugins/imgrec_optuna_sweeper, imgrec.training.callbacks.OptunaPruning)."""

from __future__ import annotations

import json
from pathlib import Path

import optuna
import pytest
from hydra.core.utils import JobReturn, JobStatus
from hydra.utils import instantiate
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution
from optuna.trial import TrialState

from hydra_plugins.imgrec_optuna_sweeper.sweeper import OptunaSweeper, search_space
from imgrec.run import train
from tests.conftest import TINY, compose_cfg, run_cli

QUICK = [o for o in TINY if not o.startswith(("trainer.max_epochs", "data.n_images"))] + [
    "trainer.max_epochs=2", "data.n_images=120", "cache.views=1"]


def test_search_space_from_override_syntax():
    space, fixed = search_space(["a=tag(log, interval(1e-4, 3e-2))", "b=choice(0, 64, 256)", "c=interval(1, 8)",
                                 "g=tag(int, log, interval(1, 8))", "d=range(0, 11, 5)", "e=choice(none, light)",
                                 "f=3", "e=strong"])
    assert space == {"a": FloatDistribution(1e-4, 3e-2, log=True), "b": CategoricalDistribution([0, 64, 256]),
                     "c": FloatDistribution(1, 8), "g": IntDistribution(1, 8, log=True),
                     "d": IntDistribution(0, 10, step=5)}
    assert fixed == {"f": "3", "e": "strong"}  # a later override replaces an earlier sweep of the same key


@pytest.mark.parametrize(("option", "pruner"), [("median", optuna.pruners.MedianPruner),
                                                ("halving", optuna.pruners.SuccessiveHalvingPruner),
                                                ("none", optuna.pruners.NopPruner)])
def test_pruner_option_reaches_the_runs(tmp_path, option, pruner):
    """The run's callback gets the group's pruner (a None would make Optuna fall back to its median pruner)."""
    cfg = compose_cfg(tmp_path, ["hparams_search=optuna", f"hydra/sweeper/pruner={option}"])
    assert type(instantiate(cfg.callbacks.optuna_pruning).pruner) is pruner
    assert type(instantiate(cfg.hydra.sweeper.pruner)) is pruner


def pruning_trial(tmp_path: Path, study: optuna.Study, lr: float) -> optuna.trial.FrozenTrial:
    """Run one trial of ``study`` in this process as the sweeper would, then tell its outcome."""
    trial = study.ask()
    cfg = compose_cfg(tmp_path / str(trial.number), [
        "hparams_search=optuna", f"paths.log_dir={tmp_path}", f"paths.cache_dir={tmp_path / 'cache'}",
        f"optuna_trial={trial.number}", f"model.optimizer.lr={lr}", "trainer.max_epochs=6", "data.n_images=200",
        "hydra.sweeper.pruner.n_startup_trials=1", "hydra.sweeper.pruner.n_warmup_steps=0"])
    summary = train(cfg)
    OptunaSweeper.tell(study, study.get_trials()[trial.number],
                       JobReturn(status=JobStatus.COMPLETED, _return_value=summary.metrics[cfg.optimized_metric]))
    return study.get_trials()[trial.number]


def test_pruning_stops_a_trial_that_falls_behind(tmp_path):
    """A learning rate too small to learn from falls below the median of the finished trial at the same
    epoch: the run stops early but ends cleanly (evaluated, metrics.json), marked pruned.json, and the
    trial is PRUNED with fewer reported epochs than the finished one."""
    storage = f"sqlite:///{tmp_path / 'train' / 'optuna' / 'search' / 'optuna.db'}"
    (tmp_path / "train" / "optuna" / "search").mkdir(parents=True)
    study = optuna.create_study(study_name="search", storage=storage, direction="maximize")

    good = pruning_trial(tmp_path, study, lr=1e-2)
    assert good.state == TrialState.COMPLETE and len(good.intermediate_values) == 6
    assert good.value == pytest.approx(json.loads((tmp_path / "0" / "run" / "metrics.json").read_text())
                                       ["metrics"]["val/f1_micro"])
    bad = pruning_trial(tmp_path, study, lr=1e-7)
    assert bad.state == TrialState.PRUNED, bad.intermediate_values
    epochs = len(bad.intermediate_values)
    assert epochs < 6
    last = epochs - 1
    assert bad.intermediate_values[last] < good.intermediate_values[last]
    marker = json.loads((tmp_path / "1" / "run" / "pruned.json").read_text())
    assert marker["epoch"] == last == bad.user_attrs["pruned_at_epoch"]
    assert json.loads((tmp_path / "1" / "run" / "metrics.json").read_text())["epochs"] == epochs


@pytest.mark.slow
def test_search_of_3_trials_resumes_to_5(tmp_path):
    """The backbone is searched too, between a real one and a missing one: the trials that draw the
    missing one fail, are recorded as failed, and the search goes on (the sweep exits non-zero at the end,
    as any sweep with a failed run)."""
    args = ["imgrec.run", "hparams_search=optuna", f"paths.log_dir={tmp_path}", *QUICK,
            "model.net.backbones.0.name=efficientnet_lite0,nope"]
    sweep = tmp_path / "train" / "optuna" / "search"
    storage = f"sqlite:///{sweep / 'optuna.db'}"

    def trials() -> list[optuna.trial.FrozenTrial]:
        return optuna.load_study(study_name="search", storage=storage).trials

    r = run_cli([*args, "hydra.sweeper.n_trials=3"], cwd=tmp_path)
    assert "of 3 runs failed" in r.stderr, r.stderr[-3000:]
    first = trials()
    assert len(first) == 3
    states = {t.state for t in first}
    assert states == {TrialState.COMPLETE, TrialState.FAIL}, states
    for t in first:
        failed = t.params["model.net.backbones.0.name"] == "nope"
        assert (t.state == TrialState.FAIL) == failed
        assert (sweep / str(t.number) / ("failed.json" if failed else "metrics.json")).is_file()
        if not failed:  # the value Optuna holds is the run's optimized_metric, reported after each epoch too
            metrics = json.loads((sweep / str(t.number) / "metrics.json").read_text())["metrics"]
            assert t.value == pytest.approx(metrics["val/f1_micro"])
            assert sorted(t.intermediate_values) == [0, 1]

    def marker_times() -> dict[int, int]:
        return {t.number: (sweep / str(t.number) / ("failed.json" if t.state == TrialState.FAIL else "metrics.json"))
                .stat().st_mtime_ns for t in first}

    before = marker_times()

    r = run_cli([*args, "hydra.sweeper.n_trials=5"], cwd=tmp_path)  # the same search, to 5 trials in all
    assert "Study name: search" in r.stderr + r.stdout
    resumed = trials()
    assert [t.number for t in resumed] == [0, 1, 2, 3, 4]
    assert [t.params for t in resumed[:3]] == [t.params for t in first]
    assert all(t.state in (TrialState.COMPLETE, TrialState.FAIL) for t in resumed)
    assert marker_times() == before  # the first trials' runs were left alone
    assert all((sweep / str(k)).is_dir() for k in (3, 4))
    assert len((sweep / "results.csv").read_text().splitlines()) == 6
