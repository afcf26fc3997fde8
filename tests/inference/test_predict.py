"""``imgrec.predict``: checkpoints carry what prediction needs; results.txt round-trips the test phase."""

import csv
import json
import shutil

import numpy as np
import pytest
import torch
from hydra.utils import instantiate
from omegaconf import OmegaConf
from sklearn.metrics import f1_score

from imgrec.config.compose import compose_config
from imgrec.data.readers import read_course
from imgrec.data.split import RandomSplit
from imgrec.data.synthetic import LABELS, make_synthetic, write_course_format
from imgrec.inference.predictor import load_predictor
from imgrec.predict import predict
from imgrec.run import train
from imgrec.utils.errors import ImgrecError
from tests.conftest import assert_one_line_error, compose_cfg, most_frequent_f1, run_in_process


def predict_cfg(ckpt, folder, out, **extra):
    return OmegaConf.create({"ckpt": str(ckpt), "input": str(folder), "out": str(out), "batch_size": 32,
                             "on_bad_image": "error", "max_pixels": None, "engine": "eager", **extra})


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A run trained on course-format JPEGs (so predict sees the pixels training saw) and its summary."""
    tmp = tmp_path_factory.mktemp("predict")
    root = write_course_format(make_synthetic(240, seed=5), tmp / "course")
    cfg = compose_config(tmp / "logs" / "run", [
        "data=idl", f"data.root={root}", "logger=none", "model.net.input_size=64",
        "model.net.head.hidden=256", "trainer.max_epochs=6", "data.batch_size=32", "split.fractions=[0.6,0.2,0.2]",
        "report.enabled=false"])
    return root, train(cfg)


def test_results_txt_round_trips_the_test_phase(trained, tmp_path):
    root, summary = trained
    r = run_in_process(["imgrec.cli", "predict", f"ckpt={summary.checkpoint}", f"input={root}", f"out={tmp_path / 'p'}",
                 "batch_size=32"], cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-3000:]
    y = np.loadtxt(tmp_path / "p" / "results.txt", dtype=int)
    data = read_course(root)
    assert y.shape == data.targets.shape == (240, 14) and set(np.unique(y)) <= {0, 1}
    test = RandomSplit((0.6, 0.2, 0.2), seed=42)(data.targets).test
    f1 = f1_score(data.targets[test], y[test], average="micro", zero_division=0)
    tuned = "thresholds" in torch.load(summary.checkpoint, weights_only=True)["hyper_parameters"]["meta"]
    reported = summary.metrics["test_tuned/f1_micro" if tuned else "test/f1_micro"]
    assert f1 == pytest.approx(reported, abs=1e-6)
    assert f1 > most_frequent_f1(data.targets[test]) + 0.15
    rows = list(csv.DictReader((tmp_path / "p" / "predictions.csv").open()))
    assert [row["file"] for row in rows[:3]] == ["im1.jpg", "im2.jpg", "im3.jpg"]
    assert list(rows[0])[1:-2] == [f"p_{name}" for name in LABELS] and list(rows[0])[-2:] == ["labels", "skipped"]
    for row, flags in zip(rows, y):
        assert row["labels"].split() == [name for name, on in zip(LABELS, flags) if on]
    scored = json.loads((tmp_path / "p" / "scores.json").read_text())
    assert scored["images"] == 240 and scored["f1_micro"] == pytest.approx(
        f1_score(data.targets, y, average="micro", zero_division=0))


def test_plain_folder_in_numeric_order(trained, tmp_path):
    root, summary = trained
    images = tmp_path / "images"
    images.mkdir()
    for n in (10, 2, 1):
        shutil.copy(root / "images" / f"im{n}.jpg", images)
    y = predict(predict_cfg(summary.checkpoint, images, tmp_path / "p"))
    rows = list(csv.DictReader((tmp_path / "p" / "predictions.csv").open()))
    assert [row["file"] for row in rows] == ["im1.jpg", "im2.jpg", "im10.jpg"] and y.shape == (3, 14)
    assert not (tmp_path / "p" / "scores.json").exists()  # no annotations: nothing to score


@pytest.mark.parametrize("arch", ["scratch_medium", "ensemble"])
def test_checkpoint_rebuilds_each_family(tmp_path, arch):
    """Net config, input sizes and normalisation from the checkpoint; weights from its state dict."""
    cfg = compose_cfg(tmp_path, [f"+arch={arch}", "model.net.input_size=40"])
    meta = {"net_config": OmegaConf.to_yaml(cfg.model.net, resolve=True), "data_fingerprint": "x", "image_size": 48}
    module = instantiate(cfg.model, label_names=["a", "b", "c"], meta=meta).eval()
    for p in module.net.head.parameters():  # not the fresh initialisation a rebuild starts from
        torch.nn.init.normal_(p)
    torch.save({"state_dict": module.state_dict(), "hyper_parameters": dict(module.hparams)}, tmp_path / "m.ckpt")
    predictor = load_predictor(tmp_path / "m.ckpt")
    assert predictor.label_names == ["a", "b", "c"] and predictor.image_size == 48
    assert predictor.thresholds.tolist() == [0.5] * 3  # none stored: 0.5
    x = np.random.default_rng(0).integers(0, 256, (4, 48, 48, 3), dtype=np.uint8)
    with torch.no_grad():
        expected = torch.sigmoid(module(torch.from_numpy(x).permute(0, 3, 1, 2))).numpy()
    np.testing.assert_allclose(predictor.probabilities(x), expected, atol=1e-5)


def test_labels_differing_from_the_checkpoint(trained, tmp_path):
    root, summary = trained
    course = tmp_path / "course"
    shutil.copytree(root, course)
    (course / "annotations" / "disc.txt").rename(course / "annotations" / "people.txt")
    with pytest.raises(ImgrecError, match=r"labels differ from the model's \(not in the model: "
                                          r"\['people'\]; missing: \['disc'\]\)"):
        predict(predict_cfg(summary.checkpoint, course, tmp_path / "p"))


def test_folder_without_readable_images(trained, tmp_path):
    _, summary = trained
    (tmp_path / "empty").mkdir()
    with pytest.raises(ImgrecError, match="no image files"):
        predict(predict_cfg(summary.checkpoint, tmp_path / "empty", tmp_path / "p"))
    (tmp_path / "empty" / "im1.jpg").write_text("not a jpeg")
    with pytest.raises(ImgrecError, match="im1.jpg: not an image file"):
        predict(predict_cfg(summary.checkpoint, tmp_path / "empty", tmp_path / "p"))
    with pytest.raises(ImgrecError, match="no readable images"):
        predict(predict_cfg(summary.checkpoint, tmp_path / "empty", tmp_path / "p", on_bad_image="skip"))


def test_missing_or_foreign_checkpoint_is_one_line(tmp_path):
    r = run_in_process(["imgrec.predict", f"ckpt={tmp_path / 'nope.ckpt'}", f"input={tmp_path}",
                        f"out={tmp_path / 'p'}"], cwd=tmp_path)
    assert_one_line_error(r, "nope.ckpt: checkpoint not found")
    torch.save({"state_dict": {}}, tmp_path / "other.ckpt")
    with pytest.raises(ImgrecError, match="not an imgrec checkpoint"):
        load_predictor(tmp_path / "other.ckpt")
    (tmp_path / "junk.ckpt").write_text("junk")
    with pytest.raises(ImgrecError, match="junk.ckpt: not a readable checkpoint"):
        load_predictor(tmp_path / "junk.ckpt")
