"""Lightning DDP inside Hydra jobs, single runs and sweeps alike.

Lightning's ``ddp`` strategy starts the other ranks by re-running the script. With Hydra it passes
``sys.argv`` plus ``hydra.run.dir=<hydra.run.dir>``, which inside a multirun re-launches the whole
sweep, and whose ``${now:...}`` run folder is a stray one. :class:`HydraDDPStrategy` is Lightning's
``DDPStrategy`` whose ranks > 0 re-run *this job* instead: ``imgrec.run`` with the job's own overrides,
in RUN mode, in the job's output folder, without writing ``.hydra/`` again. Cluster launches
(SLURM tasks, torchrun) start every rank themselves and are left to Lightning.

A sweep runs its jobs one after the other in one process, so :func:`end_job` leaves the process
group and restores the environment the launcher set, and the next job launches its own ranks.

Lightning has no public hook for the command of the other ranks. :class:`HydraJobLauncher` is the one
place that reaches into its launcher: a subclass of ``_SubprocessScriptLauncher`` that swaps its
module-level ``_hydra_subprocess_cmd`` for :func:`job_command` while it starts the ranks (everything else,
the environment, the watchdog that stops all ranks when one dies, signal forwarding, stays Lightning's).
:func:`check_lightning` refuses a Lightning without those names in one line, and
``tests/test_distributed.py`` checks, without starting processes, that Lightning still takes the
command from there (which is why ``pyproject.toml`` pins the minor version).
"""

from __future__ import annotations

import os
import sys
import warnings
from typing import Any
from unittest import mock

import pytorch_lightning as pl
import torch
import torch.distributed as dist
from pytorch_lightning.strategies import DDPStrategy
from pytorch_lightning.strategies.launchers import subprocess_script

from imgrec.utils.errors import ImgrecError

# What Lightning's launcher sets in the launching process (and OMP_NUM_THREADS, set right after).
_LAUNCH_ENV = ("MASTER_ADDR", "MASTER_PORT", "NODE_RANK", "LOCAL_RANK", "WORLD_SIZE", "OMP_NUM_THREADS")
_before_launch: tuple[dict[str, str | None], int] | None = None


def job_command(local_rank: int) -> tuple[list[str], str]:
    """The command and folder that run rank ``local_rank`` of the current Hydra job."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.utils import get_original_cwd

    hc = HydraConfig.get()
    command = [sys.executable, "-m", "imgrec.run", f"--config-name={hc.job.config_name}"]
    flags = {"main": "--config-path", "command-line": "--config-dir"}  # the config folders this job used
    command += [f"{flags[src.provider]}={src.path}" for src in hc.runtime.config_sources
                if src.provider in flags and src.schema == "file"]
    command += list(hc.overrides.task)
    command += [f'hydra.run.dir="{hc.runtime.output_dir}"', "hydra.mode=RUN", "hydra.output_subdir=null",
                f"hydra.job.name={hc.job.name}_rank{local_rank}"]
    return command, get_original_cwd()


def check_lightning() -> None:
    """One line instead of a wrong launch when Lightning's launcher lacks what :class:`HydraJobLauncher` uses."""
    missing = [name for obj, name in ((subprocess_script, "_hydra_subprocess_cmd"),
                                      (subprocess_script._SubprocessScriptLauncher, "_call_children_scripts"),
                                      (DDPStrategy, "_configure_launcher")) if not hasattr(obj, name)]
    if missing:
        raise ImgrecError(f"pytorch-lightning {pl.__version__}: its subprocess launcher lacks {', '.join(missing)}, "
                          "which imgrec.training.distributed needs to start the ranks of a Hydra job (use 2.6.x)")


class HydraJobLauncher(subprocess_script._SubprocessScriptLauncher):
    """Lightning's subprocess launcher, starting the other ranks with :func:`job_command`."""

    def _call_children_scripts(self) -> None:
        global _before_launch
        _before_launch = {k: os.environ.get(k) for k in _LAUNCH_ENV}, torch.get_num_threads()
        with mock.patch.object(subprocess_script, "_hydra_subprocess_cmd", job_command):
            super()._call_children_scripts()


class HydraDDPStrategy(DDPStrategy):
    """``DDPStrategy`` (``strategy: ddp``) whose ranks > 0 re-run the current Hydra job."""

    def __init__(self, **kwargs: Any) -> None:
        check_lightning()
        super().__init__(**kwargs)
        # The module logs what torchmetrics' compute() returns, already reduced over all ranks, and its
        # losses with sync_dist: Lightning cannot tell and would warn about every metric of every epoch.
        warnings.filterwarnings("ignore", message=r".*when logging on epoch level in distributed setting")

    def _configure_launcher(self) -> None:
        super()._configure_launcher()
        if isinstance(self._launcher, subprocess_script._SubprocessScriptLauncher):
            self._launcher = HydraJobLauncher(self.cluster_environment, self.num_processes, self.num_nodes)


def end_job() -> None:
    """After a job whose ranks this process launched: leave the process group and restore the
    environment, so that a later job in this process (the next run of a sweep) launches its own."""
    global _before_launch
    if _before_launch is None:
        return
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()
    env, threads = _before_launch
    for key, value in env.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value
    torch.set_num_threads(threads)
    _before_launch = None


def gather_in_order(trainer: pl.Trainer, rows: torch.Tensor, n: int) -> torch.Tensor:
    """The ``n`` rows of an unshuffled eval loader, from the per-rank ``rows`` each process saw.

    Lightning's ``DistributedSampler`` deals item ``i`` to rank ``i % world_size`` and pads the
    end with the first items so that every rank gets as many, so interleaving the ranks' rows
    restores the loader's order and the padding is cut off."""
    if trainer.world_size == 1:
        return rows
    gathered = trainer.strategy.all_gather(rows.to(trainer.strategy.root_device))  # (world_size, per rank, ...)
    return gathered.transpose(0, 1).reshape(-1, *rows.shape[1:])[:n].cpu()

