"""The feature cache's engine (``cache.engine``): a runtime's cached features agree with eager's and train
the same head, each engine caches under its own key, and a failing engine falls back to eager in one line."""

import importlib.util
import logging

import pytest
import torch
from hydra.utils import instantiate
from safetensors.torch import load_file

from imgrec.features import cache as F
from imgrec.features import engines
from imgrec.run import train
from imgrec.utils.errors import ImgrecError
from tests.conftest import compose_cfg, most_frequent_f1

RUNTIMES = [
    "onnxruntime",
    pytest.param("openvino", marks=pytest.mark.skipif(importlib.util.find_spec("openvino") is None,
                                                      reason="openvino is not installed")),
]
COMMON = ["trainer.max_epochs=3", "data.n_images=160"]


def run(tmp_path, name: str, engine: str, caplog) -> tuple[dict, list[str]]:
    """Train with ``cache.engine=engine`` on a cache shared by the test's runs; its metrics and feature log lines."""
    caplog.clear()
    with caplog.at_level(logging.INFO, logger=F.__name__):
        metrics = train(compose_cfg(tmp_path / name, [*COMMON, f"cache.engine={engine}",
                                                      f"paths.cache_dir={tmp_path / 'cache'}"])).metrics
    return metrics, [r.getMessage() for r in caplog.records if r.name == F.__name__]


def cached_files(tmp_path) -> set:
    return set((tmp_path / "cache" / "features").glob("*.safetensors"))


@pytest.mark.parametrize("engine", RUNTIMES)
def test_runtime_features_agree_with_eager_and_train_the_same_head(tmp_path, caplog, engine):
    eager, _ = run(tmp_path, "eager", "eager", caplog)
    (eager_file,) = cached_files(tmp_path)
    metrics, lines = run(tmp_path, engine, engine, caplog)
    (runtime_file,) = cached_files(tmp_path) - {eager_file}  # its own key: eager's features are not reused
    assert any(f"with {engine}" in line for line in lines if line.startswith("features: extracting"))
    reference, features = (load_file(f)["features"] for f in (eager_file, runtime_file))
    assert features.shape == reference.shape
    torch.testing.assert_close(features, reference, atol=1e-4 * reference.abs().max().item(), rtol=0)
    for key in ("val/f1_micro", "test/f1_micro"):
        assert metrics[key] == pytest.approx(eager[key], abs=1e-9), key
    assert metrics["test/loss"] == pytest.approx(eager["test/loss"], abs=1e-4)
    images = instantiate(compose_cfg(tmp_path / "data", COMMON).data)
    images.setup()
    assert eager["test/f1_micro"] > most_frequent_f1(images.data.targets[images.split.test]) + 0.1  # it learned


def test_failing_engine_falls_back_to_eager_in_one_warning(tmp_path, caplog, monkeypatch):
    def broken(backbone, engine):
        raise RuntimeError("export failed\nwith a second line")

    monkeypatch.setattr(engines, "features_fn", broken)
    fallback, lines = run(tmp_path, "broken", "onnxruntime", caplog)
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING and r.name == engines.__name__]
    assert warnings == ["features: engine onnxruntime failed on the first batch of efficientnet_lite0 "
                        "(RuntimeError: export failed); extracting with eager instead"]
    assert any("with eager" in line for line in lines if line.startswith("features: extracting"))
    eager, lines = run(tmp_path, "eager", "eager", caplog)  # the fallback cached eager's features under eager's key
    assert any(line.startswith("features: cache hit") for line in lines)
    assert not any(line.startswith("features: extracting") for line in lines)
    assert fallback["test/f1_micro"] == eager["test/f1_micro"]


def test_unknown_engine_fails_in_one_line(tmp_path):
    with pytest.raises(ImgrecError, match=r"^cache.engine=foo: expected one of auto, eager, channels_last"):
        train(compose_cfg(tmp_path, [*COMMON, "cache.engine=foo"]))
