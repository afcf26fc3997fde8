"""The checkpoint's metadata: one writer (``to_hparams``), one reader (``from_hparams``/``read_checkpoint``)."""

import numpy as np
import pytest
import torch
from hydra.utils import instantiate
from omegaconf import OmegaConf

from imgrec.evaluation.thresholds import Thresholds
from imgrec.models.checkpoint import CheckpointMeta, read_checkpoint, store_thresholds
from imgrec.utils.errors import ImgrecError
from tests.conftest import compose_cfg


@pytest.fixture
def saved(tmp_path):
    """A module's checkpoint as Lightning saves it: its hparams and state dict."""
    cfg = compose_cfg(tmp_path, ["+arch=ensemble", "model.net.input_size=40"])
    run_part = {"net_config": OmegaConf.to_yaml(cfg.model.net, resolve=True), "data_fingerprint": "f1",
                "image_size": 48}
    module = instantiate(cfg.model, label_names=["a", "b", "c"], meta=run_part)
    path = tmp_path / "m.ckpt"
    torch.save({"state_dict": module.state_dict(), "hyper_parameters": dict(module.hparams), "loops": {}}, path)
    return module, path


def test_module_writes_what_the_reader_reads(saved):
    module, path = saved
    meta, ckpt = read_checkpoint(path)
    assert meta == module.meta and meta.thresholds is None and meta.applied.rule == "0.5"
    assert meta.label_names == ["a", "b", "c"] and meta.image_size == 48 and meta.data_fingerprint == "f1"
    assert len(meta.backbones) == 2 and meta.input_sizes == [40, 40]  # read from the built net, per backbone
    assert set(meta.normalisation[0]) == {"mean", "std"} and "state_dict" in ckpt
    assert CheckpointMeta.from_hparams(meta.to_hparams()) == meta


def test_thresholds_are_stored_in_place(saved):
    module, path = saved
    t = Thresholds(0.4, np.array([0.3, 0.5, 0.6]), np.ones(3, bool), "global")
    store_thresholds(path, t)
    meta, ckpt = read_checkpoint(path)
    assert meta.thresholds.rule == "global" and meta.applied.applied().tolist() == [0.4] * 3
    assert meta.thresholds.per_class.tolist() == [0.3, 0.5, 0.6]
    assert meta == module.meta.with_thresholds(meta.thresholds) and "loops" in ckpt  # nothing else changed
    assert all(torch.equal(v, ckpt["state_dict"][k]) for k, v in module.state_dict().items())
    assert sorted(p.name for p in path.parent.glob("*.ckpt*")) == ["m.ckpt"]  # written atomically, no temp left
    # the stored layout is the contract older checkpoints were written in
    raw = torch.load(path, weights_only=True)["hyper_parameters"]
    assert raw["meta"]["threshold_rule"] == "global" and raw["meta"]["global_threshold"] == 0.4


def test_module_loading_a_checkpoint_applies_its_thresholds(saved):
    module, path = saved
    store_thresholds(path, Thresholds(0.4, np.array([0.3, 0.5, 0.6]), np.ones(3, bool), "per_label"))
    module.on_load_checkpoint(torch.load(path, weights_only=True))
    assert module.thresholds.tolist() == pytest.approx([0.3, 0.5, 0.6])


def test_what_is_missing_is_named(tmp_path):
    torch.save({"state_dict": {}, "hyper_parameters": {"label_names": ["a"], "meta": {"net_config": "x"}}},
               tmp_path / "partial.ckpt")
    with pytest.raises(ImgrecError, match=r"partial.ckpt: not an imgrec checkpoint with what predict needs "
                                          r"\(missing: input_sizes, normalisation, image_size\)"):
        read_checkpoint(tmp_path / "partial.ckpt")
    torch.save([1, 2], tmp_path / "list.ckpt")
    with pytest.raises(ImgrecError, match="list.ckpt: not an imgrec checkpoint"):
        read_checkpoint(tmp_path / "list.ckpt")
    bad = CheckpointMeta(["a", "b"], "x", "f", 48, ["b"], [48], [{"mean": [0], "std": [1]}]).to_hparams()
    bad["meta"].update({"thresholds": [0.1], "global_threshold": 0.1})
    torch.save({"state_dict": {}, "hyper_parameters": bad}, tmp_path / "wrong.ckpt")
    with pytest.raises(ImgrecError, match="wrong.ckpt: 1 thresholds for 2 labels"):
        read_checkpoint(tmp_path / "wrong.ckpt")
