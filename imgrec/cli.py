"""The ``imgrec`` command: ``imgrec run|predict|export [hydra overrides]`` and ``imgrec synthetic``.

``imgrec predict model=<file.onnx> ...`` goes to :mod:`imgrec.inference.onnx_predict`, decided here before anything
imports torch, Lightning or Hydra."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

USAGE = """usage: imgrec <command> [args]

commands:
  run [overrides]        train, validate and test (same as python -m imgrec.run)
  predict [overrides]    predict a folder of images from a checkpoint (python -m imgrec.predict)
                         or, with model=<file.onnx>, on onnxruntime alone (python -m imgrec.inference.onnx_predict)
  export [overrides]     ckpt=<file> format=onnx|safetensors [out=<file>] (python -m imgrec.export)
  synthetic --out DIR    write the embedded synthetic dataset to DIR in the course format
  dashboard PATH         write PATH/dashboard.html for a run, sweep or CV folder (one offline page)
  select FOLDER...       one averaged model from CV folders or finished runs (ensemble selection on held-out
                         predictions): [--out DIR] [--rounds N] [--init N]
"""


def synthetic(argv: list[str]) -> None:
    from imgrec.data.synthetic import make_synthetic, write_course_format

    parser = argparse.ArgumentParser(prog="imgrec synthetic", description="Write the synthetic dataset to disk.")
    parser.add_argument("--out", required=True, help="folder to create (images/ and annotations/)")
    parser.add_argument("--n-images", type=int, default=1200)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--drop-rate", type=float, default=0.0, help="fraction of labels left out of annotations")
    args = parser.parse_args(argv)
    root = write_course_format(make_synthetic(args.n_images, args.seed, args.drop_rate), args.out)
    print(f"wrote {args.n_images} images to {root}")


def dashboard(argv: list[str]) -> None:
    from imgrec.reporting.dashboard.page import write_dashboard
    from imgrec.utils.errors import ImgrecError

    parser = argparse.ArgumentParser(prog="imgrec dashboard", description="Write one offline HTML dashboard.")
    parser.add_argument("path", help="a run, sweep or cross-validation folder")
    parser.add_argument("--out", help="file to write (default: PATH/dashboard.html)")
    parser.add_argument("--metric", default="val/f1_micro", help="the metric that picks the best run")
    args = parser.parse_args(argv)
    try:
        path = write_dashboard(args.path, args.out, args.metric)
    except ImgrecError as err:
        raise SystemExit(f"error: {err}") from None
    print(f"dashboard: {path.resolve()}")


def select(argv: list[str]) -> None:
    from imgrec.reporting.selection import MARKDOWN, select_ensemble
    from imgrec.utils.errors import exit_on_user_error

    parser = argparse.ArgumentParser(prog="imgrec select", description=(
        "Greedy forward selection with replacement (Caruana et al., 2004) of the candidates whose averaged "
        "probabilities score the best held-out micro F1; writes one checkpoint and its record."))
    parser.add_argument("folders", nargs="+", help="CV folders (cv.json), finished runs, or sweeps of either")
    parser.add_argument("--out", help="folder to write selected.ckpt and selection.json/.md to "
                                      "(default: FOLDER/selection of the first folder)")
    parser.add_argument("--rounds", type=int, default=20, help="models added in all (weights are counts / total)")
    parser.add_argument("--init", type=int, default=1, help="start from the best N single models")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="[%(asctime)s][%(name)s] %(message)s")
    record = exit_on_user_error(select_ensemble, args.folders, args.out, args.rounds, args.init)
    checkpoint = Path(record["ensemble"]["checkpoint"])
    print((checkpoint.parent / MARKDOWN).read_text(), flush=True)
    print(f"selected ensemble: {checkpoint.resolve()}")


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] in ("-h", "--help"):
        print(USAGE)
        return
    command, rest = argv[0], argv[1:]
    if command == "synthetic":
        synthetic(rest)
        return
    if command == "dashboard":
        dashboard(rest)
        return
    if command == "select":
        select(rest)
        return
    if command == "predict" and any(arg.startswith("model=") for arg in rest):
        from imgrec.inference.onnx_predict import main as onnx_predict_main

        onnx_predict_main(rest)
        return
    if command not in ("run", "predict", "export"):
        raise SystemExit(f"imgrec: unknown command {command!r}\n{USAGE}")
    from imgrec.config.compose import require_conf
    from imgrec.utils.errors import exit_on_user_error

    exit_on_user_error(require_conf)
    sys.argv = [f"imgrec {command}", *rest]  # Hydra reads its overrides from sys.argv
    if command == "run":
        from imgrec.run import cli as run_cli

        run_cli()
    elif command == "export":
        from imgrec.export import main as export_main

        export_main()
    else:
        from imgrec.predict import main as predict_main

        predict_main()


if __name__ == "__main__":
    main()
