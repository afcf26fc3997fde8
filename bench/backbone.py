"""4. Backbone efficiency: feature-extraction images/s and achieved GFLOP/s against a large matmul."""

from __future__ import annotations

import torch
from torch.utils.flop_counter import FlopCounterMode

from bench.common import Result, best_of
from imgrec.models.backbones import create_backbone


def matmul_gflops(n: int = 2048) -> float:
    a, b = torch.randn(n, n), torch.randn(n, n)
    a @ b
    return 2 * n**3 / best_of(lambda: a @ b, repeat=5) / 1e9


def extraction(size: int, batch: int = 64) -> tuple[float, float]:
    net = create_backbone("efficientnet_lite0", input_size=size).eval()
    x = torch.randint(0, 255, (batch, 3, 128, 128), dtype=torch.uint8)
    with torch.inference_mode():
        with FlopCounterMode(display=False) as counter:
            net(x[:1])
        flops_per_image = counter.get_total_flops()
        net(x)
        seconds = best_of(lambda: net(x))
    images = batch / seconds
    return images, images * flops_per_image / 1e9


def run(quick: bool = False) -> Result:
    peak = matmul_gflops(1024 if quick else 2048)
    details = {}
    for size in (128, 224):
        images, gflops = extraction(size, 16 if quick else 64)
        details[f"lite0_{size}px_images_per_s"] = images
        details[f"lite0_{size}px_gflops"] = gflops
    achieved = details["lite0_224px_gflops"]
    return Result("backbone", "float32 matmul (peak)", "Lite0 feature extraction, 224 px", peak, achieved,
                  "GFLOP/s", achieved / peak, "report", True, details)
