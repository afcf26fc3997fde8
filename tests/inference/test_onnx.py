"""``imgrec export`` to ONNX and ``imgrec predict model=<file.onnx>``: the same predictions as the checkpoint,
for each model family, without torch, Lightning or Hydra; bad input is one line naming the file."""

import csv
import json
import shutil
import subprocess
import sys

import numpy as np
import onnx
import pytest
import torch
import yaml
from hydra.utils import instantiate
from omegaconf import OmegaConf
from PIL import Image
from safetensors import safe_open

from imgrec.data.synthetic import LABELS, make_synthetic, write_course_format
from imgrec.evaluation.thresholds import Thresholds
from imgrec.inference.onnx_export import export, export_onnx
from imgrec.inference.onnx_predict import DEFAULTS, load_onnx
from imgrec.inference.onnx_predict import predict as onnx_predict
from imgrec.inference.predictor import load_predictor
from imgrec.predict import predict as ckpt_predict
from imgrec.utils.errors import ImgrecError
from tests.conftest import ROOT, assert_one_line_error, compose_cfg, run_cli

SIZE = 56  # decoded image size of the small models
NO_WEIGHTS = ["model.net.backbones.0.pretrained=false"]  # parity needs no pretrained weights: faster to build
FAMILIES = {  # small models of each family, at small input sizes (the ensemble's members at two sizes)
    "scratch": ["+arch=scratch_small", "model.net.input_size=48"],
    "transfer": [*NO_WEIGHTS, "model.net.backbones.0.input_size=64"],
    "ensemble": ["+arch=ensemble", *NO_WEIGHTS, "model.net.backbones.0.input_size=64",
                 "model.net.backbones.1.name=efficientnet_lite0", "model.net.backbones.1.pretrained=false",
                 "model.net.backbones.1.input_size=72"],
}
TUNED = Thresholds(0.45, np.array([0.3 + 0.03 * j for j in range(len(LABELS))]), np.ones(len(LABELS), bool),
                   "per_label")


def make_checkpoint(tmp_path, overrides, thresholds=None):
    """A checkpoint as ``imgrec.run`` writes its hyperparameters, with a random (not freshly initialised) head."""
    cfg = compose_cfg(tmp_path, overrides)
    meta = {"net_config": OmegaConf.to_yaml(cfg.model.net, resolve=True), "data_fingerprint": "abc123",
            "image_size": SIZE}
    module = instantiate(cfg.model, label_names=list(LABELS), meta=meta).eval()
    if thresholds is not None:
        module.set_thresholds(thresholds)
    torch.manual_seed(0)
    last = [m for m in module.net.head.modules() if isinstance(m, torch.nn.Linear)][-1]
    torch.nn.init.normal_(last.weight)
    torch.nn.init.normal_(last.bias)
    with torch.no_grad():  # logits of spread ~2 on random images: probabilities neither all 0.5 nor saturated
        x = torch.randint(0, 256, (8, 3, SIZE, SIZE), dtype=torch.uint8)
        scale = 2 / module.net(x).std()
        last.weight.mul_(scale)
        last.bias.mul_(scale)
    path = tmp_path / "model.ckpt"
    torch.save({"state_dict": module.state_dict(), "hyper_parameters": dict(module.hparams)}, path)
    return path


@pytest.fixture(scope="module")
def course(tmp_path_factory):
    return write_course_format(make_synthetic(40, seed=11, image_size=SIZE), tmp_path_factory.mktemp("course"))


@pytest.fixture(scope="module", params=list(FAMILIES))
def exported(request, tmp_path_factory):
    tmp = tmp_path_factory.mktemp(request.param)
    ckpt = make_checkpoint(tmp, FAMILIES[request.param], TUNED if request.param == "transfer" else None)
    return ckpt, export_onnx(ckpt, tmp / "model.onnx")


def settings(model, folder, out, **extra):
    return {**DEFAULTS, "model": str(model), "input": str(folder), "out": str(out), "batch_size": 16, **extra}


def read_csv(path):
    rows = list(csv.reader(path.open()))
    assert rows[0][-2:] == ["labels", "skipped"] and all(r[-1] == "" for r in rows[1:])  # nothing skipped here
    return rows[0], [r[0] for r in rows[1:]], np.array([r[1:-2] for r in rows[1:]], float), [r[-2] for r in rows[1:]]


