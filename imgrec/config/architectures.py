"""The named frozen-transfer architectures, ``+arch=transfer_lite{0,1,2}`` and ``..._hidden``: each offline
backbone with a linear head or with the study's 256-unit hidden layer.

They differ only in those two values, so they are generated here into Hydra's ConfigStore (group
``arch``, beside the YAML options in ``conf/arch/``) rather than written out as six near-identical files.
:func:`register` runs wherever imgrec composes its config (:mod:`imgrec.config.compose`, :mod:`imgrec.run`).
"""

from __future__ import annotations

from typing import Any

from hydra.core.config_store import ConfigStore

BACKBONES = ("efficientnet_lite0", "efficientnet_lite1", "efficientnet_lite2")  # the offline weights
HEADS = {"": 0, "_hidden": 256}  # option suffix -> model.net.head.hidden


def transfer_arch(backbone: str, hidden: int) -> dict[str, Any]:
    """A ``# @package _global_`` arch option: model=transfer with ``backbone`` and a head of ``hidden`` units.
    The backbone entry is stated in full, since a list in a config replaces the whole list."""
    entry = {"_target_": "imgrec.models.backbones.create_backbone", "name": backbone, "pretrained": True,
             "checkpoint": None, "input_size": None}
    return {"defaults": [{"override /model": "transfer"}, "_self_"],
            "model": {"net": {"backbones": [entry], "head": {"hidden": hidden}}}}


def register() -> None:
    store = ConfigStore.instance()
    for backbone in BACKBONES:
        for suffix, hidden in HEADS.items():
            name = f"transfer_{backbone.removeprefix('efficientnet_')}{suffix}"
            store.store(group="arch", name=name, node=transfer_arch(backbone, hidden), package="_global_")
