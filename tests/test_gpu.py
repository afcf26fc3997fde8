"""The GPU suite (``make test-gpu``: ``pytest -m gpu``): every path on CUDA, at the tiny sizes of the other
tests, a few minutes in all. Without CUDA each test skips with one line saying why; ``make test`` leaves
them out (``-m "not slow and not gpu"``).

Runs use ``trainer=gpu`` as a user does: bf16-mixed, cuDNN autotuning, loader workers from the CPU
count with pinned memory. Learning is checked against the trivial predictor (``most_frequent_f1``);
GPU runs are not bit-reproducible (cuDNN autotuning, atomics), so comparisons carry stated tolerances.
"""

from __future__ import annotations

import inspect
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from imgrec.config.compose import compose_config
from imgrec.data.batch_augment import BatchAugment
from imgrec.data.synthetic import make_synthetic, write_course_format
from imgrec.inference.onnx_export import export_onnx
from imgrec.inference.onnx_predict import load_onnx
from imgrec.inference.predictor import load_predictor
from imgrec.models.backbones import create_backbone
from imgrec.models.transfer import TransferNet
from imgrec.run import train
from imgrec.training.run_summary import RunSummary
from imgrec.utils.device import no_cuda_reason
from tests.conftest import TINY, compose_cfg, most_frequent_f1, run_cli, run_in_process

pytestmark = [pytest.mark.gpu, pytest.mark.skipif(bool(no_cuda_reason()), reason=f"GPU suite: {no_cuda_reason()}")]

GPU = ["trainer=gpu", "trainer.max_epochs=8"]
FINETUNE = [*GPU, "model.net.freeze=false", "augment=seed"]
SCRATCH = [*GPU, "+arch=scratch_small", "trainer.max_epochs=15"]
POS_WEIGHT = "loss=pos_weight"  # the loss holds a buffer (per-label weights) that must move with the net


def learned(summary: RunSummary, margin: float = 0.1) -> None:
    """Test micro F1 at the thresholds chosen on val clearly above the trivial predictor's on the test split."""
    with np.load(Path(summary.checkpoint).parents[1] / "predictions.npz") as saved:
        trivial = most_frequent_f1(saved["test_targets"])
    f1 = summary.metrics.get("test_tuned/f1_micro", summary.metrics["test/f1_micro"])
    assert f1 > trivial + margin, (f1, trivial)


@pytest.fixture(scope="module")
def course(tmp_path_factory):
    """240 synthetic images as course-format JPEGs: trained on (data=idl) and predicted from."""
    return write_course_format(make_synthetic(240, seed=5), tmp_path_factory.mktemp("course"))


@pytest.fixture(scope="module")
def frozen(tmp_path_factory, course):
    """A frozen Lite0 run on the GPU: features extracted there (float32), the head trained in bf16-mixed."""
    tmp = tmp_path_factory.mktemp("frozen")
    return train(compose_config(tmp / "run", [*GPU, "data=idl", f"data.root={course}", "split.fractions=[0.6,0.2,0.2]",
                                              "model.net.input_size=64", "data.batch_size=32", "logger=none",
                                              "cache.engine=eager", "report.enabled=false",
                                              f"paths.cache_dir={tmp / 'cache'}"]))


@pytest.fixture(scope="module")
def finetuned(tmp_path_factory):
    """Lite0 fine-tuned end to end in bf16-mixed, the study's augmentation in the loader's workers."""
    return train(compose_cfg(tmp_path_factory.mktemp("finetuned"), FINETUNE))


def test_frozen_run(frozen):
    learned(frozen, margin=0.15)


def test_full_finetuning(finetuned):
    learned(finetuned)
    state = torch.load(finetuned.checkpoint, map_location="cpu", weights_only=True)["state_dict"]
    assert all(v.dtype != torch.bfloat16 for v in state.values())  # mixed precision keeps float32 weights


@pytest.mark.skipif("train_blocks" not in inspect.signature(TransferNet).parameters,
                    reason="partial fine-tuning (model.net.train_blocks) is not in this branch")
def test_partial_finetuning(tmp_path):
    learned(train(compose_cfg(tmp_path, [*GPU, "model.net.train_blocks=1"])))


def test_scratch_cnn(tmp_path):
    learned(train(compose_cfg(tmp_path, SCRATCH)), margin=0.05)


def test_ensemble(tmp_path):
    learned(train(compose_cfg(tmp_path, [*GPU, "model=ensemble", POS_WEIGHT])), margin=0.15)


def test_bf16_close_to_float32(tmp_path, finetuned):
    """Fine-tuning (the path bf16 speeds up) in float32 against bf16-mixed: same seed, same batches and
    augmentations. Allowed: 0.05 loss, 0.08 mAP, 0.12 F1 on the 30 test images (GPU runs are not
    bit-reproducible even in float32, and 8 epochs of fine-tuning amplify rounding)."""
    fp32 = train(compose_cfg(tmp_path, [*FINETUNE, "trainer.precision=32-true"]))
    learned(fp32)
    for key, tolerance in {"val/loss": 0.05, "test/loss": 0.05, "test/map": 0.08, "val/f1_micro": 0.12,
                           "test/f1_micro": 0.12}.items():
        assert abs(finetuned.metrics[key] - fp32.metrics[key]) <= tolerance, (key, finetuned.metrics[key],
                                                                             fp32.metrics[key])


def test_channels_last_features_equal_eager():
    images = torch.randint(0, 256, (8, 3, 64, 64), dtype=torch.uint8, device="cuda")
    plain = create_backbone("efficientnet_lite0", input_size=64).cuda().eval()
    nhwc = create_backbone("efficientnet_lite0", input_size=64).cuda().eval()
    nhwc.speed_up(channels_last=True)
    with torch.no_grad():
        a, b = plain(images), nhwc(images)
    assert float((a - b).norm() / a.norm()) < 1e-2  # other cuDNN kernels, TF32 rounding


