"""``imgrec.features.engines``: every engine computes the backbone's features (rounding aside), and a head fitted on
eager features scores the same on each engine's."""

import importlib.util

import numpy as np
import pytest
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import f1_score
from sklearn.multiclass import OneVsRestClassifier

from imgrec.data.synthetic import make_synthetic
from imgrec.features.engines import features_fn, resolve_engine
from imgrec.models.backbones import create_backbone
from imgrec.utils.errors import ImgrecError
from tests.conftest import most_frequent_f1

ENGINES = [
    "channels_last",
    "onnxruntime",
    pytest.param("openvino", marks=pytest.mark.skipif(importlib.util.find_spec("openvino") is None,
                                                      reason="openvino is not installed")),
    pytest.param("compile", marks=pytest.mark.slow),  # compiling takes minutes on 2 cores
]


@pytest.fixture(scope="module")
def eager():
    """Lite0 at 64 px (ImageNet weights) on synthetic images, and its eager features (train, test)."""
    data = make_synthetic(160, seed=2)
    backbone = create_backbone("efficientnet_lite0", input_size=64)
    x = torch.from_numpy(data.images).permute(0, 3, 1, 2)
    features = torch.cat([features_fn(backbone, "eager")(x[i:i + 40]) for i in range(0, len(x), 40)]).numpy()
    head = OneVsRestClassifier(LogisticRegression(max_iter=2000)).fit(features[:120], data.targets[:120])
    return backbone, x, features, data.targets, head


@pytest.mark.parametrize("engine", ENGINES)
def test_engine_agrees_with_eager(eager, engine):
    backbone, x, reference, targets, head = eager
    fn = features_fn(backbone, engine)
    features = torch.cat([fn(x[i:i + 40]) for i in range(0, len(x), 40)]).numpy()  # batches of 40 and the size
    assert features.shape == reference.shape and features.dtype == np.float32
    np.testing.assert_allclose(features, reference, atol=1e-4 * np.abs(reference).max(), rtol=0)
    test = slice(120, None)
    f1 = {name: f1_score(targets[test], head.predict(f[test]), average="micro", zero_division=0)
          for name, f in (("eager", reference), (engine, features))}
    assert f1[engine] == pytest.approx(f1["eager"], abs=1e-9)
    assert f1["eager"] > most_frequent_f1(targets[test]) + 0.1  # the head learned something to compare
    assert not any(b.channels_last for b in [backbone])  # the backbone itself is left as it was


def test_unknown_engine_is_one_line():
    with pytest.raises(ImgrecError, match="engine=tensorrt: expected one of eager, channels_last"):
        features_fn(create_backbone("efficientnet_lite0", pretrained=False), "tensorrt")


def test_auto_is_the_fastest_installed_runtime_on_cpu_and_eager_on_gpu(monkeypatch):
    cpu, gpu = torch.device("cpu"), torch.device("cuda")
    for setting in ("auto", "openvino", "eager"):
        assert resolve_engine(setting, gpu) == "eager"  # in float32, whatever the trainer's precision
    assert resolve_engine("onnxruntime", cpu) == "onnxruntime"
    installed = {"openvino", "onnxruntime"}
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: object() if name in installed else None)
    for fastest in ("openvino", "onnxruntime", "eager"):  # bench engines: OpenVINO, then onnxruntime, then eager
        assert resolve_engine("auto", cpu) == fastest
        installed.discard(fastest)
    with pytest.raises(ImgrecError, match="^cache.engine=foo: expected one of auto, eager, channels_last"):
        resolve_engine("foo", cpu)
