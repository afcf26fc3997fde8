"""The ``imgrec`` command: ``imgrec run|predict [hydra overrides]`` and ``imgrec synthetic``."""

from __future__ import annotations

import argparse
import sys

USAGE = """usage: imgrec <command> [args]

commands:
  run [overrides]        train, validate and test (same as python -m imgrec.run)
  predict [overrides]    predict a folder of images from a checkpoint (python -m imgrec.predict)
  synthetic --out DIR    write the embedded synthetic dataset to DIR in the course format
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


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] in ("-h", "--help"):
        print(USAGE)
        return
    command, rest = argv[0], argv[1:]
    if command == "synthetic":
        synthetic(rest)
        return
    if command not in ("run", "predict"):
        raise SystemExit(f"imgrec: unknown command {command!r}\n{USAGE}")
    sys.argv = [f"imgrec {command}", *rest]  # Hydra reads its overrides from sys.argv
    if command == "run":
        from imgrec.run import cli as run_cli

        run_cli()
    else:
        from imgrec.predict import main as predict_main

        predict_main()


if __name__ == "__main__":
    main()
