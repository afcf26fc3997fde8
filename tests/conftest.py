"""Shared fixtures: Hydra ``compose()`` configs forced to CPU and tiny sizes, and small datasets."""

from __future__ import annotations

import contextlib
import io
import logging
import os
import runpy
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
from hydra.core.global_hydra import GlobalHydra
from omegaconf import DictConfig

from imgrec.config.compose import compose_config
from imgrec.data.synthetic import make_synthetic, write_course_format

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = ROOT.parent / "shared" / "data"
os.environ.setdefault("WANDB_MODE", "offline")
os.environ.setdefault("WANDB_SILENT", "true")

# Small, quick and still able to learn: 64 px input, a few hundred images.
# cache.engine=eager: the runtimes' export (seconds per backbone) is tested in tests/data/test_feature_engines.py.
# report.enabled=false: a run's report takes about 3 s here; the tests of reports and of what reads them
# (tests/test_evaluation.py, the dashboard's and the console's sweeps) turn it back on.
TINY = ["data.n_images=400", "model.net.input_size=64", "trainer.max_epochs=15", "logger=none",
        "data.batch_size=32", "cache.engine=eager", "report.enabled=false"]


def compose_cfg(tmp_path: Path, overrides: list[str] = ()) -> DictConfig:
    """The config ``python -m imgrec.run`` would see with TINY sizes, writing under ``tmp_path``."""
    return compose_config(tmp_path / "run", [*TINY, f"paths.cache_dir={tmp_path / 'cache'}", *overrides])


@pytest.fixture
def cfg_tiny(tmp_path: Path) -> DictConfig:
    return compose_cfg(tmp_path)


@pytest.fixture(scope="session")
def course_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The synthetic dataset written in the course format, read back through the real reader."""
    return write_course_format(make_synthetic(60, seed=3), tmp_path_factory.mktemp("course"))


def child_env() -> dict[str, str]:
    """This process's environment for a subprocess, as a user's new command would have it: without the
    launch id an in-process config set here (``imgrec.config.resolvers``), and without this process's W&B
    service (``WANDB_SERVICE``, set by an in-process W&B run), which would otherwise serve the child's runs
    too and hold a killed child's run id as long as this process lives."""
    return {k: v for k, v in os.environ.items() if k not in ("IMGREC_LAUNCH_ID", "WANDB_SERVICE")}


def run_cli(args: list[str], cwd: Path, timeout: int = 600) -> subprocess.CompletedProcess:
    env = {**child_env(), "WANDB_MODE": "offline", "HYDRA_FULL_ERROR": "0"}
    return subprocess.run([sys.executable, "-m", *args], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=timeout)


def run_in_process(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    """``python -m <module> <args>`` run in this process: the same entry point, argument parsing and
    error handling as :func:`run_cli`, without a new interpreter's imports (about 10 s each). For any
    command but kills, DDP, import checks and console checks (a warning shows once per process), and
    usable from fixtures of any scope. Output is what the command writes to ``sys.stdout``/``sys.stderr``
    (logging, progress bars, warnings); the message of a ``SystemExit`` goes to stderr, as Python prints
    it at exit. The working folder, ``sys.argv``, the environment keys a run sets and the root logger's
    handlers (Hydra configures them per run) are restored after."""
    module, *argv = args
    keys = ("IMGREC_LAUNCH_ID", "WANDB_SERVICE", "HYDRA_FULL_ERROR")
    saved_env = {key: os.environ.pop(key, None) for key in keys}
    saved_argv, saved_cwd = sys.argv, os.getcwd()
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    out, err = io.StringIO(), io.StringIO()
    code, message = 0, ""
    try:
        os.chdir(cwd)
        sys.argv = [module, *argv]
        os.environ["HYDRA_FULL_ERROR"] = "0"
        GlobalHydra.instance().clear()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err), warnings.catch_warnings():
            # runpy notes that the module was imported before: by design
            warnings.filterwarnings("ignore", message=".*found in sys.modules", category=RuntimeWarning)
            runpy.run_module(module, run_name="__main__", alter_sys=True)
    except SystemExit as exit_:
        code = exit_.code if isinstance(exit_.code, int) else 0 if exit_.code is None else 1
        message = exit_.code if isinstance(exit_.code, str) else ""
    finally:
        GlobalHydra.instance().clear()
        os.chdir(saved_cwd)
        sys.argv = saved_argv
        for key, value in saved_env.items():
            os.environ.pop(key, None) if value is None else os.environ.__setitem__(key, value)
        for handler in root.handlers:
            if handler not in handlers:
                handler.close()
        root.handlers[:], root.level = handlers, level
    return subprocess.CompletedProcess(args, code, out.getvalue(),
                                       err.getvalue() + (message + "\n" if message else ""))


def assert_one_line_error(r: subprocess.CompletedProcess, *fragments: str) -> None:
    """A non-zero exit whose last stderr line is ``error: ...`` with every fragment, no traceback, no training."""
    assert r.returncode != 0
    last = r.stderr.strip().splitlines()[-1]
    assert last.startswith("error: "), r.stderr[-2000:]
    for fragment in fragments:
        assert fragment in last, last
    assert "Traceback" not in r.stderr
    assert "Epoch 0" not in r.stderr + r.stdout  # stopped before training


def idl_slice(dest: Path, n: int) -> Path:
    """The first ``n`` images of idl2020-dev in the course format (symlinked, not copied into the repo)."""
    src = SHARED_DATA / "idl2020-dev"
    if not src.is_dir():
        pytest.skip(f"{src} is absent: the real-data test needs ../shared/data beside the repository")
    (dest / "images").mkdir(parents=True)
    (dest / "annotations").mkdir()
    numbers = sorted(int(p.stem[2:]) for p in (src / "images").glob("im*.jpg"))[:n]
    keep = set(numbers)
    for k in numbers:
        (dest / "images" / f"im{k}.jpg").symlink_to(src / "images" / f"im{k}.jpg")
    for f in (src / "annotations").glob("*.txt"):
        lines = [ln for ln in f.read_text().split() if int(ln) in keep]
        (dest / "annotations" / f.name).write_text("".join(f"{ln}\n" for ln in lines))
    return dest


def most_frequent_f1(targets: np.ndarray) -> float:
    """Micro F1 of the trivial predictor that outputs the most frequent label on every image."""
    from sklearn.metrics import f1_score

    pred = np.zeros_like(targets)
    pred[:, targets.sum(0).argmax()] = 1
    return f1_score(targets, pred, average="micro", zero_division=0)
