"""Every option of every config group composes, every key under a ``_target_`` is an argument of that
target (config keys are constructor arguments), and the options that build something cheap build."""

from __future__ import annotations

import functools
import inspect
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from hydra import initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.utils import get_object, instantiate
from omegaconf import DictConfig, OmegaConf, open_dict

from imgrec.config.compose import CONF_DIR, compose_config, resolvers
from imgrec.models.module import MultiLabelModule

APPENDED = {"arch", "experiment", "preproc"}  # not in config.yaml's defaults list: chosen with +group=option
HYDRA_GROUPS = {"hydra", "hydra/launcher", "hydra/sweeper", "hydra/sweeper/pruner"}  # ours, under conf/hydra/
LABELS = ["a", "b", "c"]


def group_options() -> list[tuple[str, str]]:
    """(group, option) for every option Hydra finds: conf/ files and the generated ones (ConfigStore)."""
    resolvers.register()
    GlobalHydra.instance().clear()
    try:
        with initialize_config_dir(version_base="1.3", config_dir=str(CONF_DIR)):
            loader = GlobalHydra.instance().config_loader()
            groups = [g for g in loader.list_groups("") if g != "hydra"] + sorted(HYDRA_GROUPS)
            return [(g, o) for g in groups for o in loader.get_group_options(g)]
    finally:
        GlobalHydra.instance().clear()


OPTIONS = group_options()


def own(group: str, option: str) -> bool:
    """An option of imgrec's (not one of Hydra's or a plugin's under the same group)."""
    return group not in HYDRA_GROUPS or (CONF_DIR / group / f"{option}.yaml").is_file()


def accepted(target: Any) -> set[str] | None:
    """The keyword arguments ``target`` accepts, following ``**kwargs`` up the classes' ``__init__``;
    None when it takes any (``**kwargs`` to the end)."""
    functions = [c.__init__ for c in target.__mro__ if "__init__" in vars(c)] if inspect.isclass(target) else [target]
    names: set[str] = set()
    for fn in functions:
        params = inspect.signature(fn).parameters.values()
        names |= {p.name for p in params if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}
        if not any(p.kind == p.VAR_KEYWORD for p in params):
            return names
    return None


def not_arguments(node: Any, where: str, hydra_node: bool = False) -> list[str]:
    """Keys under ``node`` (plain containers, unresolved) that no constructor receives as an argument."""
    if isinstance(node, list):
        return [p for i, item in enumerate(node) for p in not_arguments(item, f"{where}.{i}", hydra_node)]
    if not isinstance(node, dict):
        return []
    problems = []
    if "_target_" in node:
        names = accepted(get_object(node["_target_"]))
        keys = [k for k in node if not k.startswith("_")]
        problems += [f"{where}.{k}: not an argument of {node['_target_']}" for k in keys
                     if names is not None and k not in names]
        if not hydra_node:  # a block unpacked by hand: a mapping handed to a constructor without a _target_
            problems += [f"{where}.{k}: a mapping without _target_" for k in keys
                         if isinstance(node[k], dict) and node[k] and "_target_" not in node[k]]
    return problems + [p for k, v in node.items() for p in not_arguments(v, f"{where}.{k}", hydra_node)]


def compose(tmp_path: Path, group: str, option: str) -> DictConfig:
    choice = f"{'+' if group in APPENDED else ''}{group}={option}"
    needs = ["hparams_search=optuna"] if group.startswith("hydra/sweeper") else []  # the sweeper it configures
    needs += ["model.net.input_size=32"] if group in ("model", "arch", "loss") else []  # a small net to build
    needs += [f"data.root={tmp_path}"] if (group, option) == ("data", "idl") else []
    needs += [f"data.table={tmp_path / 't.csv'}"] if (group, option) == ("data", "table") else []
    return compose_config(tmp_path / "run", [choice, *needs, f"paths.cache_dir={tmp_path / 'cache'}"])


def build_loss(cfg: DictConfig) -> torch.nn.Module:
    """``model.loss``, completed with train targets as run.py does when it needs them."""
    loss = instantiate(cfg.model.loss)
    return loss(train_targets=np.eye(len(LABELS), dtype=np.int64)) if isinstance(loss, functools.partial) else loss


def build_net(cfg: DictConfig) -> torch.nn.Module:
    """The module's parts (net factory, optimizer, loss, schedule), then the net, with untrained backbones
    (no weights to load). The module itself is left out: it measures FLOPs, slow for a config check."""
    with open_dict(cfg):
        for backbone in cfg.model.net.get("backbones") or []:
            backbone.pretrained = False
    module = instantiate(cfg.model, _partial_=True, label_names=LABELS, meta={}, loss=build_loss(cfg))
    assert module.func is MultiLabelModule
    return module.keywords["net"](num_classes=len(LABELS))


def test_every_group_and_its_options_are_found():
    groups = {g for g, _ in OPTIONS}
    assert {"data", "model", "loss", "arch", "trainer", "callbacks", "logger", "augment", "balance"} <= groups
    archs = {o for g, o in OPTIONS if g == "arch"}
    assert {f"transfer_lite{k}{h}" for k in (0, 1, 2) for h in ("", "_hidden")} < archs  # generated
    assert {"scratch_small", "scratch_medium", "scratch_deep", "ensemble"} < archs


@pytest.mark.parametrize("group, option", [pytest.param(g, o, id=f"{g}={o}") for g, o in OPTIONS if own(g, o)])
def test_option_keys_are_constructor_arguments(tmp_path, group, option):
    cfg = compose(tmp_path, group, option)
    tree = OmegaConf.to_container(cfg, resolve=False)
    hydra_tree = tree.pop("hydra")
    problems = not_arguments(tree, "cfg") + not_arguments(hydra_tree, "hydra", hydra_node=True)
    assert not problems, problems
    node = cfg.get(group.split("/")[0]) if group not in APPENDED else None
    if group in ("model", "arch"):
        with torch.no_grad():
            logits = build_net(cfg).eval()(torch.randint(0, 256, (2, 3, 32, 32), dtype=torch.uint8))
        assert logits.shape == (2, len(LABELS)) and torch.isfinite(logits).all()
    elif group == "loss":
        assert torch.isfinite(build_loss(cfg)(torch.randn(2, len(LABELS)), torch.ones(2, len(LABELS))))
    elif group == "trainer" and cfg.trainer.accelerator == "gpu" and not torch.cuda.is_available():
        pytest.skip("a GPU trainer: its keys are checked above, it cannot be built here")
    elif group in ("data", "split", "trainer") or (group in ("augment", "balance") and node is not None):
        assert instantiate(node) is not None
    elif group in ("callbacks", "logger"):
        built = {name: instantiate(c) for name, c in (node or {}).items()}
        assert set(built) == set(node or {})


def test_the_check_finds_keys_no_constructor_takes():
    head = {"_target_": "imgrec.models.heads.Head", "hidden": 1, "widht": 2}
    assert not_arguments({"net": {"_target_": "imgrec.models.scratch.ScratchNet", "head": head}}, "m") == [
        "m.net.head.widht: not an argument of imgrec.models.heads.Head"]
    by_hand = {"_target_": "imgrec.models.transfer.TransferNet", "head": {"hidden": 1}}
    assert not_arguments(by_hand, "m") == ["m.head: a mapping without _target_"]
    data = {"_target_": "imgrec.data.datamodule.SyntheticDataModule", "n_images": 1, "batch_size": 2, "root": "x"}
    assert not_arguments(data, "d") == ["d.root: not an argument of imgrec.data.datamodule.SyntheticDataModule"]
