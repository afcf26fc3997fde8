import pytest
import timm
import torch

from imgrec.models.backbones import create_backbone
from imgrec.utils.errors import ImgrecError


@pytest.mark.parametrize("k", [0, 1, 2])
def test_offline_weights_map_onto_timm(k):
    b = create_backbone(f"efficientnet_lite{k}")
    random_init = timm.create_model(f"tf_efficientnet_lite{k}", pretrained=False, num_classes=0)
    w, w0 = b.net.conv_stem.weight, random_init.conv_stem.weight
    assert w.shape == w0.shape and not torch.allclose(w, w0)
    # normalisation comes from timm's pretrained config, not hard-coded
    assert torch.allclose(b.mean.flatten(), torch.tensor(random_init.pretrained_cfg["mean"]))
    assert b.input_size == random_init.pretrained_cfg["input_size"][-1]


def test_features_from_uint8_at_any_size():
    b = create_backbone("efficientnet_lite0", input_size=64).eval()
    with torch.no_grad():
        f = b(torch.randint(0, 255, (2, 3, 128, 128), dtype=torch.uint8))
    assert f.shape == (2, b.num_features) == (2, 1280)


def test_unknown_backbone():
    with pytest.raises(ImgrecError, match="unknown backbone 'nope'"):
        create_backbone("nope")


def test_download_failure_is_one_line(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))  # no cached weights
    try:
        create_backbone("resnet18")
    except ImgrecError as err:
        msg = str(err)
        assert "could not download" in msg and "efficientnet_lite0" in msg and "\n" not in msg
    else:
        pytest.skip("this machine has internet: the weights downloaded")


def test_torchvision_without_weights_and_local_checkpoint(tmp_path):
    b = create_backbone("resnet18", pretrained=False)
    assert b.num_features == 512 and b.input_size == 224
    path = tmp_path / "w.pt"
    torch.save(b.net.state_dict(), path)
    c = create_backbone("resnet18", checkpoint=str(path))
    assert torch.equal(c.net.conv1.weight, b.net.conv1.weight)
