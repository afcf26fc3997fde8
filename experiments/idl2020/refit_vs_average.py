"""Refit on all of train+val, or average the fold models? A measurement for a frozen linear head.

``python -m experiments.idl2020.refit_vs_average <cv folder> <features .safetensors>`` takes a finished
``+experiment=cv`` of a frozen single-backbone linear head and the cached features it trained on
(``<cache>/features/<key>.safetensors``, named in the runs' logs), refits the head on every train+val
image for the folds' median best epoch (no val is left to stop early), 5 seeds, with the runs' optimizer
(Adam 1e-3, batch 64, BCE), and prints its test micro F1 beside the averaged fold models' (``cv.json``).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file
from sklearn.metrics import f1_score

from imgrec.training.run_summary import RunSummary


def refit(features: torch.Tensor, targets: torch.Tensor, epochs: int, seed: int) -> torch.nn.Linear:
    torch.manual_seed(seed)
    head = torch.nn.Linear(features.shape[1], targets.shape[1])
    optimizer = torch.optim.Adam(head.parameters(), 1e-3)
    for _ in range(epochs):
        order = torch.randperm(len(features))
        for i in range(0, len(features), 64):
            batch = order[i:i + 64]
            optimizer.zero_grad()
            torch.nn.functional.binary_cross_entropy_with_logits(head(features[batch]), targets[batch]).backward()
            optimizer.step()
    return head


def main(cv_dir: Path, features_file: Path) -> None:
    cv = json.loads((cv_dir / "cv.json").read_text())
    features = load_file(features_file)["features"][:, 0]
    oof = np.load(cv_dir / "oof.npz")
    with np.load(Path(cv["runs"][0]) / "predictions.npz") as z:
        test, test_targets = z["test_indices"], z["test_targets"]
    best = [int(Path(RunSummary.read(run).checkpoint).stem.split("_")[1]) + 1 for run in cv["runs"]]
    epochs, threshold = int(np.median(best)), cv["thresholds"]["global_threshold"]
    scores = []
    for seed in range(5):
        head = refit(features[oof["indices"]], torch.from_numpy(oof["targets"].astype(np.float32)), epochs, seed)
        with torch.no_grad():
            probs = torch.sigmoid(head(features[test])).numpy()
        scores.append([f1_score(test_targets, probs > t, average="micro") for t in (0.5, threshold)])
    mean, std = np.mean(scores, axis=0), np.std(scores, axis=0, ddof=1)
    print(f"refit ({epochs} epochs, 5 seeds): test micro F1 {mean[0]:.4f} ± {std[0]:.4f} at 0.5, "
          f"{mean[1]:.4f} ± {std[1]:.4f} at the out-of-fold global threshold {threshold:.3f}")
    final = cv["final"]
    print(f"fold models averaged: {final['test/f1_micro']:.4f} at 0.5, {final['test_tuned/f1_micro']:.4f} at "
          f"the chosen rule ({cv['thresholds']['threshold_rule']})")


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]))
