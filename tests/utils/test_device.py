"""Device settings: one function resolves them, and CUDA settings without CUDA stop in one line."""

import pytest
import torch

from imgrec.utils.device import check_accelerator, resolve_device
from imgrec.utils.errors import ImgrecError


@pytest.fixture
def cuda(monkeypatch):
    """Pretend ``n`` CUDA GPUs are visible (0: none, with a CUDA build of torch)."""

    def visible(n: int) -> None:
        monkeypatch.setattr(torch.cuda, "is_available", lambda: n > 0)
        monkeypatch.setattr(torch.cuda, "device_count", lambda: n)
        monkeypatch.setattr(torch.version, "cuda", "13.0")

    return visible


def test_without_cuda(cuda, monkeypatch):
    cuda(0)
    assert resolve_device("auto") == resolve_device("cpu") == torch.device("cpu")
    with pytest.raises(ImgrecError, match=r"^device=cuda: no CUDA GPU is visible .*; use device=cpu or device=auto$"):
        resolve_device("cuda")
    with pytest.raises(ImgrecError, match=r"^trainer.accelerator=gpu: no CUDA GPU is visible .*; use trainer=cpu"):
        check_accelerator("gpu")
    check_accelerator("cpu")
    monkeypatch.setattr(torch.version, "cuda", None)
    with pytest.raises(ImgrecError, match="is a CPU-only build"):
        resolve_device("cuda:0")


def test_with_cuda(cuda):
    cuda(2)
    assert resolve_device("auto") == resolve_device("cuda") == torch.device("cuda")
    assert resolve_device("cuda:1") == torch.device("cuda:1")
    with pytest.raises(ImgrecError, match=r"^device=cuda:2: only 2 CUDA GPU\(s\) are visible$"):
        resolve_device("cuda:2")
    check_accelerator("gpu")


def test_unknown_setting():
    with pytest.raises(ImgrecError, match=r"^device=gpu: expected one of auto, cpu, cuda, cuda:<index>$"):
        resolve_device("gpu")
