"""hparams_search=optuna: a seeded TPE search kept in SQLite in its sweep folder, resumable."""

from __future__ import annotations

import json

import optuna
import pytest
from optuna.trial import TrialState

from tests.conftest import TINY, run_cli

QUICK = [o for o in TINY if not o.startswith(("trainer.max_epochs", "data.n_images"))] + [
    "trainer.max_epochs=2", "data.n_images=120", "report.enabled=false", "cache.views=1"]


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
        if not failed:  # the value Optuna holds is the run's optimized_metric
            metrics = json.loads((sweep / str(t.number) / "metrics.json").read_text())["metrics"]
            assert t.value == pytest.approx(metrics["val/f1_micro"])
    def marker_times() -> dict[int, int]:
        return {t.number: (sweep / str(t.number) / ("failed.json" if t.state == TrialState.FAIL else "metrics.json"))
                .stat().st_mtime_ns for t in first}

    before = marker_times()

    r = run_cli([*args, "hydra.sweeper.n_trials=5"], cwd=tmp_path)  # the same search, to 5 trials in all
    assert "Study name: search" in r.stderr + r.stdout
    resumed = trials()
    assert [t.number for t in resumed] == [0, 1, 2, 3, 4]
    assert [t.params for t in resumed[:3]] == [t.params for t in first]
    assert marker_times() == before  # the first trials' runs were left alone
    assert all((sweep / str(k)).is_dir() for k in (3, 4))
    assert len((sweep / "results.csv").read_text().splitlines()) == 6
