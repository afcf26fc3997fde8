"""Export a trained net's weights as safetensors: no pickle, loadable anywhere."""

from __future__ import annotations

import json
import os
from pathlib import Path

from safetensors.torch import save_file

from imgrec.models.checkpoint import read_checkpoint


def export_safetensors(checkpoint: str | Path, out: str | Path) -> Path:
    """The ``net`` weights of a Lightning checkpoint, with the label names, thresholds and net config
    (the checkpoint's :class:`~imgrec.models.checkpoint.CheckpointMeta`) as string metadata."""
    meta, ckpt = read_checkpoint(checkpoint)
    weights = {k.removeprefix("net."): v.contiguous() for k, v in ckpt["state_dict"].items() if k.startswith("net.")}
    hparams = meta.to_hparams()
    metadata = {"label_names": json.dumps(hparams["label_names"])}
    metadata.update({k: v if isinstance(v, str) else json.dumps(v) for k, v in hparams["meta"].items()})
    out = Path(out)
    tmp = out.with_name(f".{out.name}.tmp")
    save_file(weights, str(tmp), metadata=metadata)
    os.replace(tmp, out)
    return out
