"""The selected ensemble's net (imgrec.models.probability_average): the weighted mean of its members'
probabilities, through the net, ``imgrec predict`` and the ONNX export alike."""

from dataclasses import replace
from functools import partial

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf
from torch import nn

from imgrec.data.images import Decoding, decode_images
from imgrec.data.synthetic import LABELS
from imgrec.evaluation.thresholds import Thresholds
from imgrec.inference.onnx_export import export_onnx
from imgrec.inference.onnx_predict import load_onnx
from imgrec.inference.predictions_io import list_inputs
from imgrec.inference.predictor import load_predictor
from imgrec.models.checkpoint import CheckpointMeta, read_checkpoint, write_checkpoint
from imgrec.models.probability_average import EPS, ProbabilityAverageNet, average_checkpoint
from imgrec.predict import predict as ckpt_predict
from imgrec.utils.errors import ImgrecError
from tests.inference.test_onnx import FAMILIES, SIZE, course, make_checkpoint, read_csv  # noqa: F401 (fixture)

WEIGHTS = [0.7, 0.3]
RULE = Thresholds(0.4, np.full(len(LABELS), 0.4), np.ones(len(LABELS), bool), "global")


class Fixed(nn.Module):
    """A member whose logits are given."""

    def __init__(self, logits: torch.Tensor, num_classes: int) -> None:
        super().__init__()
        self.logits = logits[:, :num_classes]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.logits


def test_forward_is_the_logit_of_the_weighted_mean_probability():
    a, b = torch.randn(6, 3) * 3, torch.randn(6, 3) * 3
    a[0, 0], b[0, 0] = 60.0, 60.0  # both certain: the mean is clamped, never an infinite logit
    net = ProbabilityAverageNet([partial(Fixed, a), partial(Fixed, b)], [7, 3], num_classes=3)
    out = net(torch.zeros(6, 3, 8, 8, dtype=torch.uint8))
    expected = 0.7 * torch.sigmoid(a) + 0.3 * torch.sigmoid(b)
    torch.testing.assert_close(torch.sigmoid(out), expected.clamp(EPS, 1 - EPS), atol=1e-6, rtol=0)
    assert torch.isfinite(out).all() and net.weights.tolist() == pytest.approx(WEIGHTS)
    assert "weights" not in net.state_dict()  # the net config holds them, once
    with pytest.raises(ImgrecError, match="positive weights"):
        ProbabilityAverageNet([partial(Fixed, a), partial(Fixed, b)], [1, 0], num_classes=3)


@pytest.fixture(scope="module")
def averaged(tmp_path_factory):
    """A scratch net at 48 px and a transfer net at 64 px averaged 0.7 / 0.3, with a threshold rule."""
    tmp = tmp_path_factory.mktemp("average")
    members = []
    for name in ("scratch", "transfer"):
        (tmp / name).mkdir()
        members.append(make_checkpoint(tmp / name, FAMILIES[name]))
    meta, ckpt = average_checkpoint([read_checkpoint(m) for m in members], WEIGHTS)
    # predict must not fetch a member's backbone weights: the checkpoint holds them
    assert meta.net_config.count("checkpoint: null") == 1
    meta = replace(meta, net_config=meta.net_config.replace("checkpoint: null", "checkpoint: /absent/weights.pt"))
    return members, write_checkpoint(ckpt, meta.with_thresholds(RULE), tmp / "selected.ckpt")


def test_the_checkpoint_predicts_the_weighted_mean_through_predict_and_onnx(averaged, course, tmp_path):  # noqa: F811
    members, path = averaged
    meta, _ = read_checkpoint(path)  # weights_only=True
    assert meta.input_sizes == [48, 64] and len(meta.backbones) == 2 and meta.image_size == SIZE
    x = np.random.default_rng(0).integers(0, 256, (9, SIZE, SIZE, 3), dtype=np.uint8)
    expected = sum(w * load_predictor(m).probabilities(x) for w, m in zip(WEIGHTS, members))
    predictor = load_predictor(path)
    assert predictor.rule == "global" and np.allclose(predictor.thresholds, 0.4)
    np.testing.assert_allclose(predictor.probabilities(x, 4), expected, atol=1e-6, rtol=0)
    assert expected.std() > 0.05  # not all saturated
    np.testing.assert_allclose(load_onnx(export_onnx(path, tmp_path / "m.onnx")).probabilities(x, 4), expected,
                               atol=1e-4, rtol=0)  # the bound tests/inference/test_onnx.py sets every family
    ckpt_predict(OmegaConf.create({"ckpt": str(path), "input": str(course), "out": str(tmp_path / "pt"),
                                   "batch_size": 16, "on_bad_image": "error", "thresholds": None, "engine": "eager",
                                   "max_pixels": None, "device": "cpu"}))
    _, names, probs, _ = read_csv(tmp_path / "pt" / "predictions.csv")
    inputs = list_inputs(course, list(LABELS))  # what predict read, in the order it wrote
    assert names == inputs.names
    images = decode_images(inputs.paths, Decoding(SIZE))[0]
    truth = sum(w * load_predictor(m).probabilities(images) for w, m in zip(WEIGHTS, members))
    np.testing.assert_allclose(probs, truth, atol=1e-6, rtol=0)  # written with 6 decimals


def test_members_that_share_a_frozen_backbone_run_it_once(averaged, tmp_path):
    (tmp_path / "a").mkdir(), (tmp_path / "b").mkdir()
    a, b = (make_checkpoint(tmp_path / name, FAMILIES["transfer"]) for name in ("a", "b"))
    (_, ckpt), (_, other) = read_checkpoint(a), read_checkpoint(b)
    for key, value in ckpt["state_dict"].items():  # b: a's backbone under another head
        if key.startswith("net.backbones."):
            other["state_dict"][key] = value.clone()
    torch.save(other, b)
    joint_meta, joint = average_checkpoint([read_checkpoint(a), read_checkpoint(b)], WEIGHTS)
    joint = write_checkpoint(joint, joint_meta, tmp_path / "selected.ckpt")
    x = np.random.default_rng(1).integers(0, 256, (5, SIZE, SIZE, 3), dtype=np.uint8)
    expected = sum(w * load_predictor(m).probabilities(x) for w, m in zip(WEIGHTS, (a, b)))
    predictor = load_predictor(joint)
    np.testing.assert_allclose(predictor.probabilities(x), expected, atol=1e-6, rtol=0)
    assert len(predictor.encoders) == 1 and predictor.order == [0, 0]
    members, path = averaged  # a scratch and a transfer member: nothing to share
    different = load_predictor(path)
    different.probabilities(x[:1])
    assert len(different.encoders) == 2 and different.order == [0, 1]


def test_members_must_share_labels_and_decoded_size():
    meta = CheckpointMeta(["a", "b"], "{}", "f", 64, ["x"], [64], [{"mean": [0.5], "std": [0.5]}])
    assert CheckpointMeta.of_members([meta, meta], "cfg").input_sizes == [64, 64]
    with pytest.raises(ImgrecError, match="members differ in label_names"):
        CheckpointMeta.of_members([meta, replace(meta, label_names=["a", "c"])], "cfg")
    with pytest.raises(ImgrecError, match="members differ in image_size: 64 and 128"):
        CheckpointMeta.of_members([meta, replace(meta, image_size=128)], "cfg")
    with pytest.raises(ImgrecError, match="other data"):
        CheckpointMeta.of_members([meta, replace(meta, data_fingerprint="g")], "cfg")
