"""OmegaConf resolvers used by ``conf/``: registered on import of :mod:`imgrec.run`, together with the
generated config options (:mod:`imgrec.config.architectures`)."""

from __future__ import annotations

import hashlib
import os
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


def register() -> None:
    architectures.register()
    OmegaConf.register_new_resolver("imgrec.wandb_offline", wandb_offline, replace=True)
    OmegaConf.register_new_resolver("imgrec.sweep_group", sweep_group, replace=True)
    OmegaConf.register_new_resolver("imgrec.launch_id", launch_id, replace=True)
    OmegaConf.register_new_resolver("imgrec.run_id", run_id, replace=True)
