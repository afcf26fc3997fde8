"""Greedy ensemble selection with replacement (imgrec.evaluation.selection) on synthetic probabilities."""

from itertools import combinations

import numpy as np
import pytest
from sklearn.metrics import f1_score

from imgrec.evaluation.selection import greedy_selection, heldout_f1, weighted_mean
from imgrec.evaluation.thresholds import ThresholdPolicy, choose_rule, fit_thresholds, random_groups
from imgrec.utils.errors import ImgrecError

POLICY = ThresholdPolicy(10, 0.0, ("0.5", "global"))
N, C = 1000, 5


def library(seed: int = 0) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]:
    """Targets, 5 folds, and candidates scoring a ±1.5 logit plus noise: ``a``, ``b`` and ``c``
    independent (c noisier), ``a_copy`` nearly ``a``, ``noise`` blind to the targets."""
    rng = np.random.default_rng(seed)
    y = rng.random((N, C)) < 0.25
    signal = np.where(y, 1.5, -1.5)

    def model(noise: np.ndarray) -> np.ndarray:
        return 1 / (1 + np.exp(-(signal + noise)))

    a_noise = rng.normal(0, 1.3, y.shape)
    candidates = {"a": model(a_noise), "b": model(rng.normal(0, 1.3, y.shape)),
                  "c": model(rng.normal(0, 2.2, y.shape)), "a_copy": model(a_noise + rng.normal(0, 0.05, y.shape)),
                  "noise": rng.random(y.shape)}
    return y, random_groups(N, 5, seed=1), candidates


def f1_of(y: np.ndarray, groups: np.ndarray):
    return lambda p: heldout_f1(p, y, groups, POLICY).f1_micro


def test_heldout_f1_is_sklearns_micro_f1_of_the_cross_fitted_decisions():
    y, groups, candidates = library()
    probs = candidates["c"]
    score = heldout_f1(probs, y, groups, POLICY)
    chosen = choose_rule(probs, y, 10, groups=groups, rules=POLICY.rules)
    assert score.rule == chosen.rule and score.f1_micro == pytest.approx(chosen.scores[chosen.rule])
    predicted = np.zeros_like(y)
    for g in range(5):
        fitted = fit_thresholds(probs[groups != g], y[groups != g], 10)
        predicted[groups == g] = probs[groups == g] > fitted.applied(score.rule)
    assert score.f1_micro == pytest.approx(f1_score(y, predicted, average="micro"))
    per_fold = [f1_score(y[groups == g], predicted[groups == g], average="micro") for g in range(5)]
    assert list(score.per_group.values()) == pytest.approx(per_fold)
    assert score.spread == pytest.approx((np.mean(per_fold), np.std(per_fold, ddof=1)))


def test_two_rounds_find_the_best_pair_and_noise_is_never_picked():
    y, groups, candidates = library()
    names, probs = list(candidates), list(candidates.values())
    score = f1_of(y, groups)
    pairs = {(i, j): score((probs[i] + probs[j]) / 2) for i, j in combinations(range(len(probs)), 2)}
    best_pair = max(pairs, key=pairs.get)
    assert {names[i] for i in best_pair} == {"a", "b"}  # independent errors average out; a copy does not
    two = greedy_selection(probs, score, rounds=2)
    assert set(np.flatnonzero(two.counts)) == set(best_pair) and two.score == pytest.approx(pairs[best_pair])
    selection = greedy_selection(probs, score, rounds=12)
    assert selection.counts[names.index("noise")] == 0
    assert selection.score >= max(pairs.values()) - 1e-12
    assert selection.score == pytest.approx(score(weighted_mean(probs, selection.weights)))


def test_selection_is_with_replacement_and_weights_are_counts_over_total():
    # score = closeness to 0.75 a + 0.25 b: only a picked three times and b once gets there
    a, b, c = np.eye(3)
    target = 0.75 * a + 0.25 * b
    selection = greedy_selection([a, b, c], lambda p: -float(np.sum((p - target) ** 2)), rounds=8)
    assert selection.counts.tolist() == [3, 1, 0]
    assert selection.weights.tolist() == [0.75, 0.25, 0.0]
    assert selection.score == pytest.approx(0.0)
    assert len(selection.history) == 8  # the search went on; the best ensemble seen is kept


def test_ties_go_to_a_member_already_in_then_to_the_earlier_candidate():
    y, groups, candidates = library()
    a = candidates["a"]
    selection = greedy_selection([a, a.copy(), candidates["b"]], f1_of(y, groups), rounds=10)
    assert selection.counts[1] == 0 and selection.counts[0] > 0 and selection.counts[2] > 0  # an exact copy: never
    flat = greedy_selection([a, a.copy()], lambda p: 0.5, rounds=5)  # every ensemble scores the same
    assert flat.counts.tolist() == [1, 0] and [i for i, _ in flat.history] == [0] * 5


def test_init_starts_from_the_best_single_models():
    y, groups, candidates = library()
    probs = [candidates[k] for k in ("c", "noise", "a", "b")]
    score = f1_of(y, groups)
    selection = greedy_selection(probs, score, rounds=3, init=2)
    singles = [score(p) for p in probs]
    assert [i for i, _ in selection.history[:2]] == list(np.argsort(singles)[::-1][:2])
    with pytest.raises(ImgrecError, match="init=5"):
        greedy_selection(probs, score, rounds=6, init=5)
    with pytest.raises(ImgrecError, match="rounds=1"):
        greedy_selection(probs, score, rounds=1, init=2)
