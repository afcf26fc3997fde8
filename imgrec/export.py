"""Export a checkpoint: ``python -m imgrec.export ckpt=<file> format=onnx|safetensors [out=<file>]``
(also ``imgrec export``); the work is :func:`imgrec.inference.onnx_export.export`."""

from __future__ import annotations

from imgrec.config.compose import hydra_command
from imgrec.inference.onnx_export import export

main = hydra_command("export", export)


if __name__ == "__main__":
    main()
