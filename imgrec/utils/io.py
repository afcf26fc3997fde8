"""Atomic writes: a finished result is written to a temporary file, then renamed into place (torch-free:
the ONNX predict path uses it; checkpoints: ``imgrec.utils.checkpoint_io``)."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

UMASK = os.umask(0)
os.umask(UMASK)


def write_text(path: str | Path, text: str) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as fh:
            fh.write(text)
        os.chmod(tmp, 0o666 & ~UMASK)  # mkstemp makes 0600; a result file gets the permissions open() gives
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def write_json(path: str | Path, data: Any) -> Path:
    return write_text(path, json.dumps(data, indent=2, sort_keys=True, default=float) + "\n")

