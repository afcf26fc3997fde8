"""Which threshold rule should a run apply by default? ``python -m experiments.idl2020.threshold_rules <folder>...``

Every finished run under the folders (their ``predictions.npz``) is re-scored: thresholds fitted on its
val outputs, applied to its test outputs, under each policy: a fixed rule (0.5, global, per-label), or
the rule :func:`imgrec.evaluation.thresholds.choose_rule` picks by 5-fold cross-fitting on val among all three
rules or among 0.5 and global (the default ``thresholds.rules``). Prints, per policy, the mean test
micro F1 and its difference from 0.5 over the runs (mean, std, wins and losses), and how often the
three-way choice picked per-label. Test never chooses anything here; it only scores.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pandas as pd
from sklearn.metrics import f1_score

from experiments.idl2020.runs import PER_LABEL_MIN_SUPPORT as MIN_SUPPORT
from imgrec.evaluation.thresholds import DEFAULT_RULES, RULES, best_rule, choose_rule
from imgrec.training.evaluate import Evaluation


def policies(ev: Evaluation) -> dict[str, float]:
    """Test micro F1 of each policy, thresholds fitted on val only."""
    p, y = ev.val.probs, ev.val.targets
    every = choose_rule(p, y, MIN_SUPPORT, rules=RULES)  # its scores cover every rule
    default = best_rule(every.scores, DEFAULT_RULES)

    def test(rule: str) -> float:
        return f1_score(ev.test.targets, ev.test.probs > every.applied(rule), average="micro")

    return {**{f"always {r}": test(r) for r in RULES}, "chosen among all three": test(every.rule),
            "chosen among 0.5 / global": test(default), "picked per_label": float(every.rule == "per_label")}


def main(folders: list[Path]) -> None:
    table = pd.DataFrame([policies(Evaluation.load(path)) for folder in folders
                          for path in sorted(folder.rglob("predictions.npz"))])
    picked = int(table.pop("picked per_label").sum())
    gain = table.sub(table["always 0.5"], axis=0)
    summary = pd.DataFrame({"test F1": table.mean(), "minus 0.5": gain.mean(), "std": gain.std(),
                            "wins": (gain > 0).sum(), "losses": (gain < 0).sum()})
    print(f"{len(table)} runs; the three-way choice picked per_label in {picked}")
    print(summary.to_markdown(floatfmt=".4f"))
    paired = table["chosen among 0.5 / global"] - table["chosen among all three"]
    print(f"paired, 0.5 / global minus all three: {paired.mean():+.4f} ± {paired.std():.4f}")


if __name__ == "__main__":
    if len(sys.argv) < 2:
        raise SystemExit(__doc__)
    main([Path(a) for a in sys.argv[1:]])
