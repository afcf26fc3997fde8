import pytest
import torch
from hydra.errors import InstantiationException
from hydra.utils import instantiate

from imgrec.models.scratch import InceptionBlock, ResidualBlock, ScratchNet, Stage, Stem
from imgrec.models.summary import model_size
from imgrec.run import train
from imgrec.utils.errors import ImgrecError
from tests.conftest import compose_cfg, most_frequent_f1


def images(n: int = 2, size: int = 48) -> torch.Tensor:
    return torch.randint(0, 256, (n, 3, size, size), dtype=torch.uint8)


@pytest.mark.parametrize("arch", ["scratch_small", "scratch_medium", "scratch_deep"])
def test_named_architectures(tmp_path, arch):
    cfg = compose_cfg(tmp_path, [f"+arch={arch}"])
    net = instantiate(cfg.model.net)(num_classes=14)
    assert isinstance(net, ScratchNet) and net.trunk.input_size == 64  # TINY's model.net.input_size
    assert net(images()).shape == (2, 14)
    size = model_size(net)
    assert size["params"] == size["trainable_params"] == sum(p.numel() for p in net.parameters())
    assert size["flops"] > 1e6 and size["input_size"] == 64


def test_every_field_overrides_from_the_command_line(tmp_path):
    cfg = compose_cfg(tmp_path, ["model=scratch", "model.net.stem.pool=true", "model.net.stages.1.width=48",
                                 "model.net.stages.1.block=inception", "model.net.stages.1.shortcut=true",
                                 "model.net.stages.2.blocks=2", "model.net.head.hidden=16"])
    net = instantiate(cfg.model.net)(num_classes=3)
    stem, stages = net.trunk.net[0], list(net.trunk.net)[1:4]
    assert isinstance(stem[-1], torch.nn.MaxPool2d)
    assert all(isinstance(b, InceptionBlock) and b.shortcut is not None for b in stages[1])
    assert stages[1](torch.randn(1, 32, 8, 8)).shape == (1, 48, 4, 4)
    assert len(stages[2]) == 2 and all(isinstance(b, ResidualBlock) for b in stages[2])
    assert [m.out_features for m in net.head if isinstance(m, torch.nn.Linear)] == [16, 3]
    assert net(images()).shape == (2, 3)


def test_flops_match_a_hand_count():
    """3x3 stem 3->4 at 8x8, a residual block of two 3x3 4->4 convs at 8x8, a linear 4->2 head."""
    net = ScratchNet(2, stem=Stem(4), stages=[Stage("residual", 1, 4)], input_size=8)
    macs = 3 * 4 * 9 * 64 + 2 * 4 * 4 * 9 * 64 + 4 * 2
    size = model_size(net)
    assert size["flops"] == 2 * macs
    assert size["params"] == 3 * 4 * 9 + 2 * 4 * 4 * 9 + 3 * 2 * 4 + 4 * 2 + 2  # convs, 3 BNs, linear


def test_blocks_stride_width_and_shortcuts():
    x = torch.randn(2, 8, 16, 16)
    inception = InceptionBlock(8, 30, stride=2, shortcut=True)
    assert inception(x).shape == (2, 30, 8, 8)
    kernels = [m.kernel_size[0] for br in inception.branches for m in br.modules() if isinstance(m, torch.nn.Conv2d)]
    assert sorted(set(kernels)) == [1, 3, 5] and any(isinstance(m, torch.nn.MaxPool2d) for m in inception.modules())
    assert InceptionBlock(8, 30).shortcut is None  # inception: no shortcut unless asked
    assert isinstance(ResidualBlock(8, 8).shortcut, torch.nn.Identity)
    assert ResidualBlock(8, 16, stride=2)(x).shape == (2, 16, 8, 8)
    assert ResidualBlock(8, 8, shortcut=False).shortcut is None


def test_normalises_uint8_inside():
    """0.5/0.5 per channel: uint8 0 and 255 reach the stem as -1 and 1, at the input size."""
    net = ScratchNet(2, stem=Stem(4), stages=[Stage("residual", 1, 4)], input_size=8)
    x = net.trunk.preprocess(torch.tensor([0, 255], dtype=torch.uint8).view(1, 1, 2, 1).expand(1, 3, 2, 1))
    assert x.shape == (1, 3, 8, 8) and x.min() == -1 and x.max() == 1


@pytest.mark.parametrize("override, message", [
    ("model.net.stages.0.block=dense", "model.net.stages.0.block='dense': expected one of residual"),
    ("model.net.stages.0.blocks=0", "model.net.stages.0: sizes must be positive"),
    ("model.net.stem.width=0", "model.net.stem: sizes must be positive"),
])
def test_bad_stage_is_one_line_naming_its_key(tmp_path, override, message):
    cfg = compose_cfg(tmp_path, ["model=scratch", override])
    with pytest.raises(ImgrecError) as err:
        instantiate(cfg.model.net)(num_classes=2)
    assert message in str(err.value) and "\n" not in str(err.value)


def test_unknown_stage_key_is_refused(tmp_path):
    """Each stage entry is a Stage's constructor arguments: an unknown key cannot be silently ignored."""
    cfg = compose_cfg(tmp_path, ["model=scratch", "+model.net.stages.0.widht=3"])
    with pytest.raises(InstantiationException, match="unexpected keyword argument 'widht'"):
        instantiate(cfg.model.net)


@pytest.mark.slow
def test_scratch_small_learns(tmp_path):
    cfg = compose_cfg(tmp_path, ["+arch=scratch_small", "data.n_images=600"])
    summary = train(cfg)
    dm = instantiate(cfg.data)
    dm.setup()
    baseline = most_frequent_f1(dm.data.targets[dm.split.test])
    assert summary.metrics["test/f1_micro"] > baseline + 0.15, (summary.metrics["test/f1_micro"], baseline)