def test_parity_with_the_checkpoint(exported, course, tmp_path):
    ckpt, model = exported
    torch_pred, onnx_pred = load_predictor(ckpt), load_onnx(model)
    x = np.random.default_rng(0).integers(0, 256, (9, SIZE, SIZE, 3), dtype=np.uint8)  # 9: batches of 4, 4, 1
    p_torch, p_onnx = torch_pred.probabilities(x, 4), onnx_pred.probabilities(x, 4)
    assert p_torch.std() > 0.05  # probabilities spread out, not all saturated
    np.testing.assert_allclose(p_onnx, p_torch, atol=1e-4, rtol=0)
    np.testing.assert_array_equal(onnx_pred.thresholds, torch_pred.thresholds)
    # The course folder through both commands: identical results.txt and scores.json
    ckpt_predict(OmegaConf.create({"ckpt": str(ckpt), "input": str(course), "out": str(tmp_path / "pt"),
                                   "batch_size": 16, "on_bad_image": "error", "max_pixels": None, "thresholds": None,
                                   "engine": "eager"}))
    onnx_predict(settings(model, course, tmp_path / "ox"))
    for name in ("results.txt", "scores.json"):
        assert (tmp_path / "ox" / name).read_text() == (tmp_path / "pt" / name).read_text()
    (head_pt, names_pt, probs_pt, labels_pt), (head_ox, names_ox, probs_ox, labels_ox) = (
        read_csv(tmp_path / d / "predictions.csv") for d in ("pt", "ox"))
    assert head_ox == head_pt and names_ox == names_pt == [f"im{n}.jpg" for n in range(1, 41)]
    assert labels_ox == labels_pt
    np.testing.assert_allclose(probs_ox, probs_pt, atol=1.1e-4, rtol=0)
    y = np.loadtxt(tmp_path / "ox" / "results.txt", dtype=int)
    assert y.shape == (40, len(LABELS)) and 0 < y.mean() < 1


def test_metadata_and_threshold_rules(tmp_path):
    ckpt = make_checkpoint(tmp_path, FAMILIES["scratch"], TUNED)
    model = export_onnx(ckpt, tmp_path / "model.onnx")
    props = {p.key: p.value for p in onnx.load(str(model)).metadata_props}
    assert props["imgrec.format"] == "1" and json.loads(props["imgrec.label_names"]) == list(LABELS)
    assert json.loads(props["imgrec.image_size"]) == SIZE and json.loads(props["imgrec.data_fingerprint"]) == "abc123"
    inputs = onnx.load(str(model)).graph.input[0].type.tensor_type
    assert inputs.elem_type == onnx.TensorProto.UINT8
    assert [d.dim_param or d.dim_value for d in inputs.shape.dim] == ["batch", SIZE, SIZE, 3]
    assert load_onnx(model).rule == "per_label"
    np.testing.assert_array_equal(load_onnx(model).thresholds, np.float32(TUNED.per_class))
    np.testing.assert_array_equal(load_onnx(model, "global").thresholds, np.full(len(LABELS), np.float32(0.45)))
    np.testing.assert_array_equal(load_onnx(model, "0.5").thresholds, np.full(len(LABELS), 0.5, np.float32))
    with pytest.raises(ImgrecError, match="thresholds=best: expected one of 0.5, global, per_label"):
        load_onnx(model, "best")
    weights = export(OmegaConf.create({"ckpt": str(ckpt), "format": "safetensors", "out": None}))
    assert weights == ckpt.with_suffix(".safetensors")
    with safe_open(str(weights), "np") as f:
        assert json.loads(f.metadata()["label_names"]) == list(LABELS)
    with pytest.raises(ImgrecError, match="format=tflite: expected one of onnx, safetensors"):
        export(OmegaConf.create({"ckpt": str(ckpt), "format": "tflite", "out": None}))
    (tmp_path / "untuned").mkdir()
    untuned = export_onnx(make_checkpoint(tmp_path / "untuned", FAMILIES["scratch"]), tmp_path / "untuned.onnx")
    assert load_onnx(untuned).rule == "0.5"
    with pytest.raises(ImgrecError, match="untuned.onnx: thresholds=global, but the model stores no tuned"):
        load_onnx(untuned, "global")


def test_export_then_predict_without_torch(tmp_path, course):
    """``imgrec export`` from the command line, then ``imgrec predict model=...`` in a process that must
    never import the training stack, against the checkpoint path in this one."""
    ckpt = make_checkpoint(tmp_path, FAMILIES["scratch"], TUNED)
    r = run_cli(["imgrec.cli", "export", f"ckpt={ckpt}", "format=onnx"], cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-3000:]
    model = ckpt.with_suffix(".onnx")
    assert model.is_file() and not (tmp_path / ".hydra").exists()
    code = ("import sys; from imgrec.cli import main; "
            f"main(['predict', 'model={model}', 'input={course / 'images'}', 'out={tmp_path / 'ox'}']); "
            "print('loaded:', sorted(m for m in ('torch', 'pytorch_lightning', 'lightning', 'lightning_fabric', "
            "'hydra', 'omegaconf') if m in sys.modules))")
    r = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    assert r.stdout.strip().splitlines()[-1] == "loaded: []"
    ckpt_predict(OmegaConf.create({"ckpt": str(ckpt), "input": str(course / "images"), "out": str(tmp_path / "pt"),
                                   "batch_size": 64, "on_bad_image": "error", "max_pixels": None, "thresholds": None,
                                   "engine": "eager"}))
    assert (tmp_path / "ox" / "results.txt").read_text() == (tmp_path / "pt" / "results.txt").read_text()
    assert not (tmp_path / "ox" / "scores.json").exists()  # plain folder of images: nothing to score


