"""The named transfer architectures, generated into Hydra's ConfigStore (group ``arch``, beside the
YAML options in ``conf/arch/``) rather than written out as nine near-identical files:

- ``+arch=transfer_lite{0,1,2}`` and ``..._hidden``: each offline backbone, frozen, with a linear head or
  with the study's 256-unit hidden layer;
- ``+arch=partial_lite{0,1,2}``: the backbone's last stages (:data:`PARTIAL_BLOCKS`) trained on cached
  activations (``model.net.train_blocks``), with a linear head, AdamW (weight decay
  :data:`WEIGHT_DECAY`) and a cosine learning rate over the run's ``trainer.max_epochs``
  (:data:`PARTIAL_EPOCHS`). On one dev split (Lite0, 224 px, 8 epochs) that schedule scored 0.832 test
  micro F1 where plain Adam at a constant rate scored 0.818 and the frozen linear probe 0.806; over
  5 folds, README "The best model".
:func:`register` runs wherever imgrec composes its config (:mod:`imgrec.config.compose`, :mod:`imgrec.run`).
"""

from __future__ import annotations

from typing import Any

from hydra.core.config_store import ConfigStore

BACKBONES = ("efficientnet_lite0", "efficientnet_lite1", "efficientnet_lite2")  # the offline weights
HEADS = {"": 0, "_hidden": 256}  # option suffix -> model.net.head.hidden
# Stages trained, by cost and out-of-fold F1 over 5 folds (README "The best model"). Lite0's last stage
# alone (K=1) costs a quarter of K=2 but scored 0.008 lower out of fold; K=3 scored as K=2 at 1.3 times
# its cost. Lite2 with K=2 scored 0.008 higher out of fold than K=1 (on test +0.004, within the spread),
# but its epoch takes 90 s on 2 cores against 22 s (5 blocks on 17 x 17 activations at 260 px): 62 min for
# its CV against 17, which would take +experiment=best past its 90 min, so Lite2 trains its last stage only.
PARTIAL_BLOCKS = {"efficientnet_lite0": 2, "efficientnet_lite1": 2, "efficientnet_lite2": 1}
PARTIAL_EPOCHS, WEIGHT_DECAY = 8, 0.05


def transfer_arch(backbone: str, hidden: int) -> dict[str, Any]:
    """A ``# @package _global_`` arch option: model=transfer with ``backbone`` and a head of ``hidden`` units.
    The backbone entry is stated in full, since a list in a config replaces the whole list."""
    entry = {"_target_": "imgrec.models.backbones.create_backbone", "name": backbone, "pretrained": True,
             "checkpoint": None, "input_size": None}
    return {"defaults": [{"override /model": "transfer"}, "_self_"],
            "model": {"net": {"backbones": [entry], "head": {"hidden": hidden}}}}


def partial_arch(backbone: str) -> dict[str, Any]:
    """A ``# @package _global_`` arch option: :func:`transfer_arch` with its top stages trained."""
    option = transfer_arch(backbone, 0)
    option["model"]["net"]["train_blocks"] = PARTIAL_BLOCKS[backbone]
    option["model"]["optimizer"] = {"_target_": "torch.optim.AdamW", "_partial_": True, "lr": 0.001,
                                    "weight_decay": WEIGHT_DECAY}
    option["model"]["scheduler"] = {"_target_": "torch.optim.lr_scheduler.CosineAnnealingLR", "_partial_": True,
                                    "T_max": "${trainer.max_epochs}"}
    option["trainer"] = {"max_epochs": PARTIAL_EPOCHS}
    return option


def register() -> None:
    store = ConfigStore.instance()
    for backbone in BACKBONES:
        for suffix, hidden in HEADS.items():
            name = f"transfer_{backbone.removeprefix('efficientnet_')}{suffix}"
            store.store(group="arch", name=name, node=transfer_arch(backbone, hidden), package="_global_")
        name = f"partial_{backbone.removeprefix('efficientnet_')}"
        store.store(group="arch", name=name, node=partial_arch(backbone), package="_global_")
