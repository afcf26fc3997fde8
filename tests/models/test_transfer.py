from functools import partial

import pytest
import pytorch_lightning as pl
import torch
from hydra.utils import instantiate
from torch.utils.data import DataLoader, TensorDataset

from imgrec.models.backbones import create_backbone
from imgrec.models.heads import Head
from imgrec.models.module import MultiLabelModule
from imgrec.models.transfer import TransferNet, UnfreezeBackbones
from imgrec.utils.errors import ImgrecError
from tests.conftest import compose_cfg


@pytest.mark.parametrize("hidden, widths", [(0, [3]), (256, [256, 3]), (17, [17, 3])])
def test_head_hidden_layer(hidden, widths):
    head = Head(10, 3, hidden=hidden)
    assert [m.out_features for m in head if isinstance(m, torch.nn.Linear)] == widths
    assert any(isinstance(m, torch.nn.ReLU) for m in head) == (hidden > 0)


def test_net_input_size_sets_every_backbone():
    net = TransferNet([create_backbone("efficientnet_lite0", pretrained=False),
                       create_backbone("efficientnet_lite1", pretrained=False)], num_classes=2, input_size=96)
    assert [b.input_size for b in net.backbones] == [96, 96]


def test_ensemble_config_concatenates_two_backbones(tmp_path):
    cfg = compose_cfg(tmp_path, ["model=ensemble"])
    net = instantiate(cfg.model.net)(num_classes=5)
    assert [b.name for b in net.backbones] == ["efficientnet_lite0", "efficientnet_lite2"]
    assert net.num_features == sum(b.num_features for b in net.backbones)
    with torch.no_grad():
        x = torch.randint(0, 256, (2, 3, 64, 64), dtype=torch.uint8)
        assert net.features(x).shape == (2, net.num_features) and net(x).shape == (2, 5)
    assert not any(p.requires_grad for p in net.backbones.parameters()) and not net.backbones.training


class Spy(pl.Callback):
    """Per epoch, during training: backbone mode and gradients, learning rates; backbone weights at its end."""

    def __init__(self) -> None:
        self.seen: list[dict] = []
        self.weights: list[torch.Tensor] = []

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        if batch_idx == 0:
            net = pl_module.net
            bn = next(m for m in net.backbones.modules() if isinstance(m, torch.nn.BatchNorm2d))
            self.seen.append({"train": bn.training, "grad": next(net.backbones.parameters()).requires_grad,
                              "lrs": [g["lr"] for g in trainer.optimizers[0].param_groups]})

    def on_validation_start(self, trainer, pl_module) -> None:
        self.seen.append({"val_bn_train": any(m.training for m in pl_module.net.backbones.modules())})

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        self.weights.append(next(pl_module.net.backbones.parameters()).detach().clone())


def test_finetuning_warms_up_frozen_then_trains_the_backbone_at_a_lower_lr(tmp_path):
    net = partial(TransferNet, [create_backbone("efficientnet_lite0", input_size=32)], freeze=False)
    module = MultiLabelModule(net, partial(torch.optim.Adam, lr=1e-3), ["a", "b"], torch.nn.BCEWithLogitsLoss(),
                              finetuning=UnfreezeBackbones(frozen_epochs=1, backbone_lr_scale=0.1))
    assert module.size["trainable_params"] == module.size["params"]  # the backbone trains, after the warm-up
    assert isinstance(module.configure_callbacks()[0], UnfreezeBackbones)
    x = torch.randint(0, 256, (16, 3, 32, 32), dtype=torch.uint8)
    loader = DataLoader(TensorDataset(x, (torch.rand(16, 2) > 0.5).float()), batch_size=8)
    spy = Spy()
    before = next(module.net.backbones.parameters()).detach().clone()
    trainer = pl.Trainer(max_epochs=3, callbacks=[spy], logger=False, enable_progress_bar=False,
                         num_sanity_val_steps=0, default_root_dir=tmp_path)
    trainer.fit(module, train_dataloaders=loader, val_dataloaders=loader)
    train = [s for s in spy.seen if "lrs" in s]
    # warm-up: frozen, in eval mode; its param group is there from the start (a scheduler follows it too)
    assert train[0] == {"train": False, "grad": False, "lrs": pytest.approx([1e-3, 1e-4])}
    for epoch in train[1:]:
        assert epoch["train"] and epoch["grad"] and epoch["lrs"] == pytest.approx([1e-3, 1e-4])
    assert not any(s["val_bn_train"] for s in spy.seen if "val_bn_train" in s)  # validation: eval mode
    assert torch.equal(spy.weights[0], before) and not torch.equal(spy.weights[2], spy.weights[1])
    # the checkpoint records the backbone's param group for a resumed run, and loads safely
    ckpt = torch.load(trainer.checkpoint_callback.last_model_path or trainer.checkpoint_callback.best_model_path,
                      weights_only=True)
    groups = ckpt["callbacks"]["UnfreezeBackbones"]["internal_optimizer_metadata"][0]
    assert [g["lr"] for g in groups] == pytest.approx([1e-3, 1e-4])


def test_frozen_transfer_keeps_backbones_out_of_training():
    module = MultiLabelModule(partial(TransferNet, [create_backbone("efficientnet_lite0", input_size=32)]),
                              partial(torch.optim.Adam, lr=1e-3), ["a", "b"], torch.nn.BCEWithLogitsLoss(),
                              finetuning=UnfreezeBackbones())  # unused: the backbones stay frozen
    assert module.configure_callbacks() == []
    assert module.size["trainable_params"] == sum(p.numel() for p in module.net.head.parameters())
    module.train()
    assert not module.net.backbones.training and module.net.head.training


@pytest.mark.parametrize("kwargs", [{"frozen_epochs": -1}, {"backbone_lr_scale": 0.0}])
def test_bad_finetuning_schedule_is_one_line(kwargs):
    with pytest.raises(ImgrecError, match="model.finetuning: frozen_epochs="):
        UnfreezeBackbones(**kwargs)


def test_frozen_epochs_under_ddp_is_one_line():
    """DDP averages the gradients of the parameters trainable when it wraps the model: layers unfrozen
    later would train on each process's own batches, so a warm-up is refused there."""
    trainer = type("Trainer", (), {"world_size": 2})()
    with pytest.raises(ImgrecError, match=r"^model.finetuning.frozen_epochs=1: not with 2 processes"):
        UnfreezeBackbones(frozen_epochs=1).setup(trainer, None, "fit")
