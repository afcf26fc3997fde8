"""``Predictor.probabilities`` runs the backbones on the feature cache's engines and the head eagerly: the
runtimes give eager's probabilities, a failing engine falls back to eager in one warning line."""

import importlib.util
import logging
from pathlib import Path

import numpy as np
import pytest

from imgrec.data.images import Decoding, decode_images
from imgrec.data.readers import list_images
from imgrec.features import engines
from imgrec.inference.predictor import load_predictor
from imgrec.utils.errors import ImgrecError

FIXTURE = Path(__file__).resolve().parent / "fixtures" / "checkpoint_2026_12"  # a small scratch CNN
RUNTIMES = [
    "onnxruntime",
    pytest.param("openvino", marks=pytest.mark.skipif(importlib.util.find_spec("openvino") is None,
                                                      reason="openvino is not installed")),
]


@pytest.fixture(scope="module")
def images() -> np.ndarray:
    return decode_images(list_images(FIXTURE / "images"), Decoding(128))[0]


@pytest.mark.parametrize("engine", RUNTIMES)
def test_a_runtime_gives_eager_probabilities(engine, images):
    eager = load_predictor(FIXTURE / "model.ckpt").probabilities(images, 4)
    fast = load_predictor(FIXTURE / "model.ckpt", engine=engine)
    np.testing.assert_allclose(fast.probabilities(images, 4), eager, atol=1e-5, rtol=0)  # 6 images: batches 4, 2
    assert [type(encode) for encode in fast.encoders] == [engines.RuntimeFeatures]
    np.testing.assert_allclose(eager, np.loadtxt(FIXTURE / "expected_probs.txt"), atol=2e-6)


def test_a_failing_engine_falls_back_to_eager_in_one_warning(images, monkeypatch, caplog):
    def broken(backbone, engine):
        raise RuntimeError("export failed\nwith a second line")

    monkeypatch.setattr(engines, "features_fn", broken)
    with caplog.at_level(logging.WARNING):
        probs = load_predictor(FIXTURE / "model.ckpt", engine="openvino").probabilities(images)
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING] == [
        "predict: engine openvino failed on the first batch of scratch (RuntimeError: export failed); predicting "
        "with eager instead"]
    np.testing.assert_allclose(probs, load_predictor(FIXTURE / "model.ckpt").probabilities(images), atol=0)


def test_an_unknown_engine_is_one_line_naming_predicts_key():
    with pytest.raises(ImgrecError, match=r"^engine=fast: expected one of auto, eager, "):
        load_predictor(FIXTURE / "model.ckpt", engine="fast")
