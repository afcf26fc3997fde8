"""Partial fine-tuning on cached activations (``model.net.train_blocks=K``) and flip TTA (``model.net.tta=flip``)
through ``imgrec.run``: the cached path is the whole net's function, trains the model the pixels train, and
its checkpoint predicts and exports like any other, with the TTA it was evaluated with."""

import collections

import numpy as np
import pytest
import torch
from hydra.utils import instantiate

from imgrec.config.compose import compose_config
from imgrec.data.images import Decoding
from imgrec.data.readers import read_course
from imgrec.data.synthetic import make_synthetic, write_course_format
from imgrec.features import cache as C
from imgrec.features.cache import FeatureDataModule
from imgrec.inference.onnx_export import export_onnx
from imgrec.inference.onnx_predict import load_onnx
from imgrec.inference.predictor import load_predictor
from imgrec.run import train
from tests.conftest import TINY, assert_one_line_error, most_frequent_f1, run_in_process

# Course-format JPEGs, so that predict reads the pixels training read; a larger test split than TINY's.
COMMON = [o for o in TINY if not o.startswith("data.")] + [
    "data=idl", "data.batch_size=32", "split.fractions=[0.7,0.15,0.15]", "trainer.max_epochs=5"]
PARTIAL = ["model.net.train_blocks=1", "model.net.tta=flip"]  # Lite0 at 64 px: 192 x 2 x 2 activations
FP16_LOGITS = 5e-3  # |cached - whole net| on logits: fp16 activations (measured ~1e-3 on logits of spread ~5)


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    return write_course_format(make_synthetic(400, seed=2), tmp_path_factory.mktemp("course"))


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return tmp_path_factory.mktemp("cache")


def run(folder, root, cache, overrides):
    cfg = compose_config(folder / "run", [*COMMON, f"data.root={root}", f"paths.cache_dir={cache}", *overrides])
    return cfg, train(cfg)


@pytest.fixture(scope="module")
def cached(tmp_path_factory, root, cache):
    return run(tmp_path_factory.mktemp("cached"), root, cache, PARTIAL)


@pytest.fixture(scope="module")
def pixels(tmp_path_factory, root, cache):
    return run(tmp_path_factory.mktemp("pixels"), root, cache, [*PARTIAL, "cache.features=false"])


def test_partial_model_learns(cached):
    cfg, summary = cached
    images = instantiate(cfg.data)
    images.setup()
    assert summary.metrics["test/f1_micro"] > most_frequent_f1(images.data.targets[images.split.test]) + 0.1


def cached_and_whole(cfg, ckpt, split: str) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """A split's logits from the cache (what training and evaluation ran) and from the checkpoint's whole
    net on the images, and the cached batch."""
    net = load_predictor(ckpt).net
    images = instantiate(cfg.data)
    datamodule = FeatureDataModule(images, net.cached_parts(), cfg.cache.dir, cfg.cache.views, cfg.cache.engine,
                                   mirror_eval=net.tta == "flip")
    datamodule.setup()
    x, _ = next(iter(datamodule.val_dataloader() if split == "val" else datamodule.test_dataloader()))
    indices = getattr(images.split, split)[:len(x)]
    pixels = torch.from_numpy(images.data.images[indices]).permute(0, 3, 1, 2)
    with torch.no_grad():
        return net.forward_cached(x), net(pixels), x


def test_cached_logits_equal_the_whole_nets_forward(cached):
    """fp16 activations below the cut, plain and mirrored, through the trained top stages and head: the
    logits of the checkpoint's net on the images, within FP16_LOGITS; in fp32 the function is the same
    (tests/models/test_cuts.py). The evaluation's own probabilities are these."""
    cfg, summary = cached
    logits, whole, x = cached_and_whole(cfg, summary.checkpoint, "test")
    assert x.dtype == torch.float16 and x.shape[1] == 2  # plain and mirrored views, for flip TTA
    assert whole.std() > 1.0  # logits spread out: the comparison is not between near-zero numbers
    torch.testing.assert_close(logits, whole, rtol=0, atol=FP16_LOGITS)
    with np.load(cfg.paths.output_dir + "/predictions.npz") as saved:
        np.testing.assert_allclose(saved["test_probs"][:len(x)], torch.sigmoid(logits).numpy(), atol=1e-6)


def test_pixels_train_the_same_model(cached, pixels):
    """``cache.features=false``: the same batches through the whole net, the same function (the cut's
    parts compose to the backbone exactly in fp32: tests/models/test_cuts.py). The runs differ by the
    fp16 rounding of the activations only, which Adam's normalised steps amplify on near-zero gradients:
    after 1 epoch the nets' probabilities differ by 1e-5 on average, after 5 by about 0.01 (measured), and
    val F1 on 60 images may then pick a neighbouring epoch. So: comparable metrics and predictions."""
    (cfg, cached_summary), (_, pixel_summary) = cached, pixels
    assert cached_summary.epochs == pixel_summary.epochs == 5
    with np.load(cfg.paths.output_dir + "/predictions.npz") as a, \
            np.load(pixels[0].paths.output_dir + "/predictions.npz") as b:
        for split in ("val", "test"):  # measured: correlation 0.99, decisions at 0.5 differ on 0.4-0.8% of pairs
            p, q = a[f"{split}_probs"], b[f"{split}_probs"]
            assert np.corrcoef(p.ravel(), q.ravel())[0, 1] > 0.97, split
            assert ((p > 0.5) != (q > 0.5)).mean() < 0.03, split
    for key in ("val/f1_micro", "test/f1_micro"):  # measured: within 0.008
        assert cached_summary.metrics[key] == pytest.approx(pixel_summary.metrics[key], abs=0.03), key


