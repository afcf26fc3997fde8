"""The label-review loop, measured: ``python -m experiments.idl2020.label_review [--seeds N]``.

``corrections.csv`` holds the reviewed missing-label candidates. Its ``source`` column says where each
came from: ``final-test``, the final model's candidates on its 450 test images; ``cv-oof``, the top
out-of-fold candidates of the ensemble's 5-fold CV (``transfer-cv``), over that CV's train+val.

The baseline (frozen Lite0 at its own 224 px, linear head, the study's split ``split.seed=42``) is
trained with ``--seeds`` seeds twice: on the original labels, and with the accepted corrections of
images outside this split's test set (a CSV written into the logs, given as ``data.corrections``), so
that the test labels stay the original ones. Each run's test predictions, at 0.5 and at the threshold
rule the default ``thresholds`` config chooses on its val outputs (what ``imgrec predict`` applies), are
scored with scikit-learn against the original test labels and, apart, against the corrected test labels
(the accepted rows on test images).
"""

from __future__ import annotations

import argparse
import csv
from dataclasses import replace
from pathlib import Path

import pandas as pd
from sklearn.metrics import f1_score

from experiments.idl2020.reproduce import BASELINE, COMMON, SHARED, multirun
from experiments.idl2020.runs import PER_LABEL_MIN_SUPPORT as MIN_SUPPORT
from experiments.idl2020.runs import load_runs
from imgrec.data.corrections import COLUMNS, Correction, Corrections, read_corrections
from imgrec.evaluation.thresholds import choose_rule
from imgrec.training.evaluate import Evaluation

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]


def write_corrections(rows: list[Correction], path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(COLUMNS)
        writer.writerows([r.image, r.label, r.action, r.verdict] for r in rows)
    return path


def scores(logs: Path, step: str, review: Corrections) -> pd.DataFrame:
    """Per seed and threshold (0.5, the default rule): test micro F1 against the original and the
    corrected test labels."""
    table = []
    for run in load_runs(logs, step):
        ev = run.evaluation()
        names = [ev.names[i] for i in ev.test.indices]
        test_names = set(names)
        on_test = replace(review, rows=[r for r in review.rows if r.image in test_names])
        fixed = on_test.corrected(ev.test.targets, names, ev.label_names)
        rule = choose_rule(ev.val.probs, ev.val.targets, MIN_SUPPORT)
        for threshold, cut in (("0.5", 0.5), ("default rule", rule.applied())):
            predicted = ev.test.probs > cut
            table.append({"seed": run.override("seed"), "variant": step, "threshold": threshold,
                          "original test labels": f1_score(ev.test.targets, predicted, average="micro"),
                          "corrected test labels": f1_score(fixed, predicted, average="micro")})
    return pd.DataFrame(table)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=SHARED / "idl2020-dev")
    parser.add_argument("--corrections", type=Path, default=HERE / "corrections.csv")
    parser.add_argument("--logs", type=Path, default=ROOT / "logs" / "label-review")
    parser.add_argument("--seeds", type=int, default=5)
    args = parser.parse_args()
    logs, review = args.logs.resolve(), read_corrections(args.corrections)
    shared = [*COMMON, f"data.root={args.data.resolve()}"]
    seeds = f"seed={','.join(str(s) for s in range(1, args.seeds + 1))}"
    multirun(logs, "original", [*BASELINE, seeds], shared, [])
    ev = Evaluation.load(load_runs(logs, "original")[0].folder / "predictions.npz")
    test = {ev.names[i] for i in ev.test.indices}
    train_only = [r for r in review.rows if r.image not in test]
    on_test = [r for r in review.rows if r.image in test and r.verdict == "accept"]
    path = write_corrections(train_only, logs / "train_only_corrections.csv")
    print(f"{sum(r.verdict == 'accept' for r in train_only)} accepted corrections on train+val images "
          f"(training only), {len(on_test)} on test images (scoring only)")
    multirun(logs, "corrected-train", [*BASELINE, seeds, f"data.corrections={path}"], shared, [])
    table = pd.concat([scores(logs, step, review) for step in ("original", "corrected-train")])
    metrics = ["original test labels", "corrected test labels"]
    print(table.to_markdown(index=False, floatfmt=".4f"))
    for threshold, part in table.groupby("threshold"):
        paired = part.pivot(index="seed", columns="variant", values=metrics)
        print(f"\nat {threshold}, mean ± std over seeds: "
              + "; ".join(f"{m}: original {paired[m]['original'].mean():.4f} ± {paired[m]['original'].std():.4f}, "
                          f"corrected for training {paired[m]['corrected-train'].mean():.4f} ± "
                          f"{paired[m]['corrected-train'].std():.4f}, paired difference "
                          f"{(paired[m]['corrected-train'] - paired[m]['original']).mean():+.4f} ± "
                          f"{(paired[m]['corrected-train'] - paired[m]['original']).std():.4f}" for m in metrics))


if __name__ == "__main__":
    main()
