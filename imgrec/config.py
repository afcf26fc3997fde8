"""Compose the config ``python -m imgrec.run`` would see, for code that calls :func:`imgrec.run.train`
directly (tests, benchmarks, notebooks)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, open_dict

from imgrec import resolvers

CONF_DIR = Path(__file__).resolve().parents[1] / "conf"


def compose_config(output_dir: str | Path, overrides: Sequence[str] = ()) -> DictConfig:
    """The composed config with its run folder at ``output_dir`` (and the caches beside it unless
    ``paths.cache_dir`` is overridden)."""
    resolvers.register()
    GlobalHydra.instance().clear()
    output_dir = Path(output_dir)
    with initialize_config_dir(version_base="1.3", config_dir=str(CONF_DIR)):
        cfg = compose("config", overrides=[f"paths.log_dir={output_dir.parent}", *overrides],
                      return_hydra_config=True)
    HydraConfig.instance().set_config(cfg)
    with open_dict(cfg):
        cfg.paths.output_dir = str(output_dir)
    GlobalHydra.instance().clear()
    return cfg
