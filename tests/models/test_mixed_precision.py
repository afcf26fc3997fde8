"""trainer.precision=bf16-mixed (trainer=gpu's precision) on the CPU: the autocast path, so that dtype mistakes
show without a GPU. A frozen run (features cached, head trained under autocast) against the same run in
float32 with the same seed: features are extracted in float32 whatever the precision, and the head's
logits are float32, so the two agree (measured: to 1e-4; allowed: 0.02 F1/mAP, 0.01 loss)."""

import numpy as np
import torch
from safetensors.torch import load_file

from imgrec.run import train
from tests.conftest import compose_cfg, most_frequent_f1

TOLERANCE = {"val/f1_micro": 0.02, "test/f1_micro": 0.02, "test/map": 0.02, "val/loss": 0.01, "test/loss": 0.01}


def test_bf16_mixed_frozen_run_matches_float32(tmp_path):
    runs = {p: train(compose_cfg(tmp_path / p, ["trainer.max_epochs=8", f"trainer.precision={p}"]))
            for p in ("32-true", "bf16-mixed")}  # own caches: the bf16 run extracts its features itself
    fp32, bf16 = runs["32-true"], runs["bf16-mixed"]
    for key, tolerance in TOLERANCE.items():
        assert abs(bf16.metrics[key] - fp32.metrics[key]) <= tolerance, (key, bf16.metrics[key], fp32.metrics[key])
    with np.load(tmp_path / "bf16-mixed" / "run" / "predictions.npz") as saved:
        probs, targets = saved["test_probs"], saved["test_targets"]
    assert bf16.metrics["test/f1_micro"] > most_frequent_f1(targets) + 0.15  # it learned
    assert probs.dtype == np.float32
    on_bf16_grid = torch.from_numpy(probs).bfloat16().float().numpy() == probs
    assert not on_bf16_grid.all()  # float32 probabilities, not bf16 ones cast up
    # the cached features are the float32 ones (bf16 moves Lite0's by ~8% of their norm at 64 px)
    (fp32_file,), (bf16_file,) = ((tmp_path / p / "cache" / "features").glob("*.safetensors") for p in runs)
    assert fp32_file.name == bf16_file.name
    assert torch.equal(load_file(fp32_file)["features"], load_file(bf16_file)["features"])
