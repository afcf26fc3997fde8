"""``python -m bench [--quick] [name ...]``: run the benchmarks, print the table, write bench/out/*.json."""

from __future__ import annotations

import argparse
import importlib

from bench.common import OUT, Result, machine

# name -> (module, keyword arguments of its run())
BENCHMARKS = {
    "feature_cache": ("feature_cache", {}),
    "loading": ("loading", {}),
    "overhead": ("overhead", {}),
    "backbone": ("backbone", {}),
    "extraction": ("extraction", {}),
    "engines": ("engines", {}),
    "partial": ("partial", {}),
    "end_to_end": ("end_to_end", {}),
    "end_to_end_arch": ("end_to_end", {"experiment": "arch_sweep"}),  # the uncached side takes hours on a CPU
    "make_run": ("end_to_end", {"make_run": True}),
}


def table(results: list[Result]) -> str:
    lines = ["| benchmark | baseline | contender | unit | baseline | contender | ratio | target | met |",
             "|---|---|---|---|---:|---:|---:|---|---|"]
    for r in results:
        lines.append(f"| {r.name} | {r.baseline} | {r.contender} | {r.unit} | {r.baseline_value:.4g} | "
                     f"{r.contender_value:.4g} | {r.ratio:.3g}x | {r.target} | {'yes' if r.met else 'NO'} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    default = [name for name in BENCHMARKS if name != "end_to_end_arch"]  # that one only by name: hours on a CPU
    parser.add_argument("names", nargs="*", default=default, choices=[*BENCHMARKS, []])
    parser.add_argument("--quick", action="store_true", help="smoke-sized runs on the synthetic data")
    args = parser.parse_args()
    results = []
    for name in args.names:
        print(f"running {name} ...", flush=True)
        module, kwargs = BENCHMARKS[name]
        result = importlib.import_module(f"bench.{module}").run(quick=args.quick, **kwargs)
        result.save()
        results.append(result)
    print(f"\nmachine: {machine()}\n{table(results)}\n(JSON in {OUT})")


if __name__ == "__main__":
    main()
