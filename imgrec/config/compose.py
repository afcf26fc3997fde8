"""Compose the config ``python -m imgrec.run`` would see, for code that calls :func:`imgrec.run.train`
directly (tests, benchmarks, notebooks)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import hydra
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, open_dict

from imgrec.config import resolvers

CONF_DIR = Path(__file__).resolve().parents[2] / "conf"


def require_conf(conf_dir: Path = CONF_DIR) -> None:
    """The Hydra configs live beside the package in a checkout (``conf/``); an install that copied the
    package alone has none, and is refused in one line rather than by Hydra's search-path error."""
    from imgrec.utils.errors import ImgrecError

    if not (conf_dir / "config.yaml").is_file():
        raise ImgrecError(f"{conf_dir}: imgrec's configs are not there; install imgrec from a checkout with "
                          "`pip install -e <checkout>` (make install), not as a plain package")


def hydra_command(config_name: str, work: Callable[[DictConfig], object]) -> Callable[[], None]:
    """The ``main`` of a command over ``work``: Hydra composes ``conf/<config_name>.yaml`` with the
    command line's overrides, and an ImgrecError from ``work`` ends the process in one line."""
    from imgrec.utils.errors import exit_on_user_error

    @hydra.main(version_base="1.3", config_path=str(CONF_DIR), config_name=config_name)
    def main(cfg: DictConfig) -> None:
        exit_on_user_error(work, cfg)

    return main


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


def _first_values(args: Sequence[str]) -> list[str]:
    """The overrides with each sweep replaced by its first value (interval sweeps are dropped)."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    lines = []
    for o in OverridesParser.create().parse_overrides(list(args)):
        if o.key_or_group.startswith("hydra"):
            continue
        if not o.is_sweep_override():
            lines.append(o.input_line)
        elif o.is_discrete_sweep():
            lines.append(f"{o.get_key_element()}={next(o.sweep_string_iterator())}")
    return lines


def _writable(folder: Path) -> str | None:
    """Why ``folder`` cannot take run outputs, or None if it can."""
    import tempfile

    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as err:
        return err.strerror or str(err)
    return None


def check_cli(args: Sequence[str]) -> None:
    """Catch, before Hydra starts, what it reports without a way forward: a mistyped key (answered
    with close matches and the valid keys) and an output folder that cannot be written. Anything
    else is left to Hydra's own messages."""
    import difflib

    from hydra.errors import ConfigCompositionException, OverrideParseException
    from omegaconf import OmegaConf

    from imgrec.utils.errors import ImgrecError, user_error

    require_conf()
    if any(a.startswith("-") and a not in ("-m", "--multirun") for a in args):
        return  # --cfg, --config-name ...: Hydra's own business
    try:
        overrides = _first_values([a for a in args if not a.startswith("-")])
    except OverrideParseException:
        return
    resolvers.register()
    GlobalHydra.instance().clear()
    try:
        with initialize_config_dir(version_base="1.3", config_dir=str(CONF_DIR)):
            try:
                cfg = compose("config", overrides=overrides)
            except ConfigCompositionException as err:
                message = str(err.__cause__ or err)
                keys = [o.split("=", 1)[0].lstrip("+~") for o in overrides]
                full_key = next((k for k in keys if "." in k and f"full_key: {k}" in message), None)
                if full_key is None or "not in struct" not in message:
                    return
                base = compose("config", overrides=[o for o in overrides if "." not in o.split("=", 1)[0]])
                parent, _, leaf = full_key.rpartition(".")
                node = OmegaConf.select(base, parent) if parent else base
                if not OmegaConf.is_dict(node):
                    return  # e.g. a key under a group set to null: Hydra's message says enough
                valid = sorted(node.keys())
                close = difflib.get_close_matches(leaf, valid, n=1)
                hint = f"did you mean '{parent + '.' if parent else ''}{close[0]}'? " if close else ""
                raise ImgrecError(f"unknown config key '{full_key}': {hint}valid keys under '{parent or '<root>'}': "
                                  f"{', '.join(valid)} (prefix with + to add a new key)") from None
    finally:
        GlobalHydra.instance().clear()
    log_dir = Path(str(cfg.paths.log_dir))
    problem = _writable(log_dir)
    if problem:
        raise ImgrecError(f"paths.log_dir={log_dir}: cannot write run outputs there ({problem})")
    if cfg.get("split") is not None:  # its settings (fractions, folds) fail here once, not in every run of a sweep
        from hydra.utils import instantiate

        try:
            instantiate(cfg.split)
        except Exception as exc:
            raise (user_error(exc) or exc) from None
