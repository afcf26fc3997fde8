"""imgrec.utils.console, and the console of a whole sweep (in a new process: a warning shows once per process)."""

import csv
import re
import warnings

import pytest
from omegaconf import OmegaConf

from imgrec.utils import console
from tests.conftest import TINY, run_cli


@pytest.mark.parametrize(("params", "task", "n"), [
    ({"+preproc": "split,augment,augment_oversample"}, [], 3),
    ({"+preproc": "split,augment"}, ["seed=1,2,3"], 6),
    ({"seed": "1,2"}, ["seed=1,2,3"], 3),  # the command line wins over the config's list
    ({}, ["model.optimizer.lr=interval(0.001,0.1)"], None),  # no fixed length
])
def test_sweep_size(params, task, n):
    cfg = OmegaConf.create({"hydra": {"sweeper": {"params": params}, "overrides": {"task": task}}})
    assert console.sweep_size(cfg) == n


def test_optuna_sweep_size_is_its_trials():
    cfg = OmegaConf.create({"hydra": {"sweeper": {"n_trials": 20, "params": {}}, "overrides": {"task": []}}})
    assert console.sweep_size(cfg) == 20


def test_filters_hide_only_the_listed_messages():
    console.quiet()
    with warnings.catch_warnings(record=True) as caught:
        warnings.filterwarnings("default")  # what pytest would show
        console.quiet()
        warnings.warn("Found 275 module(s) in eval mode at the start of training.", UserWarning, stacklevel=1)
        warnings.warn("Found a real problem", UserWarning, stacklevel=1)
    assert [str(w.message) for w in caught] == ["Found a real problem"]


def test_eta_text():
    assert console.eta_text(42.4) == "42 s" and console.eta_text(185) == "3 min 05 s"


# What the console of a sweep must not show: Python warnings, W&B's warnings, Lightning's tips and chatter.
NOISE = ("Warning", "wandb: WARNING", "Tip:", "litlogger", "Restoring states", "Loaded model weights", "Total FLOPs")


def test_preproc_sweep_end_to_end(tmp_path):
    """The study's sweep with W&B (offline): three runs, their table, and a console that reads like a report."""
    overrides = [o for o in TINY if not o.startswith(("trainer.max_epochs", "logger"))] + ["trainer.max_epochs=4"]
    r = run_cli(["imgrec.run", "+experiment=preproc_sweep", f"paths.log_dir={tmp_path}",
                 "cache.views=2", *overrides, "report.enabled=true", "report.gallery=2"], cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-3000:]
    sweep = next((tmp_path / "preproc_sweep" / "multiruns").iterdir())
    rows = list(csv.DictReader((sweep / "results.csv").open()))
    assert [row["settings"] for row in rows] == ["+preproc=split", "+preproc=augment", "+preproc=augment_oversample"]
    for row in rows:
        assert 0.3 < float(row["test/f1_micro"]) <= 1 and float(row["seconds"]) > 0
    for k in range(3):
        run = sweep / str(k)
        assert (run / "metrics.json").is_file() and (run / ".hydra" / "config.yaml").is_file()
        assert (run / "checkpoints" / "last.ckpt").is_file()
    assert "test/f1_micro" in (sweep / "results.md").read_text() and "Results" in r.stdout

    out = r.stdout + r.stderr
    assert not [t for t in NOISE if t in out], [line for line in out.splitlines() if any(t in line for t in NOISE)]
    # stdout is a pipe, not a terminal: no bar and no redraw, one line per epoch (imgrec.utils.progress)
    assert "\r" not in out and "it/s" not in out and "img/s]" not in out
    assert all(re.search(rf"\] epoch {e}/4: .*val/f1_micro [\d.]+.* \([\d.]+ s\)$", r.stdout, re.M) for e in (1, 4))
    assert len(r.stdout) < 20_000, len(r.stdout)
    assert all(f"sweep: run {k}/3" in out for k in (1, 2, 3))
    assert re.search(r"sweep: run 1/3 done in \d+ s, about .* left", out)
    header = out[out.index("Results ("):].splitlines()[1]
    assert [c.strip() for c in header.strip("|").split("|")] == ["setting", "val F1", "test F1", "test P", "test R",
                                                                 "tuned F1", "s"]
