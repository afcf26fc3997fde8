"""OmegaConf resolvers used by ``conf/``: registered on import of :mod:`imgrec.run`, together with the
generated config options (:mod:`imgrec.config.architectures`)."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from pathlib import Path

from omegaconf import OmegaConf

from imgrec.config import architectures


def wandb_offline() -> bool:
    """Offline unless the user configured W&B: an API key, WANDB_MODE=online, or a netrc login."""
    if os.environ.get("WANDB_MODE"):
        return os.environ["WANDB_MODE"] in ("offline", "dryrun", "disabled")
    if os.environ.get("WANDB_API_KEY"):
        return False
    netrc = Path(os.environ.get("NETRC", Path.home() / ".netrc"))
    return not (netrc.is_file() and "api.wandb.ai" in netrc.read_text(errors="ignore"))


def sweep_group() -> str | None:
    """Members of a sweep share the sweep folder's name as their W&B group; single runs have none."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    if not HydraConfig.initialized():
        return None
    hydra_cfg = HydraConfig.get()
    return Path(hydra_cfg.sweep.dir).name if hydra_cfg.mode == RunMode.MULTIRUN else None


def launch_id() -> str:
    """The launching process's id, inherited by launcher workers through the environment, so that two
    sweeps started in the same second never share a folder while one sweep's jobs agree on theirs."""
    return os.environ.setdefault("IMGREC_LAUNCH_ID", str(os.getpid()))


def run_id(output_dir: str) -> str:
    """A W&B run id derived from the run folder: a run resumed in its folder continues the same W&B run."""
    return hashlib.sha1(str(Path(output_dir).resolve()).encode()).hexdigest()[:16]


def processes_per_node(devices: int | str | Sequence[int]) -> int:
    """How many training processes a Lightning ``devices`` setting starts on this node: a count, a list
    of device indices (also as ``"0,1"``), or ``-1``/``"auto"`` for every visible GPU."""
    if isinstance(devices, str):
        devices = devices.strip()
        if "," in devices:
            devices = [d for d in devices.split(",") if d.strip()]
        elif devices != "auto":
            devices = int(devices)
    if isinstance(devices, Sequence) and not isinstance(devices, str):
        return max(1, len(devices))
    if devices in (-1, "auto"):
        import torch

        return max(1, torch.cuda.device_count())
    return max(1, int(devices))


def loader_workers(devices: int | str | Sequence[int] = 1) -> int:
    """DataLoader workers for each training process (``conf/trainer/loader/workers.yaml``): the CPUs this
    process may use (its affinity, which containers and SLURM restrict; under SLURM a task's own
    ``SLURM_CPUS_PER_TASK``, a task being one process) shared by the node's processes, less one for
    each process's main thread; at least 1."""
    if os.environ.get("SLURM_CPUS_PER_TASK"):
        return max(1, int(os.environ["SLURM_CPUS_PER_TASK"]) - 1)
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    return max(1, cpus // processes_per_node(devices) - 1)


def register() -> None:
    architectures.register()
    OmegaConf.register_new_resolver("imgrec.wandb_offline", wandb_offline, replace=True)
    OmegaConf.register_new_resolver("imgrec.sweep_group", sweep_group, replace=True)
    OmegaConf.register_new_resolver("imgrec.launch_id", launch_id, replace=True)
    OmegaConf.register_new_resolver("imgrec.run_id", run_id, replace=True)
    OmegaConf.register_new_resolver("imgrec.loader_workers", loader_workers, replace=True)