def test_predict_and_onnx_apply_the_stored_tta(cached, tmp_path):
    """The checkpoint's net config carries ``tta: flip``: predict and the ONNX model average the mirror's
    logits as evaluation did. Without TTA the same weights give other probabilities."""
    cfg, summary = cached
    data = read_course(cfg.data.root, Decoding(cfg.data.image_size))
    images = instantiate(cfg.data)
    images.setup()
    test = images.split.test
    predictor = load_predictor(summary.checkpoint)
    probs = predictor.probabilities(data.images[test])
    with np.load(cfg.paths.output_dir + "/predictions.npz") as saved:
        np.testing.assert_allclose(probs, saved["test_probs"], atol=2e-3)  # the cache's fp16, see above
    onnx = load_onnx(export_onnx(summary.checkpoint, tmp_path / "model.onnx"))
    np.testing.assert_allclose(onnx.probabilities(data.images[test]), probs, atol=1e-4)
    predictor.net.tta = "none"
    assert np.abs(predictor.probabilities(data.images[test]) - probs).max() > 0.01


def test_resumed_partial_run_ends_as_an_uninterrupted_one(tmp_path, root, cache, cached):
    """``resume=true`` continues from the last checkpoint: the top stages' weights, the optimizer's two
    param groups and the fine-tuning callback's state come back, so the metrics are the uninterrupted
    run's (the ``cached`` fixture, 5 epochs)."""
    run(tmp_path, root, cache, [*PARTIAL, "trainer.max_epochs=4"])
    _, resumed = run(tmp_path, root, cache, [*PARTIAL, "resume=true"])
    _, whole = cached
    assert resumed.epochs == whole.epochs == 5
    for key in ("val/f1_micro", "val/loss", "test/f1_micro", "test/loss"):
        assert resumed.metrics[key] == pytest.approx(whole.metrics[key], abs=1e-6), key


@pytest.mark.slow
def test_ensemble_with_augmented_views(tmp_path, root):
    """One cut per backbone (Lite0 and Lite2), augmented views of the train images: each backbone's
    activations cached on their own, concatenated per image, and the cached logits are the whole net's."""
    overrides = ["model=ensemble", "model.net.train_blocks=2", "augment=seed", "cache.views=2",
                 "trainer.max_epochs=2"]
    cfg, summary = run(tmp_path, root, tmp_path / "cache", overrides)
    files = sorted((tmp_path / "cache" / "features").glob("*.safetensors"))
    assert len(files) == 4  # (plain, augmented views) x (Lite0, Lite2)
    logits, whole, x = cached_and_whole(cfg, summary.checkpoint, "val")
    net = load_predictor(summary.checkpoint).net
    assert [cut.activation_shape for cut in net.cuts] == [(112, 4, 4), (120, 4, 4)]
    assert x.shape[1] == (112 + 120) * 16  # both cuts' activations, concatenated
    torch.testing.assert_close(logits, whole, rtol=0, atol=FP16_LOGITS)


def test_cache_that_would_not_fit_stops_before_extracting(tmp_path, root, monkeypatch):
    usage = collections.namedtuple("usage", "total used free")
    monkeypatch.setattr(C.shutil, "disk_usage", lambda path: usage(10**9, 10**9 - 10**5, 10**5))
    r = run_in_process(["imgrec.run", *COMMON, f"data.root={root}", f"paths.cache_dir={tmp_path / 'cache'}",
                        f"hydra.run.dir={tmp_path / 'run'}", *PARTIAL], cwd=tmp_path)
    # 400 images x 768 fp16 activations (192 x 2 x 2), plain and mirrored: 0.6 MB each, plus one file's
    # chunks while it is extracted
    assert_one_line_error(r, f"cache.dir={tmp_path / 'cache'}: the 2 cache file(s) to extract need 1.8 MB of disk "
                             "while extracting (1.2 MB once written), 0.1 MB free there")
    assert not list((tmp_path / "cache").rglob("*.safetensors"))


def test_more_blocks_than_stages_stops_in_one_line(tmp_path, root):
    r = run_in_process(["imgrec.run", *COMMON, f"data.root={root}", f"hydra.run.dir={tmp_path / 'run'}",
                        "model.net.train_blocks=8"], cwd=tmp_path)
    assert_one_line_error(r, "model.net.train_blocks=8: backbone 'efficientnet_lite0' has 7 stages")
