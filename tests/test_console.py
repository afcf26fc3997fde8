"""imgrec.console; the console of a whole sweep is checked in tests/test_sweep.py."""

import warnings

import pytest
from omegaconf import OmegaConf

from imgrec import console


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
