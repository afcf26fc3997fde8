"""GPU utilisation sampled while a benchmark case runs: NVML's figure, the share of the last sample
period (1/6 s to 1 s, by GPU) in which a kernel was running. That is "the GPU is busy", not how much of
its compute the kernels use.

Read through ``torch.cuda.utilization`` (NVML, via the ``pynvml`` module of the ``nvidia-ml-py``
package), else through ``nvidia-smi`` (installed with the driver), else not at all (the figures are
then ``None``, with the reason).
"""

from __future__ import annotations

import shutil
import statistics
import subprocess
import threading
from collections.abc import Callable


def nvml_reader(index: int) -> Callable[[], float]:
    import torch

    torch.cuda.utilization(index)  # raises here when pynvml is absent or NVML does not answer
    return lambda: float(torch.cuda.utilization(index))


def smi_reader(index: int) -> Callable[[], float]:
    """``nvidia-smi`` for the GPU torch calls ``cuda:<index>``, named by UUID (``CUDA_VISIBLE_DEVICES``
    may renumber the GPUs)."""
    import torch

    smi = shutil.which("nvidia-smi")
    if smi is None:
        raise FileNotFoundError("nvidia-smi is not on PATH")
    command = [smi, f"--id=GPU-{torch.cuda.get_device_properties(index).uuid}", "--query-gpu=utilization.gpu",
               "--format=csv,noheader,nounits"]

    def read() -> float:
        return float(subprocess.run(command, capture_output=True, text=True, timeout=5, check=True).stdout.split()[0])

    read()
    return read


def best_reader(index: int) -> tuple[str, Callable[[], float] | None]:
    """(the source's name or why there is none, its reader)."""
    reasons = []
    for name, make in (("NVML (torch.cuda.utilization)", nvml_reader), ("nvidia-smi", smi_reader)):
        try:
            return name, make(index)
        except Exception as err:  # any failure of an optional source: try the next one
            first_line = (str(err).strip().splitlines() or [""])[0][:80]
            reasons.append(f"{name}: {type(err).__name__} {first_line}".strip())
    return "none (" + "; ".join(reasons) + ")", None


class UtilisationMonitor:
    """``start()`` samples ``read()`` every ``interval`` seconds in a thread until ``stop()``, which returns
    the mean of the samples (None without a reader or a sample)."""

    def __init__(self, read: Callable[[], float] | None, interval: float = 0.1) -> None:
        self.read, self.interval = read, interval
        self.samples: list[float] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self.samples.append(self.read())
            except Exception:  # a missed sample is not worth stopping the benchmark for
                pass
            self._stop.wait(self.interval)

    def start(self) -> None:
        self.samples, self._stop = [], threading.Event()
        if self.read is not None:
            self._thread = threading.Thread(target=self._loop, daemon=True)
            self._thread.start()

    def stop(self) -> float | None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None
        return statistics.fmean(self.samples) if self.samples else None