@pytest.mark.parametrize("switch", ["model.channels_last=true", "model.compile=true"])
def test_switched_run_matches_eager(tmp_path, switch):
    """A scratch CNN, 2 epochs in float32 (so that only the switch differs), with and without the switch.
    compile: inductor compiles the train, eval and last-batch graphs at their first calls (about a minute)."""
    common = [*SCRATCH, POS_WEIGHT, "trainer.max_epochs=2", "trainer.precision=32-true", "data.n_images=160"]
    plain = train(compose_cfg(tmp_path / "plain", common))
    switched = train(compose_cfg(tmp_path / "switched", [*common, switch]))
    for key, tolerance in {"val/loss": 0.01, "test/loss": 0.01, "test/map": 0.05}.items():  # cuDNN's choices differ
        assert abs(plain.metrics[key] - switched.metrics[key]) < tolerance, (key, plain.metrics[key],
                                                                             switched.metrics[key])
    state = torch.load(switched.checkpoint, map_location="cpu", weights_only=True)["state_dict"]
    assert not any("_orig_mod" in k for k in state)  # predict loads it without the switch


def test_ddp_on_every_visible_gpu(tmp_path):
    """trainer=ddp (devices=-1: all visible GPUs, 1 is fine; NCCL) in its own process, as a user starts it."""
    r = run_cli(["imgrec.run", "trainer=ddp", f"paths.log_dir={tmp_path}", f"hydra.run.dir={tmp_path / 'run'}",
                 *TINY, f"paths.cache_dir={tmp_path / 'cache'}", "trainer.max_epochs=6"], cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-3000:]
    summary = RunSummary.read(tmp_path / "run")
    assert summary is not None and not summary.failed
    learned(summary, margin=0.15)


def test_predict_on_gpu_writes_the_cpus_results(frozen, course, tmp_path):
    """Same results.txt on CUDA as on the CPU. The GPU computes in float32 with cuDNN's TF32 convolutions,
    so probabilities differ a little; a decision may flip only where a probability sits within 0.01 of
    its threshold, and each flip is named (a warning in the test summary)."""
    out = {}
    for device in ("cuda", "cpu"):
        r = run_in_process(["imgrec.predict", f"ckpt={frozen.checkpoint}", f"input={course}",
                            f"out={tmp_path / device}", f"device={device}"], cwd=tmp_path)
        assert r.returncode == 0, r.stderr[-3000:]
        out[device] = np.loadtxt(tmp_path / device / "results.txt", dtype=int)
    predictor = load_predictor(frozen.checkpoint)
    images = make_synthetic(240, seed=5).images  # what write_course_format wrote, before JPEG
    probs = {d: load_predictor(frozen.checkpoint, device=torch.device(d)).probabilities(images)
             for d in ("cuda", "cpu")}
    assert np.abs(probs["cuda"] - probs["cpu"]).max() < 0.01
    flips = np.argwhere(out["cuda"] != out["cpu"])
    if len(flips):
        p = np.loadtxt(tmp_path / "cpu" / "predictions.csv", delimiter=",", skiprows=1, usecols=range(1, 15))
        near = [abs(p[i, j] - predictor.thresholds[j]) < 0.01 for i, j in flips]
        named = ", ".join(f"image {i + 1} label {predictor.label_names[j]} (p={p[i, j]:.4f}, "
                          f"threshold {predictor.thresholds[j]:.3f})" for i, j in flips)
        assert all(near), f"decisions flipped away from the threshold: {named}"
        warnings.warn(f"predict on the GPU flips {len(flips)} decision(s) at the threshold: {named}", stacklevel=1)


def test_onnx_export_of_a_gpu_checkpoint(finetuned, tmp_path):
    """last.ckpt as the GPU run saved it (its tensors were on CUDA) exports, and the ONNX model gives the
    checkpoint's probabilities on the CPU."""
    ckpt = Path(finetuned.checkpoint).with_name("last.ckpt")
    images = make_synthetic(16, seed=9).images
    onnx_probs = load_onnx(export_onnx(ckpt, tmp_path / "model.onnx")).probabilities(images)
    np.testing.assert_allclose(onnx_probs, load_predictor(ckpt).probabilities(images), atol=1e-4)


def test_resumed_gpu_run(tmp_path):
    """Fine-tuning with augment.on_device (the batches augmented on the GPU) killed after 2 epochs, as
    last.ckpt has it, resumed to 4: optimizer, schedule and the augmentation generator come back."""
    overrides = [*FINETUNE, "augment.on_device=true", "model.finetuning.frozen_epochs=1",
                 "callbacks.early_stopping.patience=10"]
    first = train(compose_cfg(tmp_path, [*overrides, "trainer.max_epochs=2"]))
    resumed = train(compose_cfg(tmp_path, [*overrides, "trainer.max_epochs=4", "resume=true"]))
    assert (first.epochs, resumed.epochs) == (2, 4)
    last = torch.load(tmp_path / "run" / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    steps_per_epoch = last["global_step"] // 4
    assert last["epoch"] == 3 and steps_per_epoch > 0 and last["global_step"] == 4 * steps_per_epoch
    assert "generator" in next(v for k, v in last["callbacks"].items() if "AugmentationState" in k)
    learned(resumed, margin=0.05)


def test_batch_augment_on_cuda():
    images = torch.randint(0, 256, (32, 3, 64, 64), dtype=torch.uint8, device="cuda")
    out = BatchAugment(seed=0)(images)
    assert out.device == images.device and out.dtype == torch.uint8 and out.shape == images.shape
    assert 0.4 <= (out != images).flatten(1).any(1).float().mean() < 1.0
