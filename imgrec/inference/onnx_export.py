"""Export a checkpoint: ``imgrec export ckpt=<file> format=onnx [out=<file>]`` (or ``format=safetensors``).

The ONNX graph takes what a user has, decoded pixels: uint8 ``(N, image_size, image_size, 3)`` (NHWC,
the size training decoded images at; the batch dimension is dynamic), and gives the probability of each
label. The resize and normalisation of every backbone are inside the graph, as in the PyTorch net.
Everything else prediction needs is in the model's metadata (``metadata_props``: JSON under ``imgrec.<key>``,
see :func:`metadata_of`), so ``imgrec predict model=<file.onnx>`` runs on onnxruntime alone.
"""

from __future__ import annotations

import logging
import os
import warnings
from pathlib import Path

import torch
from omegaconf import DictConfig, OmegaConf
from torch import nn

from imgrec.inference.onnx_predict import encode_metadata
from imgrec.inference.predictor import Predictor, load_predictor
from imgrec.utils.errors import ImgrecError

log = logging.getLogger(__name__)

OPSET = 18
FORMATS = ("onnx", "safetensors")


class PixelsToProbabilities(nn.Module):
    """uint8 NHWC images -> label probabilities: the graph an ONNX export holds."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.net(images.permute(0, 3, 1, 2)))


def export_onnx(checkpoint: str | Path, out: str | Path) -> Path:
    """Write the ONNX model of ``checkpoint`` to ``out`` (atomically) and return ``out``."""
    import onnx

    predictor = load_predictor(checkpoint)
    graph = PixelsToProbabilities(predictor.net).eval()
    example = torch.zeros(2, predictor.image_size, predictor.image_size, 3, dtype=torch.uint8)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp")
    try:
        with torch.inference_mode(), warnings.catch_warnings():
            # The graph is traced at the decoded size: the resize branches are fixed by design.
            warnings.simplefilter("ignore", torch.jit.TracerWarning)
            torch.onnx.export(graph, (example,), str(tmp), input_names=["images"], output_names=["probabilities"],
                              dynamic_axes={"images": {0: "batch"}, "probabilities": {0: "batch"}},
                              opset_version=OPSET, dynamo=False)
        model = onnx.load(str(tmp))
        for key, value in encode_metadata(metadata_of(predictor)).items():
            model.metadata_props.add(key=key, value=value)
        onnx.checker.check_model(model)
        onnx.save(model, str(tmp))
        os.replace(tmp, out)
    finally:
        tmp.unlink(missing_ok=True)
    return out


def metadata_of(predictor: Predictor) -> dict:
    """What the ONNX predict path needs besides the graph, from the loaded checkpoint."""
    meta, fitted = predictor.meta, predictor.meta.thresholds
    return {
        "label_names": predictor.label_names,
        "image_size": predictor.image_size,
        "threshold_rule": predictor.rule,
        "thresholds": [float(t) for t in predictor.thresholds],
        "per_label_thresholds": None if fitted is None else [float(t) for t in fitted.per_class],
        "global_threshold": None if fitted is None else float(fitted.global_threshold),
        "data_fingerprint": meta.data_fingerprint,
        "backbones": meta.backbones,
        "input_sizes": meta.input_sizes,
    }


def export(cfg: DictConfig) -> Path:
    if OmegaConf.is_missing(cfg, "ckpt"):
        raise ImgrecError("ckpt=... is required: imgrec export ckpt=<file> format=onnx [out=<file>]")
    if cfg.format not in FORMATS:
        raise ImgrecError(f"format={cfg.format}: expected one of {', '.join(FORMATS)}")
    ckpt = Path(cfg.ckpt)
    out = Path(cfg.out) if cfg.out else ckpt.with_suffix(f".{cfg.format}")
    if cfg.format == "onnx":
        export_onnx(ckpt, out)
    else:
        from imgrec.models.export import export_safetensors

        load_predictor(ckpt)  # the same checks as the ONNX path before writing anything
        export_safetensors(ckpt, out)
    log.info("wrote %s", out)
    return out