@pytest.fixture(scope="module")
def small_model(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("small")
    return export_onnx(make_checkpoint(tmp, FAMILIES["scratch"]), tmp / "model.onnx")


def onnx_cli(tmp_path, model, folder, *extra):
    return run_cli(["imgrec.cli", "predict", f"model={model}", f"input={folder}", f"out={tmp_path / 'out'}", *extra],
                   cwd=tmp_path, timeout=120)


def test_bad_model_files_are_one_line(small_model, course, tmp_path):
    foreign = onnx.load(str(small_model))
    del foreign.metadata_props[:]
    onnx.save(foreign, str(tmp_path / "foreign.onnx"))
    assert_one_line_error(onnx_cli(tmp_path, tmp_path / "foreign.onnx", course),
                          "foreign.onnx: not an imgrec ONNX model (no imgrec metadata)")
    data = small_model.read_bytes()
    (tmp_path / "truncated.onnx").write_bytes(data[:len(data) // 2])
    assert_one_line_error(onnx_cli(tmp_path, tmp_path / "truncated.onnx", course),
                          "truncated.onnx: not a readable ONNX model")
    (tmp_path / "junk.onnx").write_bytes(b"\x00junk" * 100)
    assert_one_line_error(onnx_cli(tmp_path, tmp_path / "junk.onnx", course), "junk.onnx: not a readable ONNX model")
    assert_one_line_error(onnx_cli(tmp_path, tmp_path / "none.onnx", course), "none.onnx: model file not found")
    assert_one_line_error(onnx_cli(tmp_path, small_model, course, "colour=red"), "colour=red: expected key=value")


def test_bad_folders_are_one_line(small_model, course, tmp_path):
    (tmp_path / "empty").mkdir()
    assert_one_line_error(onnx_cli(tmp_path, small_model, tmp_path / "empty"), "empty: no image files")
    other = tmp_path / "other"
    shutil.copytree(course, other)
    (other / "annotations" / f"{LABELS[0]}.txt").rename(other / "annotations" / "wolf.txt")
    assert_one_line_error(onnx_cli(tmp_path, small_model, other),
                          f"annotations: labels differ from the model's (not in the model: ['wolf']; "
                          f"missing: ['{LABELS[0]}'])")


def test_images_of_another_size_are_resized_with_a_note(small_model, course, tmp_path, caplog):
    """Resized as training decoded them (the same PIL call), so the probabilities are those of the
    resized pixels; the log says so once."""
    folder = tmp_path / "big"
    folder.mkdir()
    for n in (1, 2, 3):
        Image.open(course / "images" / f"im{n}.jpg").resize((90, 70)).save(folder / f"im{n}.png")
    with caplog.at_level("WARNING"):
        onnx_predict(settings(small_model, folder, tmp_path / "out"))
    notes = [r.message for r in caplog.records if "not 56x56" in r.message]
    assert len(notes) == 1 and "3 of 3 images" in notes[0] and "im1.png, 90x70" in notes[0]
    pixels = np.stack([np.asarray(Image.open(folder / f"im{n}.png").convert("RGB").resize((SIZE, SIZE),
                                                                                             Image.BILINEAR))
                       for n in (1, 2, 3)])
    _, names, probs, _ = read_csv(tmp_path / "out" / "predictions.csv")
    assert names == ["im1.png", "im2.png", "im3.png"]
    np.testing.assert_allclose(probs, load_onnx(small_model).probabilities(pixels), atol=1e-6)


def test_settings_match_the_checkpoint_command():
    """The ONNX command takes the checkpoint command's settings, with the same defaults (but ``device`` and
    ``engine``: an ONNX model runs on onnxruntime's CPU provider)."""
    ckpt_defaults = {k: v for k, v in yaml.safe_load((ROOT / "conf" / "predict.yaml").read_text()).items()
                     if k not in ("hydra", "ckpt", "input", "device", "engine")}
    assert ckpt_defaults == {k: v for k, v in DEFAULTS.items() if k not in ("model", "input")}
