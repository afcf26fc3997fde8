"""Export a trained net's weights as safetensors: no pickle, loadable anywhere."""

from __future__ import annotations

import json
import os
from pathlib import Path

import torch
from safetensors.torch import save_file


def export_safetensors(checkpoint: str | Path, out: str | Path) -> Path:
    """The ``net`` weights of a Lightning checkpoint, with the label names, thresholds and net config
    (from the checkpoint's ``meta``) as string metadata."""
    ckpt = torch.load(checkpoint, map_location="cpu", weights_only=True)
    weights = {k.removeprefix("net."): v.contiguous() for k, v in ckpt["state_dict"].items() if k.startswith("net.")}
    hparams = ckpt.get("hyper_parameters", {})
    metadata = {"label_names": json.dumps(hparams.get("label_names", []))}
    metadata.update({k: v if isinstance(v, str) else json.dumps(v) for k, v in hparams.get("meta", {}).items()})
    out = Path(out)
    tmp = out.with_name(f".{out.name}.tmp")
    save_file(weights, str(tmp), metadata=metadata)
    os.replace(tmp, out)
    return out
