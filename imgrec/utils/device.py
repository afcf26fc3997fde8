"""Which device a command runs on: a device setting becomes a ``torch.device`` here, and a CUDA setting on a
machine without CUDA stops in one line (:class:`~imgrec.utils.errors.ImgrecError`), not in a traceback
from deep inside torch or Lightning."""

from __future__ import annotations

import torch

from imgrec.utils.errors import ImgrecError

SETTINGS = ("auto", "cpu", "cuda", "cuda:<index>")


def no_cuda_reason() -> str:
    """Why CUDA is unusable here, or "" when it is usable."""
    if torch.cuda.is_available():
        return ""
    if torch.version.cuda is None:
        return f"this torch ({torch.__version__}) is a CPU-only build"
    return f"no CUDA GPU is visible (torch {torch.__version__}, CUDA {torch.version.cuda})"


def resolve_device(setting: str = "auto") -> torch.device:
    """``auto``: the first CUDA GPU when there is one, else the CPU; ``cpu``; ``cuda`` or ``cuda:<index>``."""
    setting = str(setting).strip()
    if setting == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if setting == "cpu":
        return torch.device("cpu")
    if setting == "cuda" or (setting.startswith("cuda:") and setting[5:].isdigit()):
        if no_cuda_reason():
            raise ImgrecError(f"device={setting}: {no_cuda_reason()}; use device=cpu or device=auto")
        device = torch.device(setting)
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise ImgrecError(f"device={setting}: only {torch.cuda.device_count()} CUDA GPU(s) are visible")
        return device
    raise ImgrecError(f"device={setting}: expected one of {', '.join(SETTINGS)}")


def check_accelerator(accelerator: str) -> None:
    """A GPU trainer (``trainer=gpu``, ``trainer=ddp``) on a machine without CUDA: one line before any data
    is read, instead of Lightning's MisconfigurationException traceback."""
    if str(accelerator) in ("gpu", "cuda") and no_cuda_reason():
        raise ImgrecError(f"trainer.accelerator={accelerator}: {no_cuda_reason()}; use trainer=cpu "
                          "(or trainer=ddp_cpu for several processes)")
