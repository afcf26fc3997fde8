import json

import pytest
from hydra.utils import instantiate

from imgrec.run import train
from tests.conftest import compose_cfg, most_frequent_f1


def test_frozen_transfer_learns(cfg_tiny, tmp_path):
    summary = train(cfg_tiny)
    dm = instantiate(cfg_tiny.data)
    dm.setup()
    baseline = most_frequent_f1(dm.data.targets[dm.split.test])
    f1 = summary.metrics["test/f1_micro"]
    assert f1 > baseline + 0.25, (f1, baseline)
    run = tmp_path / "run"
    assert json.loads((run / "metrics.json").read_text())["metrics"]["test/f1_micro"] == f1
    assert (run / "checkpoints" / "last.ckpt").is_file() and summary.checkpoint.endswith(".ckpt")


@pytest.mark.parametrize("extra", [[], ["model=ensemble", "balance=sampler"]], ids=["lite0", "ensemble_sampler"])
def test_feature_cache_equals_full_path(tmp_path, extra):
    """Same seed, no augmentation: training on cached features gives the uncached path's metrics,
    for one backbone and for an ensemble drawn by sampler weights."""
    runs = {}
    for cached in (True, False):
        cfg = compose_cfg(tmp_path / str(cached), [f"cache.features={cached}", "trainer.max_epochs=3",
                                                   "data.n_images=160", *extra])
        runs[cached] = train(cfg).metrics
    for key in ("val/f1_micro", "test/f1_micro", "test/loss"):
        assert abs(runs[True][key] - runs[False][key]) < 1e-4, key


def test_ensemble_reuses_its_members_cached_features(tmp_path):
    """Features are cached per backbone: after a Lite0 run, the Lite0 + Lite2 ensemble extracts Lite2 only."""
    common = ["trainer.max_epochs=1", "data.n_images=160", f"paths.cache_dir={tmp_path / 'cache'}"]
    train(compose_cfg(tmp_path / "single", common))
    features = tmp_path / "cache" / "features"
    single = set(features.glob("*.safetensors"))
    train(compose_cfg(tmp_path / "ensemble", [*common, "model=ensemble"]))
    assert len(single) == 1 and single < set(features.glob("*.safetensors"))
    assert len(list(features.glob("*.safetensors"))) == 2


def test_progress_bar_off_leaves_out_the_bar_callback(tmp_path):
    """``+trainer.enable_progress_bar=false`` turns the configured bar callback off, rather than Lightning
    refusing the pair."""
    cfg = compose_cfg(tmp_path, ["trainer.max_epochs=1", "data.n_images=160",
                                 "+trainer.enable_progress_bar=false"])
    assert "progress_bar" in cfg.callbacks
    assert train(cfg).metrics["test/f1_micro"] >= 0
