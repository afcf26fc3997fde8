import numpy as np
import pytest
from hydra.utils import instantiate
from omegaconf import OmegaConf
from sklearn.metrics import f1_score

from imgrec.config.compose import CONF_DIR
from imgrec.evaluation.thresholds import (
    DEFAULT_RULES,
    RULES,
    ThresholdPolicy,
    Thresholds,
    best_f1_threshold,
    choose_rule,
    cross_fitted_scores,
    fit_thresholds,
    random_groups,
)
from imgrec.utils.errors import ImgrecError


def case(seed: int, n: int = 400, c: int = 6) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = (rng.random((n, c)) < np.linspace(0.02, 0.4, c)).astype(int)
    p = np.clip(y * rng.uniform(0.1, 0.5, c) + rng.random((n, c)) * 0.6, 0, 1).round(2)  # rounding makes ties
    return y, p


@pytest.mark.parametrize("seed", range(4))
def test_best_threshold_reaches_the_best_f1_of_any_cut(seed):
    y, p = case(seed)
    for j in range(y.shape[1]):
        t, f1 = best_f1_threshold(p[:, j], y[:, j])
        assert np.isclose(f1, f1_score(y[:, j], p[:, j] > t))
        candidates = np.r_[np.unique(p[:, j]), -1.0]
        brute = max(f1_score(y[:, j], p[:, j] > c, zero_division=0) for c in candidates)
        assert np.isclose(f1, brute)
        assert t not in p[:, j]  # midway between scores, never on one


def test_global_threshold_maximises_micro_f1():
    y, p = case(7)
    th = fit_thresholds(p, y, min_support=1)
    micro = f1_score(y, (p > th.global_threshold).astype(int), average="micro")
    assert all(micro >= f1_score(y, (p > c).astype(int), average="micro") - 1e-12 for c in np.linspace(0, 1, 101))


def test_rare_labels_fall_back_to_the_global_threshold():
    y, p = case(1)
    support = y.sum(0)
    min_support = int(np.sort(support)[2])  # the two rarest labels fall below it
    th = fit_thresholds(p, y, min_support)
    assert (th.fitted == (support >= min_support)).all() and (~th.fitted).sum() == 2
    assert np.allclose(th.per_class[~th.fitted], th.global_threshold)
    own = [best_f1_threshold(p[:, j], y[:, j])[0] for j in np.flatnonzero(th.fitted)]
    assert np.allclose(th.per_class[th.fitted], own)
    with pytest.raises(ImgrecError, match="min_support"):
        fit_thresholds(p, y, 0)


