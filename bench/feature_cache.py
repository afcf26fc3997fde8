"""1. Frozen transfer training, epochs 2..N: cached features vs recomputing the backbone every epoch.

Both sides train the same EfficientNet-Lite0 head with the same seed; the final metrics must match.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

from bench.common import IDL_DEV, Result, timer_overrides
from imgrec.config.compose import compose_config
from imgrec.run import train


def timed_run(overrides: list[str], workdir: Path) -> tuple[list[float], dict[str, float]]:
    timings = workdir / "epochs.json"
    summary = train(compose_config(workdir / "run", [*overrides, *timer_overrides(timings)]))
    return json.loads(timings.read_text()), summary.metrics


def run(quick: bool = False) -> Result:
    data = ["data=synthetic", "data.n_images=300"] if quick else ["data=idl", f"data.root={IDL_DEV}"]
    epochs = 3 if quick else 4
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        common = [*data, "model.net.backbones.0.input_size=128", f"trainer.max_epochs={epochs}", "logger=none",
                  "callbacks.early_stopping.patience=100", f"paths.cache_dir={tmp / 'cache'}"]
        cached, cached_metrics = timed_run([*common, "cache.features=true"], tmp / "cached")
        full, full_metrics = timed_run([*common, "cache.features=false"], tmp / "full")
    per_epoch_cached, per_epoch_full = sum(cached[1:]) / len(cached[1:]), sum(full[1:]) / len(full[1:])
    same = all(abs(cached_metrics[k] - full_metrics[k]) < 1e-4 for k in ("val/f1_micro", "test/f1_micro"))
    ratio = per_epoch_full / per_epoch_cached
    return Result("feature_cache", "backbone every epoch", "cached features", per_epoch_full, per_epoch_cached,
                  "s/epoch (epochs 2..N)", ratio, ">= 50x", ratio >= 50 and same,
                  {"same_final_metrics": same, "test_f1_cached": cached_metrics["test/f1_micro"],
                   "test_f1_full": full_metrics["test/f1_micro"], "epochs": epochs, "input_size": 128,
                   "data": data[-1]})
