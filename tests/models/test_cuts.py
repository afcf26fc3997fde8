"""Cutting backbones between stages (imgrec.models.cuts) and what a TransferNet with ``train_blocks=K`` trains."""

import pytest
import torch

from imgrec.models.backbones import create_backbone
from imgrec.models.cuts import cut_backbone, stage_names
from imgrec.models.transfer import TransferNet
from imgrec.utils.errors import ImgrecError

FAMILIES = {  # backbone name -> its stages, as a timm or torchvision user names them
    "efficientnet_lite0": [f"blocks.{i}" for i in range(7)],  # timm EfficientNet (the offline weights)
    "resnet18": ["layer1", "layer2", "layer3", "layer4"],  # torchvision ResNet-style
    "timm:convnext_atto": [f"stages.{i}" for i in range(4)],  # timm, stages
    "timm:regnetx_002": ["s1", "s2", "s3", "s4"],  # timm, feature_info after the stem
}


@pytest.fixture(scope="module", params=list(FAMILIES))
def backbone(request):
    return create_backbone(request.param, pretrained=False, input_size=64).eval()


def test_stages_of_each_family(backbone):
    assert stage_names(backbone.net) == FAMILIES[backbone.name]


def test_lower_and_upper_parts_compose_to_the_backbone(backbone):
    """Every cut, from one trained stage to all of them: the trunk's fp16 activations through the upper
    part give the backbone's pooled features within fp16 rounding, in fp32 exactly."""
    torch.manual_seed(0)
    x = torch.randint(0, 256, (3, 3, 80, 80), dtype=torch.uint8)  # resized to 64 inside, as by the backbone
    stages = FAMILIES[backbone.name]
    with torch.no_grad():
        whole = backbone(x)
        for k in range(1, len(stages) + 1):
            cut = cut_backbone(backbone, k)
            trunk = cut.trunk()
            assert cut.stage == stages[-k] and trunk.name == f"{backbone.name} below {stages[-k]}"
            exact = cut.upper(trunk.activations(x))
            torch.testing.assert_close(exact, whole, rtol=0, atol=1e-5)
            half = trunk(x)
            assert half.dtype == torch.float16 and half.shape == (3, trunk.num_features)
            torch.testing.assert_close(cut.features(half), whole, rtol=0, atol=2e-3 * whole.abs().max().item())


def test_no_known_cut_and_too_many_blocks_are_one_line():
    lite0 = create_backbone("efficientnet_lite0", pretrained=False)
    with pytest.raises(ImgrecError, match=r"^model.net.train_blocks=8: backbone 'efficientnet_lite0' has 7 stages "
                                          r"\(blocks.0 .. blocks.6\): use 1 to 7, or 0"):
        cut_backbone(lite0, 8)
    squeezenet = create_backbone("squeezenet1_0", pretrained=False)  # a torchvision net without named stages
    with pytest.raises(ImgrecError, match=r"^model.net.train_blocks=1: backbone 'squeezenet1_0' has no known cut"):
        TransferNet([squeezenet], num_classes=2, train_blocks=1)
    for kwargs in ({"train_blocks": -1}, {"train_blocks": 1, "freeze": False}):
        with pytest.raises(ImgrecError, match=r"^model.net.train_blocks=-?1: must be >= 0, and 0 with freeze=false"):
            TransferNet([lite0], num_classes=2, **kwargs)


def test_partial_net_is_the_whole_net_with_its_top_stages_trainable():
    """The state_dict is the frozen net's (so checkpoints, predict and export are unchanged); only the
    last K stages, what follows them and the head train; the backbone stays in eval mode."""
    frozen = TransferNet([create_backbone("efficientnet_lite0", pretrained=False)], num_classes=3)
    net = TransferNet([create_backbone("efficientnet_lite0", pretrained=False)], num_classes=3, train_blocks=2)
    assert list(net.state_dict()) == list(frozen.state_dict())
    def layer(name: str) -> str:  # "backbones.0.net.blocks.5.0.conv_pw.weight" -> "blocks.5"
        parts = name.removeprefix("backbones.0.net.").split(".")
        return ".".join(parts[:2]) if parts[0] == "blocks" else parts[0]

    trainable = {layer(name) for name, p in net.named_parameters() if p.requires_grad and name.startswith("backbones")}
    assert trainable == {"blocks.5", "blocks.6", "conv_head", "bn2"}
    assert all(p.requires_grad for p in net.head.parameters())
    assert {id(p) for p in net.trained_backbone_parameters()} == {
        id(p) for name, p in net.named_parameters() if p.requires_grad and name.startswith("backbones")}
    net.train()
    assert net.head.training and not any(m.training for m in net.backbones.modules())
    net.set_backbones_frozen(True)  # what UnfreezeBackbones does before training (frozen_epochs)
    assert not any(p.requires_grad for p in net.backbones.parameters())
    net.set_backbones_frozen(False)
    assert sum(p.requires_grad for p in net.backbones.parameters()) == len(net.trained_backbone_parameters())
    assert not any(m.training for m in net.backbones.modules())


def test_ensemble_cuts_each_backbone_and_splits_the_cached_activations():
    """Two backbones at two sizes: one cut each, their flattened activations concatenated per image as the
    feature cache serves them, split back per backbone by the net."""
    torch.manual_seed(0)
    backbones = [create_backbone("efficientnet_lite0", pretrained=False, input_size=64),
                 create_backbone("resnet18", pretrained=False, input_size=48)]
    net = TransferNet(backbones, num_classes=3, train_blocks=2).eval()
    x = torch.randint(0, 256, (2, 3, 56, 56), dtype=torch.uint8)
    parts = net.cached_parts()
    assert [p.activation_shape for p in parts] == [(112, 4, 4), (128, 6, 6)]
    with torch.no_grad():
        cached = torch.cat([p(x) for p in parts], dim=1)
        torch.testing.assert_close(net.forward_cached(cached), net(x), rtol=0, atol=1e-2)
