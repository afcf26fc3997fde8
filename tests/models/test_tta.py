"""Flip test-time augmentation inside the nets (``model.net.tta``): eval mode only, mean of the logits."""

import pytest
import torch
from hydra.utils import instantiate

from imgrec.models.backbones import create_backbone
from imgrec.models.transfer import TransferNet
from imgrec.utils.errors import ImgrecError
from tests.conftest import compose_cfg


def nets(tmp_path):
    scratch = instantiate(compose_cfg(tmp_path, ["model=scratch", "model.net.tta=flip"]).model.net)(num_classes=4)
    transfer = TransferNet([create_backbone("efficientnet_lite0", pretrained=False, input_size=48)], num_classes=4,
                           tta="flip")
    return {"scratch": (scratch, lambda x: scratch.head(scratch.trunk(x))),
            "transfer": (transfer, lambda x: transfer.head(transfer.features(x)))}


def test_flip_averages_the_logits_of_image_and_mirror_in_eval_only(tmp_path):
    torch.manual_seed(0)
    x = torch.randint(0, 256, (4, 3, 48, 48), dtype=torch.uint8)
    for name, (net, logits) in nets(tmp_path).items():
        net.eval()
        with torch.no_grad():
            plain, mirrored = logits(x), logits(x.flip(-1))
            assert not torch.allclose(plain, mirrored, atol=1e-3), name  # the mirror is another view
            torch.testing.assert_close(net(x), (plain + mirrored) / 2)
            net.train()
            for m in net.modules():  # batch norm in train mode would make the two passes incomparable
                if isinstance(m, torch.nn.BatchNorm2d):
                    m.eval()
            torch.testing.assert_close(net(x), plain, msg=name)  # training sees the images as given


def test_cached_views_are_averaged_like_images(tmp_path):
    """The feature cache serves (N, 2, F): the plain and the mirrored images' features."""
    net, _ = nets(tmp_path)["transfer"]
    net.eval()
    x = torch.randint(0, 256, (3, 3, 48, 48), dtype=torch.uint8)
    with torch.no_grad():
        cached = torch.stack([net.features(x), net.features(x.flip(-1))], dim=1)
        torch.testing.assert_close(net.forward_cached(cached), net(x))
        torch.testing.assert_close(net.forward_cached(cached[:, 0]), net.head(net.features(x)))


def test_unknown_tta_is_one_line():
    with pytest.raises(ImgrecError, match=r"^model.net.tta=rotate: expected one of none, flip$"):
        TransferNet([create_backbone("efficientnet_lite0", pretrained=False)], num_classes=2, tta="rotate")
