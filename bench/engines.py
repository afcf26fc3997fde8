"""6. Engines for frozen-feature extraction on the CPU: images/s of each engine of ``imgrec.features.engines`` on the
real path (decoded uint8 images -> NCHW batches -> resize + normalise + network), for Lite0, Lite2 and
their ensemble at 128 px and at native size (224 / 260 px).

The engines are measured side by side: each round runs every engine once over the same images, in an
order that rotates between rounds, and each engine keeps its best round, so load from other processes
hits them alike. The ensemble's rate follows from its members' (the feature cache extracts each
backbone on its own, so its time is the sum of theirs). First-call costs (export, compilation) are
reported apart: they are paid once per backbone and input size.
"""

from __future__ import annotations

import time

import numpy as np
import torch

from bench.common import IDL_DEV, Result
from imgrec.data.images import Decoding, decode_images
from imgrec.data.readers import list_images
from imgrec.data.synthetic import make_synthetic
from imgrec.features.engines import ENGINES, features_fn
from imgrec.models.backbones import create_backbone

NATIVE = {"efficientnet_lite0": 224, "efficientnet_lite2": 260}
SHORT = {"efficientnet_lite0": "Lite0", "efficientnet_lite2": "Lite2"}


def decoded_images(n: int) -> tuple[np.ndarray, str]:
    """``n`` dev images as the decoded-image cache holds them (uint8 NHWC, 128 px); synthetic without the data."""
    if IDL_DEV.is_dir():
        images, _, _ = decode_images(list_images(IDL_DEV / "images")[:n], Decoding(128))
        return images, f"{n} images of idl2020-dev (128 px JPEG, decoded)"
    return make_synthetic(n, seed=0).images, f"{n} synthetic images (128 px)"


def extract_all(fn, images: np.ndarray, batch: int) -> torch.Tensor:
    return torch.cat([fn(torch.from_numpy(images[i:i + batch]).permute(0, 3, 1, 2))
                      for i in range(0, len(images), batch)])


def measure(name: str, size: int, images: np.ndarray, engines: tuple[str, ...], rounds: int,
            batch: int) -> dict[str, dict[str, float]]:
    """Per engine: images/s (best round), first-call seconds, and the largest feature difference from eager."""
    backbone = create_backbone(name, input_size=size)
    fns, stats = {}, {}
    reference = None
    for engine in engines:
        start = time.perf_counter()
        try:
            fns[engine] = features_fn(backbone, engine)
            features = fns[engine](torch.from_numpy(images[:batch]).permute(0, 3, 1, 2))
        except Exception as err:  # an engine that does not run here is reported, not fatal
            stats[engine] = {"error": f"{type(err).__name__}: {str(err).splitlines()[0][:160]}"}
            fns.pop(engine, None)
            continue
        reference = features if engine == "eager" else reference
        stats[engine] = {"first_call_s": time.perf_counter() - start,
                         "max_abs_diff": float((features - reference).abs().max()) if reference is not None else 0.0}
    times: dict[str, list[float]] = {engine: [] for engine in fns}
    order = list(fns)
    for r in range(rounds):
        for engine in order[r % len(order):] + order[:r % len(order)]:
            start = time.perf_counter()
            extract_all(fns[engine], images, batch)
            times[engine].append(time.perf_counter() - start)
    for engine, seconds in times.items():
        stats[engine]["images_per_s"] = len(images) / min(seconds)
        stats[engine]["round_s"] = seconds
    return stats


def run(quick: bool = False, rounds: int = 2, engines: tuple[str, ...] = ENGINES, n_images: int = 256,
        native_images: int = 64, names: tuple[str, ...] = tuple(NATIVE)) -> Result:
    """``n_images`` at 128 px, the first ``native_images`` of them at native size, batches of 32."""
    torch.manual_seed(0)
    n_small, n_native, batch = (16, 8, 8) if quick else (n_images, native_images, 32)
    engines = tuple(e for e in engines if e != "compile") if quick else engines  # compiling takes minutes
    names = ("efficientnet_lite0",) if quick else names
    images, source = decoded_images(n_small)
    details: dict = {"images": source, "native_images": n_native, "batch": batch, "rounds": rounds,
                     "torch_threads": torch.get_num_threads()}
    for setting in ("128", "native"):
        for name in names:
            size = 128 if setting == "128" else NATIVE[name]
            subset = images if setting == "128" else images[:n_native]
            details[f"{SHORT[name]}@{size}"] = measure(name, size, subset, engines, rounds, batch)
        if len(names) == 2:  # the ensemble: both members' extractions, one after the other
            a, b = (details[f"{SHORT[n]}@{128 if setting == '128' else NATIVE[n]}"] for n in names)
            label = "Lite0+Lite2@128" if setting == "128" else "Lite0@224+Lite2@260"
            details[label] = {e: {"images_per_s": 1 / (1 / a[e]["images_per_s"] + 1 / b[e]["images_per_s"])}
                              for e in engines if "images_per_s" in a.get(e, {}) and "images_per_s" in b.get(e, {})}
    rows = {k: v for k, v in details.items() if "@" in k}
    key = "Lite0@224+Lite2@260" if "Lite0@224+Lite2@260" in rows else list(rows)[-1]
    eager = rows[key]["eager"]["images_per_s"]
    best = max((e for e in rows[key] if e != "eager"), key=lambda e: rows[key][e]["images_per_s"])
    details["table"] = markdown(rows, engines)
    print(details["table"])
    contender = rows[key][best]["images_per_s"]
    return Result("engines", f"eager fp32, {key}", f"{best}, {key}", eager, contender, "images/s",
                  contender / eager, ">= 1.5x to become the default", contender / eager >= 1.5, details)


def markdown(rows: dict, engines: tuple[str, ...]) -> str:
    lines = ["| model @ px | " + " | ".join(engines) + " |", "|---|" + "---:|" * len(engines)]
    for model, stats in rows.items():
        eager = stats.get("eager", {}).get("images_per_s")
        cells = []
        for engine in engines:
            s = stats.get(engine, {})
            if "images_per_s" not in s:
                cells.append("failed" if "error" in s else "-")
            else:
                ratio = f" ({s['images_per_s'] / eager:.2f}x)" if eager and engine != "eager" else ""
                cells.append(f"{s['images_per_s']:.1f}{ratio}")
        lines.append(f"| {model} | " + " | ".join(cells) + " |")
    return "\n".join(lines)
