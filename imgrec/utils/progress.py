"""Progress of long work, one switch for every bar: redrawn bars in a terminal, log lines elsewhere.

Sent to a file (SLURM, ``nohup``, ``> run.log``), a redrawn bar writes every redraw into it. So every
progress display of imgrec asks :func:`live_bars`: tqdm's bars (:func:`progress`: extraction, decoding,
predict) and Lightning's (``imgrec.training.progress.ConsoleProgressBar``). When stdout is not a terminal
they print no bar; the work logs its own one line per phase (and per epoch), and work that lasts
longer than :data:`HEARTBEAT_S` logs where it stands at that interval. ``IMGREC_PROGRESS=bars`` or
``lines`` forces either mode (``auto``, the default, asks stdout).

Torch- and Hydra-free: the ONNX predict path (``imgrec.inference.onnx_predict``) decodes through it.
"""

from __future__ import annotations

import logging
import os
import sys
import time
from types import TracebackType
from typing import Protocol

from tqdm.auto import tqdm

log = logging.getLogger(__name__)

PROGRESS_ENV = "IMGREC_PROGRESS"
MODES = ("auto", "bars", "lines")
HEARTBEAT_S = 60.0  # in lines mode, work still running logs where it stands this often


class Progress(Protocol):
    """What callers use of a bar (tqdm has it): counted steps, and a context that closes it."""

    def update(self, n: float = 1) -> object: ...

    def close(self) -> None: ...

    def __enter__(self) -> Progress: ...

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        ...


def live_bars() -> bool:
    """Whether progress bars redraw in place: stdout is a terminal, unless ``IMGREC_PROGRESS`` says otherwise."""
    mode = os.environ.get(PROGRESS_ENV, "auto").strip().lower() or "auto"
    if mode not in MODES:
        log.warning("%s=%s: expected one of %s; using auto", PROGRESS_ENV, mode, ", ".join(MODES))
        mode = "auto"
    if mode != "auto":
        return mode == "bars"
    isatty = getattr(sys.stdout, "isatty", None)
    return bool(isatty and isatty())


def progress(total: int, desc: str, unit: str = "img", bar: bool = True) -> Progress:
    """A tqdm bar on stdout when :func:`live_bars` (and ``bar``, which a process that is not the one
    drawing, e.g. a rank > 0, sets to False); else :class:`Heartbeat` log lines for long work only."""
    if bar and live_bars():
        return tqdm(total=total, desc=desc, unit=unit, leave=False, file=sys.stdout, dynamic_ncols=True)
    return Heartbeat(total, desc, unit)


class Heartbeat:
    """A bar's stand-in for log files: silent for work shorter than ``every`` seconds (the work's own
    log line says it ended), otherwise one line each ``every`` seconds with the count, rate and time left."""

    def __init__(self, total: int, desc: str, unit: str = "img", every: float = HEARTBEAT_S) -> None:
        self.total, self.desc, self.unit, self.every = total, desc, unit, every
        self.n = 0
        self.start = self.last = time.monotonic()

    def update(self, n: float = 1) -> None:
        self.n += n
        now = time.monotonic()
        if now - self.last >= self.every and self.n < self.total:
            self.last = now
            rate = self.n / (now - self.start)
            left = (self.total - self.n) / rate if rate > 0 else float("nan")
            log.info("%s: %d/%d %s (%.0f%%), %.1f %s/s, about %.0f s left", self.desc, self.n, self.total, self.unit,
                     100 * self.n / max(self.total, 1), rate, self.unit, left)

    def close(self) -> None:
        pass

    def __enter__(self) -> Heartbeat:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.close()
