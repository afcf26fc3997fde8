"""Ensemble selection (Caruana et al., 2004, "Ensemble selection from libraries of models"): greedy
forward selection, with replacement, of the models whose averaged probabilities score best on held-out
predictions. Torch-free: it sees only probability arrays.

The score (:func:`heldout_f1`) is the project's: micro F1 at the threshold rule the run's
:class:`~imgrec.evaluation.thresholds.ThresholdPolicy` chooses, each row decided by thresholds fitted on
the other groups (the CV folds, or a single val split's random parts). It is what ``cv.json`` reports as a
rule's held-out score, so the ensemble is chosen on the number a setting is judged by, with the
threshold fit itself kept out of sample. A smooth proxy (log loss) would rank calibrated models, not
the decisions the course scores.

Of the paper's refinements, ``init`` (start from the best N single models) is kept: one line, and it
steadies a long library. Bagging the library is left out: it pays when hundreds of models, many poor,
let the greedy steps overfit; a library here is a handful of settings, each a CV.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from imgrec.evaluation.micro import micro_scores
from imgrec.evaluation.thresholds import ThresholdPolicy, best_rule, cross_fitted_predictions
from imgrec.utils.errors import ImgrecError

Score = Callable[[np.ndarray], float]  # averaged probabilities (N, C) -> held-out score, higher is better


@dataclass(frozen=True)
class HeldOut:
    """The held-out score of one set of probabilities: the rule the policy chooses, its cross-fitted micro
    F1 over every row, and the same decisions scored within each group (a CV's folds)."""

    rule: str
    f1_micro: float
    per_group: dict[int, float]

    @property
    def spread(self) -> tuple[float, float]:
        """Mean and std (ddof 1) over the groups."""
        values = np.array(list(self.per_group.values()))
        return float(values.mean()), float(values.std(ddof=1)) if len(values) > 1 else 0.0


def heldout_f1(probs: np.ndarray, targets: np.ndarray, groups: np.ndarray, policy: ThresholdPolicy) -> HeldOut:
    """Cross-fitted micro F1 of ``probs`` at the rule ``policy`` chooses (the folds as groups)."""
    targets = np.asarray(targets).astype(bool)
    predicted = cross_fitted_predictions(probs, targets, groups, policy.min_support, policy.shrink)
    scores = {rule: micro_scores(targets, predicted[rule])["f1_micro"] for rule in policy.rules}
    rule = best_rule(scores, policy.rules)
    per_group = {int(g): micro_scores(targets[groups == g], predicted[rule][groups == g])["f1_micro"]
                 for g in np.unique(groups)}
    return HeldOut(rule, scores[rule], per_group)


@dataclass(frozen=True)
class Selection:
    """``counts[i]``: times candidate ``i`` was added to the best ensemble found; ``history``: the
    candidate added in each round and the score after it (the search went on past the best)."""

    counts: np.ndarray
    score: float
    history: list[tuple[int, float]]

    @property
    def weights(self) -> np.ndarray:
        return self.counts / self.counts.sum()


def greedy_selection(probs: Sequence[np.ndarray], score: Score, rounds: int = 20, init: int = 1) -> Selection:
    """Start from the ``init`` best single candidates, then ``rounds - init`` times add the candidate
    (with replacement) whose addition gives the averaged probabilities the best ``score``. The result is the
    best ensemble seen (the earliest of equals), so a candidate that never helps gets no weight.

    Ties, common with F1's steps, go to a candidate already in the ensemble (fewer members: cheaper to
    run, and an exact copy of a member is never added), then to the better single model, then to the
    earlier one."""
    if not 1 <= init <= len(probs) or rounds < init:
        raise ImgrecError(f"ensemble selection: init={init} must be 1..{len(probs)} (candidates) and "
                          f"rounds={rounds} at least init")
    library = [np.asarray(p, dtype=np.float64) for p in probs]
    singles = [round(score(p), 12) for p in library]
    counts = np.zeros(len(library), dtype=np.int64)
    total = np.zeros_like(library[0])
    history = []
    for i in sorted(range(len(library)), key=lambda i: (-singles[i], i))[:init]:
        counts[i] += 1
        total += library[i]
        history.append((i, float(score(total / counts.sum()))))
    best = (history[-1][1], counts.copy())
    for _ in range(rounds - init):
        n = counts.sum() + 1
        trial = [round(score((total + p) / n), 12) for p in library]
        pick = max(range(len(library)), key=lambda i: (trial[i], counts[i] > 0, singles[i], -i))
        counts[pick] += 1
        total += library[pick]
        history.append((pick, trial[pick]))
        if trial[pick] > round(best[0], 12):
            best = (trial[pick], counts.copy())
    return Selection(best[1], best[0], history)


def weighted_mean(probs: Sequence[np.ndarray], weights: np.ndarray) -> np.ndarray:
    """``sum_i weights[i] * probs[i]`` in float64: what the selected ensemble predicts."""
    return sum(w * np.asarray(p, dtype=np.float64) for w, p in zip(weights, probs) if w > 0)