def _scores(n: int, shifts: np.ndarray, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Labels with 20% positives, scored by a noisy logit shifted per label (a label-specific best threshold)."""
    rng = np.random.default_rng(seed)
    y = rng.random((n, len(shifts))) < 0.2
    logit = np.where(y, 1.0, -1.0) + rng.normal(0, 1.2, y.shape) + shifts
    return 1 / (1 + np.exp(-logit)), y.astype(int)


def test_cross_fitted_scores_score_held_out_folds_like_sklearn():
    probs, y = _scores(300, np.zeros(4), seed=0)
    groups = random_groups(300, 3, seed=7)
    predicted = {rule: np.zeros_like(y) for rule in ("0.5", "global", "per_label")}
    for k in range(3):
        part, rest = groups == k, groups != k
        fitted = fit_thresholds(probs[rest], y[rest], 10)
        predicted["0.5"][part] = probs[part] > 0.5
        predicted["global"][part] = probs[part] > fitted.global_threshold
        predicted["per_label"][part] = probs[part] > fitted.per_class
    scores = cross_fitted_scores(probs, y, groups, 10)
    for rule, pred in predicted.items():
        assert scores[rule] == pytest.approx(f1_score(y, pred, average="micro"), abs=1e-9)


def test_choose_rule_prefers_per_label_thresholds_only_when_labels_differ():
    shifted, y = _scores(2000, np.array([-3.0, 0.0, 3.0, 0.0]), seed=1)
    chosen = choose_rule(shifted, y, 10, rules=RULES)
    assert chosen.rule == "per_label" and chosen.scores["per_label"] > chosen.scores["global"] + 0.02
    np.testing.assert_array_equal(chosen.applied(), chosen.per_class)
    alike, y = _scores(2000, np.zeros(4), seed=1)
    assert choose_rule(alike, y, 10, rules=RULES).rule != "per_label"


def test_per_label_is_a_candidate_only_when_asked():
    shifted, y = _scores(2000, np.array([-3.0, 0.0, 3.0, 0.0]), seed=1)
    default = choose_rule(shifted, y, 10)
    assert DEFAULT_RULES == ("0.5", "global") and default.rule == "global"
    assert set(default.scores) == set(RULES)  # every rule is still scored, for the record
    with pytest.raises(ImgrecError, match=r"thresholds.rules=\['0.5', 'median'\]: expected some of"):
        choose_rule(shifted, y, 10, rules=[0.5, "median"])


def test_the_config_block_is_a_policy_that_chooses_like_choose_rule():
    shifted, y = _scores(600, np.array([-3.0, 0.0, 3.0, 0.0]), seed=1)
    cfg = OmegaConf.load(CONF_DIR / "config.yaml").thresholds
    policy = instantiate(cfg, shrink=2.0)
    assert policy == ThresholdPolicy(10, 2.0, ("0.5", "global"))  # a YAML list, and 0.5 as text
    chosen, direct = policy.choose(shifted, y), choose_rule(shifted, y, 10, 2.0)
    assert chosen.rule == direct.rule and np.array_equal(chosen.per_class, direct.per_class)


def test_choose_rule_keeps_0_5_unless_a_fitted_rule_beats_it_held_out():
    """Calibrated scores: 0.5 is already the best cut, so fitting can only add noise."""
    rng = np.random.default_rng(3)
    probs = rng.random((400, 5))
    y = (rng.random((400, 5)) < probs).astype(int)  # P(y=1 | p) = p: calibrated
    chosen = choose_rule(probs, y, 10)
    assert chosen.scores[chosen.rule] >= chosen.scores["0.5"]
    shifted = 1 / (1 + np.exp(-(np.log(probs / (1 - probs)) - 2.0)))  # under-confident: best cut far below 0.5
    chosen = choose_rule(shifted, y, 10)
    assert chosen.rule != "0.5" and chosen.scores[chosen.rule] > chosen.scores["0.5"] + 0.05


def test_shrink_pulls_per_label_thresholds_toward_the_global_one():
    probs, y = _scores(500, np.array([-2.0, 2.0]), seed=4)
    free, shrunk = fit_thresholds(probs, y, 10), fit_thresholds(probs, y, 10, shrink=1e9)
    np.testing.assert_allclose(shrunk.per_class, shrunk.global_threshold)
    half = fit_thresholds(probs, y, 10, shrink=float(y[:, 0].sum()))
    assert half.per_class[0] == pytest.approx((free.per_class[0] + free.global_threshold) / 2)


def test_thresholds_round_trip_through_their_dict():
    t = choose_rule(*_scores(300, np.zeros(3), seed=2), 10)
    again = Thresholds.from_dict(t.as_dict(), 3)
    assert again.rule == t.rule and np.allclose(again.applied(), t.applied())
    old = Thresholds.from_dict({"thresholds": [0.3, 0.4, 0.6], "global_threshold": 0.45}, 3)
    assert old.rule == "per_label"  # checkpoints written before rules existed keep what they applied
    with pytest.raises(ImgrecError, match="2 thresholds for 3 labels"):
        Thresholds.from_dict({"thresholds": [0.3, 0.4], "global_threshold": 0.45}, 3)
    assert Thresholds.half(3).rule == "0.5" and Thresholds.half(3).applied().tolist() == [0.5] * 3


def test_out_of_fold_thresholds_beat_thresholds_fitted_on_a_small_val_split():
    """Known noise, label-specific best cuts: per-label thresholds fitted on 1500 out-of-fold rows carry to
    unseen images better than those fitted on a 150-image val split (what a single small run has)."""
    shifts = np.array([-2.5, -1.0, 0.0, 1.0, 2.5, -1.5])
    gains = []
    for seed in range(8):
        oof, y_oof = _scores(1500, shifts, seed=seed)
        test, y_test = _scores(20000, shifts, seed=100 + seed)
        small = fit_thresholds(oof[:150], y_oof[:150], 10)  # a small val split from the same distribution
        big = choose_rule(oof, y_oof, 10, groups=random_groups(1500, 5, seed), rules=RULES)
        gains.append(f1_score(y_test, test > big.applied(), average="micro")
                     - f1_score(y_test, test > small.per_class, average="micro"))
    assert np.mean(gains) > 0.01 and np.mean(gains) > 2 * np.std(gains) / np.sqrt(len(gains))
