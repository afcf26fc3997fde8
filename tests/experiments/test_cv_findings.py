"""REPORT.md's cross-validated verdicts: fold-by-fold differences against their spread."""

import numpy as np
import pytest

from experiments.idl2020.cv_findings import Setting, compare


def setting(name: str, values: list[float]) -> Setting:
    return Setting(name, {}, [{"val/f1_micro": v} for v in values])


@pytest.mark.parametrize("b, expect, verdict", [
    ([0.81, 0.82, 0.80, 0.81, 0.83], "+", "**holds**"),                   # +0.01 on every fold
    ([0.81, 0.82, 0.80, 0.81, 0.83], "-", "**does not hold (reversed)**"),
    ([0.81, 0.80, 0.79, 0.81, 0.81], "+", "**within the spread: not a finding here**"),  # ±0.01 around 0
    ([0.81, 0.80, 0.79, 0.81, 0.81], "0", "**holds (no difference beyond the spread)**"),
    ([0.81, 0.82, 0.80, 0.81, 0.83], "0", "**does not hold**"),
])
def test_verdict_compares_the_mean_per_fold_difference_with_its_std(b, expect, verdict):
    a = setting("a", [0.80, 0.81, 0.79, 0.80, 0.82])
    row = compare("claim", a, setting("b", b), "val/f1_micro", expect)
    assert row["verdict"] == verdict
    diff = np.array(b) - np.array([0.80, 0.81, 0.79, 0.80, 0.82])
    assert row["Δ per fold (mean ± std)"] == f"{diff.mean():+.4f} ± {diff.std(ddof=1):.4f}"
