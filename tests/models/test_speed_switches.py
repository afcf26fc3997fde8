"""model.channels_last and model.compile change how the convolutions run, not what they compute."""

import pytest
import torch

from imgrec.models.backbones import create_backbone
from imgrec.run import train
from tests.conftest import compose_cfg


def test_channels_last_backbone_computes_the_same_features():
    images = torch.randint(0, 256, (4, 3, 40, 40), dtype=torch.uint8)
    plain = create_backbone("efficientnet_lite0", input_size=64).eval()
    nhwc = create_backbone("efficientnet_lite0", input_size=64).eval()
    nhwc.speed_up(channels_last=True)
    conv = next(m for m in nhwc.net.modules() if isinstance(m, torch.nn.Conv2d))
    assert conv.weight.is_contiguous(memory_format=torch.channels_last)
    assert nhwc.preprocess(images).is_contiguous(memory_format=torch.channels_last)
    with torch.no_grad():
        assert torch.allclose(plain(images), nhwc(images), atol=1e-4)


@pytest.mark.parametrize("switch", ["model.channels_last=true",
                                    pytest.param("model.compile=true", marks=pytest.mark.slow)])  # ~1 min compiling
def test_switched_run_matches_the_plain_run(tmp_path, switch):
    """A scratch CNN trained 2 epochs with the switch on ends where the plain run ends, and its
    checkpoint keeps the plain parameter names (predict loads it without the switch)."""
    common = ["+arch=scratch_small", "trainer.max_epochs=2", "data.n_images=160"]
    plain = train(compose_cfg(tmp_path / "plain", common))
    switched = train(compose_cfg(tmp_path / "switched", [*common, switch]))
    for key in ("val/f1_micro", "test/loss"):
        assert abs(plain.metrics[key] - switched.metrics[key]) < 1e-3, key
    state = torch.load(switched.checkpoint, map_location="cpu", weights_only=True)["state_dict"]
    assert not any("_orig_mod" in k for k in state)
