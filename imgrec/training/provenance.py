"""What a run folder records so that its result can be traced: commit, config, versions, data."""

from __future__ import annotations

import platform
import subprocess
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

from omegaconf import DictConfig, OmegaConf
from pytorch_lightning.utilities.rank_zero import rank_zero_only

from imgrec.data.corrections import read_corrections
from imgrec.utils.io import write_json, write_text

PACKAGES = ("imgrec", "torch", "torchvision", "pytorch-lightning", "torchmetrics", "hydra-core", "timm",
            "albumentations", "numpy", "wandb")


def git_commit() -> str | None:
    """The commit of the imgrec checkout (with ``-dirty`` when it has uncommitted changes), if any."""
    repo = Path(__file__).resolve().parents[2]
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=repo, capture_output=True, text=True,
                                timeout=10, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=repo,
                               capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return commit + ("-dirty" if dirty else "")


def versions() -> dict[str, str | None]:
    found: dict[str, str | None] = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            found[name] = version(name)
        except PackageNotFoundError:
            found[name] = None
    return found


@rank_zero_only  # under DDP every rank runs the whole run: one writes its records
def write_provenance(out: Path, cfg: DictConfig, data_fingerprint: str) -> None:
    own = OmegaConf.masked_copy(cfg, [k for k in cfg if k != "hydra"])  # Hydra keeps its own in .hydra/
    write_text(out / "config_resolved.yaml", OmegaConf.to_yaml(own, resolve=True))
    corrections = cfg.data.get("corrections")  # the label overlay: its hash and counts (data/corrections.py)
    write_json(out / "provenance.json", {"git_commit": git_commit(), "versions": versions(),
                                         "data_fingerprint": data_fingerprint,
                                         "corrections": corrections and read_corrections(corrections).record()})
