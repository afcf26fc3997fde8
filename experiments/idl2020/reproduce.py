"""``make reproduce``: the study on ``../shared/data/idl2020-dev``, from the runs to ``REPORT.md``.

Every step is a Hydra multirun of ``python -m imgrec.run`` into ``logs/idl2020/<step>/`` (checkpoints
stay there, out of git). A run that finished (its ``metrics.json``) is skipped, so an interrupted
reproduce continues where it stopped and a second one only rewrites the report. Frozen backbones
train on cached features (``logs/cache``), so the runs of a backbone share one extraction.

Steps: the preprocessing sweep; the architecture sweep (transfer, scratch, fine-tuning); balancing by
oversampling, sampler weights or the loss; the preprocessing and frozen-architecture comparisons again
as 5-fold cross-validations (cheap on cached features); three seeds of the top frozen configurations and of the
baseline; the study's final configuration (chosen on validation only); the project's final model,
``+experiment=best`` (chosen on out-of-fold predictions only; its frozen candidates are the
``transfer-cv`` step's), and its predictions for the test sample;
then ``experiments/idl2020/REPORT.md`` (:mod:`experiments.idl2020.report`).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

from experiments.idl2020 import best_model
from experiments.idl2020.cv_findings import CV_STEPS, FOLDS, TRANSFER
from experiments.idl2020.report import write_report
from experiments.idl2020.runs import final_model, load_runs
from imgrec.reporting.selection import FOLDER, RECORD
from imgrec.utils.io import write_json

ROOT = Path(__file__).resolve().parents[2]
SHARED = ROOT.parent / "shared" / "data"

# The study's setting, with the split fixed across seeds so that every run is scored on the same test images.
COMMON = ["data=idl", "logger=csv", "split.seed=42"]
BASELINE = ["+arch=transfer_lite0", "model.net.input_size=null"]  # frozen Lite0, linear head, its own 224 px
STEPS: dict[str, list[str]] = {
    # §4.1: split; + augmentation (4 cached views per image); + augmentation + oversampling. Lite0 at 128 px.
    "preproc": ["+experiment=preproc_sweep", "model.net.input_size=128"],
    # §4.2/§4.4: each backbone at the images' own 128 px and at its own (upsampled) size, ± the hidden layer.
    "transfer": ["+arch=" + ",".join(TRANSFER), "model.net.input_size=128,null"],
    # Balancing the train split without copies of images, or with them, against none; on the baseline.
    "balancing": [*BASELINE, "balance=none,oversample,sampler", "loss=bce,pos_weight,asl"],
    # §4.3: a residual and an inception CNN from scratch, 128 px; up to 30 epochs (10-25 s each on 2 CPU cores).
    "scratch": ["+arch=scratch_small,scratch_medium", "trainer.max_epochs=30"],
    # Lite0 fine-tuned end to end at 128 px (one epoch with the backbone frozen first; ~75 s an epoch).
    "finetune": ["+arch=transfer_lite0", "model.net.input_size=128", "model.net.freeze=false",
                 "model.finetuning.frozen_epochs=1", "trainer.max_epochs=10"],
}
SEEDS = "1,2,3"
TOP = 3  # frozen configurations run with SEEDS, besides the baseline


def multirun(logs: Path, step: str, overrides: list[str], shared: list[str], extras: list[str]) -> None:
    """One sweep into ``<logs>/<step>``; a failed member is recorded there and the steps go on.
    The step's wall time is added to ``<logs>/timings.json`` when it finished new runs, so the
    report states the compute of every step, also across interrupted reproduces. ``extras`` (the
    user's overrides) come last, so that they win over the step's."""
    args = [sys.executable, "-m", "imgrec.run", "-m", *shared, f"task_name=idl2020_{step}", *overrides, *extras,
            f"hydra.sweep.dir={logs / step}"]
    print(f"\n=== {step}: {' '.join(args[2:])}", flush=True)
    before, start = len(load_runs(logs, step)), time.time()
    if subprocess.run(args, cwd=ROOT).returncode != 0:
        print(f"warning: {step}: some runs failed (see {logs / step}/results.md)", flush=True)
    if len(load_runs(logs, step)) > before:
        timings = read_timings(logs)
        timings[step] = timings.get(step, 0.0) + time.time() - start
        write_json(logs / "timings.json", timings)


def read_timings(logs: Path) -> dict[str, float]:
    path = logs / "timings.json"
    return json.loads(path.read_text()) if path.is_file() else {}


def best_checkpoint(logs: Path) -> Path:
    """The model ``+experiment=best`` selected (its sweep's ``selection.json``)."""
    record = logs / best_model.STEP / FOLDER / RECORD
    if not record.is_file():
        raise SystemExit(f"error: {record}: missing; the best step did not finish (see {logs / best_model.STEP})")
    return Path(json.loads(record.read_text())["ensemble"]["checkpoint"])


def top_frozen(logs: Path, shared: list[str]) -> list[list[str]]:
    """The ``TOP`` configurations with the best val micro F1 of the transfer and balancing steps (not
    the baseline itself, which is seeded anyway). Fine-tuned and scratch runs are left out: three seeds
    of them would take most of an hour more on a CPU."""
    defaults = {"balance=none", "loss=bce"}  # the balancing step's plain member is the baseline itself
    candidates = []
    for step in ("transfer", "balancing"):
        for run in load_runs(logs, step):  # every model of these two steps is frozen
            own = [o for o in run.overrides if o not in {*shared, *defaults} and not o.startswith("task_name=")]
            candidates.append((run.m("val/f1_micro"), own))
    chosen: list[list[str]] = []
    for _, overrides in sorted(candidates, key=lambda c: -c[0]):
        if sorted(overrides) != sorted(BASELINE) and sorted(overrides) not in map(sorted, chosen):
            chosen.append(overrides)
        if len(chosen) == TOP:
            break
    return chosen


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=SHARED / "idl2020-dev", help="a course-format folder")
    parser.add_argument("--predict", type=Path, default=SHARED / "idl2020-test-sample",
                        help="images for the final model's results.txt")
    parser.add_argument("--logs", type=Path, default=ROOT / "logs" / "idl2020", help="where the runs go")
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent, help="where REPORT.md goes")
    parser.add_argument("overrides", nargs="*", help="added to every run, e.g. trainer=gpu (make reproduce ARGS=...)")
    args = parser.parse_args()
    if not (args.data / "annotations").is_dir():
        raise SystemExit(f"error: {args.data}: not a course-format folder (no annotations/ in it)")
    data, logs, out = args.data.resolve(), args.logs.resolve(), args.out.resolve()
    shared, extras = [*COMMON, f"data.root={data}"], args.overrides
    for step, overrides in STEPS.items():
        multirun(logs, step, overrides, shared, extras)
    for step, overrides in CV_STEPS.items():  # the frozen comparisons again, as 5-fold cross-validations
        multirun(logs, step, [*overrides, *FOLDS], shared, extras)
    # seeds-0 is the baseline, seeds-K the K-th best frozen configuration.
    for k, config in enumerate([BASELINE, *top_frozen(logs, [*shared, *extras])]):
        multirun(logs, f"seeds-{k}", [*config, f"seed={SEEDS}"], shared, extras)
    final = final_model(logs, [*shared, *extras])
    multirun(logs, "final", final.overrides, shared, extras)
    multirun(logs, best_model.STEP, best_model.overrides(logs), shared, extras)
    predict = [sys.executable, "-m", "imgrec.predict", f"ckpt={best_checkpoint(logs)}",
               f"input={args.predict.resolve()}", f"out={out / 'predictions'}"]
    print(f"\n=== predict: {' '.join(predict[2:])}", flush=True)
    (out / "predictions" / "predict.log").unlink(missing_ok=True)  # Hydra appends: keep this predict's log only
    subprocess.run(predict, cwd=ROOT, check=True)
    write_report(logs, out, data, args.predict, [*shared, *extras], read_timings(logs))


if __name__ == "__main__":
    main()
