"""``python -m bench [--quick] [name ...]``: run the benchmarks, print the table, write bench/out/*.json."""

from __future__ import annotations

import argparse
import importlib
import inspect

import torch

from bench.common import OUT, Result, machine

# name -> (module, keyword arguments of its run())
BENCHMARKS = {
    "feature_cache": ("feature_cache", {}),
    "loading": ("loading", {}),
    "overhead": ("overhead", {}),
    "backbone": ("backbone", {}),
    "extraction": ("extraction", {}),
    "engines": ("engines", {}),
    "predict": ("predict", {}),
    "partial": ("partial", {}),
    "end_to_end": ("end_to_end", {}),
    "end_to_end_arch": ("end_to_end", {"experiment": "arch_sweep"}),  # the uncached side takes hours on a CPU
    "make_run": ("end_to_end", {"make_run": True}),
    "gpu": ("gpu", {}),  # without CUDA: one line, exit status 1
    "train_predict": ("end_to_end", {"first_run": True}),
    "scaling": ("scaling", {}),  # tens of minutes: by name only
}
BY_NAME_ONLY = ("end_to_end_arch", "scaling", "train_predict")  # hours or tens of minutes on a CPU


def table(results: list[Result]) -> str:
    lines = ["| benchmark | baseline | contender | unit | baseline | contender | ratio | target | met |",
             "|---|---|---|---|---:|---:|---:|---|---|"]
    for r in results:
        lines.append(f"| {r.name} | {r.baseline} | {r.contender} | {r.unit} | {r.baseline_value:.4g} | "
                     f"{r.contender_value:.4g} | {r.ratio:.3g}x | {r.target} | {'yes' if r.met else 'NO'} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    default = [name for name in BENCHMARKS if name not in BY_NAME_ONLY and (name != "gpu" or torch.cuda.is_available())]
    parser.add_argument("names", nargs="*", default=default, choices=[*BENCHMARKS, []])
    parser.add_argument("--quick", action="store_true", help="smoke-sized runs on the synthetic data")
    parser.add_argument("--sizes", nargs="+", type=int,
                        help="scaling: numbers of images (default 1000 4000 16000 64000)")
    parser.add_argument("--phases", nargs="+", help="scaling: phases to (re)run, the others kept from bench/out")
    parser.add_argument("--repeats", type=int, help="scaling: measurements per size and phase, the median kept (3)")
    args = parser.parse_args()
    extra = {"sizes": args.sizes, "phases": args.phases, "repeats": args.repeats}
    results = []
    for name in args.names:
        print(f"running {name} ...", flush=True)
        module, kwargs = BENCHMARKS[name]
        run = importlib.import_module(f"bench.{module}").run
        accepted = {k: v for k, v in extra.items() if v and k in inspect.signature(run).parameters}
        result = run(quick=args.quick, **kwargs, **accepted)
        result.save()
        results.append(result)
    print(f"\nmachine: {machine()}\n{table(results)}\n(JSON in {OUT})")


if __name__ == "__main__":
    main()
