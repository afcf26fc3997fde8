"""Decision thresholds fitted on held-out predictions, and the rule that applies them by default.

Only held-out outputs (val of a single run, out-of-fold predictions of a cross-validation) ever reach
:func:`fit_thresholds` and :func:`choose_rule`: the test split measures the result. A prediction is
positive when ``probability > threshold`` (torchmetrics' rule).

Three rules: ``0.5``; ``global`` (one threshold maximising micro F1); ``per_label`` (one per label,
maximising that label's F1, shrunk toward the global one by ``shrink``). :func:`choose_rule` picks the
rule by cross-fitting, since thresholds fitted and scored on the same images always favour the most
flexible rule; ties go to the simpler rule, so a rule never wins without beating ``0.5``.

Per-label thresholds are not among the default candidates (:data:`DEFAULT_RULES`; ``thresholds.rules``
adds them). On the dev data, over 36 runs with 450 val images, choosing among all three rules picked
per-label in 15 and scored +0.0006 ± 0.0097 micro F1 over ``0.5`` on test; choosing between ``0.5`` and
``global`` scored +0.0048 ± 0.0088 (README, "Thresholds"). With few positives per label, a per-label
optimum is mostly noise, and a noisy cross-fitted win selects it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace

import numpy as np

from imgrec.evaluation.micro import micro_scores
from imgrec.utils.errors import ImgrecError

RULES = ("0.5", "global", "per_label")  # simplest first: the tie-break order
DEFAULT_RULES = ("0.5", "global")  # the candidates of choose_rule unless told (thresholds.rules)


@dataclass(frozen=True)
class Thresholds:
    """One global threshold (maximising micro F1), one per label (maximising that label's F1; labels
    with too little support, ``fitted[j]`` False, use the global one) and the rule applied by default."""

    global_threshold: float
    per_class: np.ndarray
    fitted: np.ndarray
    rule: str = "per_label"
    scores: dict[str, float] = field(default_factory=dict)  # cross-fitted micro F1 of each rule

    def applied(self, rule: str | None = None) -> np.ndarray:
        """The per-label vector of ``rule`` (default: the chosen one)."""
        rule = rule or self.rule
        if rule == "0.5":
            return np.full(len(self.per_class), 0.5)
        if rule == "global":
            return np.full(len(self.per_class), self.global_threshold)
        if rule == "per_label":
            return np.asarray(self.per_class, dtype=np.float64)
        raise ImgrecError(f"thresholds={rule}: expected one of {', '.join(RULES)}")

    @classmethod
    def half(cls, num_labels: int) -> Thresholds:
        """0.5 for every label: what applies before any thresholds are fitted."""
        return cls(0.5, np.full(num_labels, 0.5), np.zeros(num_labels, bool), "0.5")

    def as_dict(self) -> dict[str, object]:
        """Plain floats in label order (in checkpoints and ``metrics.json``)."""
        return {"thresholds": [float(t) for t in self.per_class], "global_threshold": float(self.global_threshold),
                "threshold_rule": self.rule}

    @classmethod
    def from_dict(cls, meta: dict, num_labels: int) -> Thresholds:
        """What :meth:`as_dict` wrote; one written before rules existed applies its per-label thresholds,
        as it did then."""
        per_class = np.asarray(meta["thresholds"], dtype=np.float64)
        if per_class.shape != (num_labels,):
            raise ImgrecError(f"{per_class.size} thresholds for {num_labels} labels")
        return cls(float(meta["global_threshold"]), per_class, np.ones(num_labels, bool),
                   str(meta.get("threshold_rule", "per_label")))


def best_f1_threshold(scores: np.ndarray, labels: np.ndarray) -> tuple[float, float]:
    """The threshold maximising F1 of ``scores > threshold`` against 0/1 ``labels``, and that F1.

    Every cut between two distinct sorted scores is tried; the threshold is placed midway between
    the lowest score kept positive and the next one down, not on a score seen in fitting.
    """
    scores, labels = np.asarray(scores, dtype=np.float64).ravel(), np.asarray(labels).ravel().astype(bool)
    if not labels.any():
        return 0.5, 0.0
    order = np.argsort(-scores, kind="stable")
    s, y = scores[order], labels[order]
    tp = np.cumsum(y)
    fp = np.cumsum(~y)
    f1 = 2 * tp / (2 * tp + fp + (labels.sum() - tp))
    cut = np.r_[s[:-1] > s[1:], True]  # a cut after position k separates distinct scores
    k = int(np.argmax(np.where(cut, f1, -1.0)))
    below = s[k + 1] if k + 1 < len(s) else min(0.0, s[k])
    return float((s[k] + below) / 2), float(f1[k])


def fit_thresholds(probs: np.ndarray, targets: np.ndarray, min_support: int, shrink: float = 0.0) -> Thresholds:
    """Fit on held-out outputs. Labels with fewer than ``min_support`` positives get the global
    threshold: a per-label F1 optimum over a handful of positives is mostly noise. ``shrink`` > 0 pulls
    each per-label threshold toward the global one as if ``shrink`` more positives sat at the global
    optimum: ``(n_j t_j + shrink t) / (n_j + shrink)``."""
    check_fit_settings(min_support, shrink)
    probs, targets = np.asarray(probs), np.asarray(targets)
    global_threshold, _ = best_f1_threshold(probs, targets)
    support = targets.sum(0)
    fitted = support >= min_support
    own = np.array([best_f1_threshold(probs[:, j], targets[:, j])[0] if fitted[j] else global_threshold
                    for j in range(targets.shape[1])])
    per_class = (support * own + shrink * global_threshold) / np.maximum(support + shrink, 1e-12)
    return Thresholds(global_threshold, np.where(fitted, per_class, global_threshold), fitted)


def cross_fitted_predictions(probs: np.ndarray, targets: np.ndarray, groups: np.ndarray, min_support: int,
                             shrink: float = 0.0) -> dict[str, np.ndarray]:
    """Each rule's 0/1 decisions on every row, its thresholds fitted on the rows of the other ``groups``."""
    probs, targets, groups = np.asarray(probs), np.asarray(targets).astype(bool), np.asarray(groups)
    predicted = {rule: np.zeros_like(targets) for rule in RULES}
    for g in np.unique(groups):
        part, rest = groups == g, groups != g
        fitted = fit_thresholds(probs[rest], targets[rest], min_support, shrink)
        for rule in RULES:
            predicted[rule][part] = probs[part] > fitted.applied(rule)
    return predicted


def cross_fitted_scores(probs: np.ndarray, targets: np.ndarray, groups: np.ndarray, min_support: int,
                        shrink: float = 0.0) -> dict[str, float]:
    """Micro F1 of each rule on every row, its thresholds fitted on the rows of the other ``groups``:
    an estimate of how each rule carries to images it was not fitted on."""
    predicted = cross_fitted_predictions(probs, targets, groups, min_support, shrink)
    targets = np.asarray(targets).astype(bool)
    return {rule: micro_scores(targets, predicted[rule])["f1_micro"] for rule in RULES}


def random_groups(n: int, folds: int, seed: int = 0) -> np.ndarray:
    """Fold number of each of ``n`` rows: a seeded shuffle cut into ``folds`` near-equal parts."""
    groups = np.empty(n, dtype=np.int64)
    for k, part in enumerate(np.array_split(np.random.default_rng(seed).permutation(n), folds)):
        groups[part] = k
    return groups


def crossfit_groups(n: int, folds: int = 5, seed: int = 0) -> np.ndarray:
    """The cross-fitting groups of ``n`` held-out rows that have no folds of their own (a single run's
    val): ``folds`` seeded random parts (at least 2, never more than rows)."""
    return random_groups(n, max(2, min(folds, n)), seed)


def choose_rule(probs: np.ndarray, targets: np.ndarray, min_support: int, shrink: float = 0.0,
                groups: np.ndarray | None = None, folds: int = 5, seed: int = 0,
                rules: Sequence[str] = DEFAULT_RULES) -> Thresholds:
    """Thresholds fitted on all of ``probs`` with the one of ``rules`` that scores best cross-fitted
    (``scores`` holds every rule's). ``groups``: the CV folds of out-of-fold predictions; else ``folds``
    seeded random parts (a single run's val)."""
    rules = checked_rules(rules)
    if groups is None:
        groups = crossfit_groups(len(probs), folds, seed)
    scores = cross_fitted_scores(probs, targets, groups, min_support, shrink)
    return replace(fit_thresholds(probs, targets, min_support, shrink), rule=best_rule(scores, rules), scores=scores)


def check_fit_settings(min_support: int, shrink: float) -> None:
    if min_support < 1:
        raise ImgrecError(f"thresholds.min_support={min_support}: must be at least 1")
    if shrink < 0:
        raise ImgrecError(f"thresholds.shrink={shrink}: must be non-negative")


def checked_rules(rules: Sequence[object]) -> list[str]:
    """``rules`` as strings (a YAML 0.5 arrives as a float), each one of :data:`RULES`."""
    names = [str(r) for r in rules]
    if not names or set(names) - set(RULES):
        raise ImgrecError(f"thresholds.rules={names}: expected some of {', '.join(RULES)}")
    return names


@dataclass(frozen=True)
class ThresholdPolicy:
    """The ``thresholds`` config block, built with ``instantiate(cfg.thresholds)`` when a run starts,
    so that a bad value stops it before training: the val positives a label needs for a threshold of
    its own, the pull of per-label thresholds toward the global one, and the rules that compete for the
    one applied (see :func:`choose_rule`)."""

    min_support: int
    shrink: float
    rules: tuple[str, ...]

    def __post_init__(self) -> None:
        check_fit_settings(self.min_support, self.shrink)
        object.__setattr__(self, "rules", tuple(checked_rules(self.rules)))

    def choose(self, probs: np.ndarray, targets: np.ndarray, groups: np.ndarray | None = None) -> Thresholds:
        """:func:`choose_rule` with this policy's settings."""
        return choose_rule(probs, targets, self.min_support, self.shrink, groups=groups, rules=self.rules)


def best_rule(scores: dict[str, float], rules: Sequence[str]) -> str:
    """The one of ``rules`` with the best score; a tie goes to the simpler rule (earlier in RULES)."""
    return max(rules, key=lambda r: (round(scores[r], 12), -RULES.index(r)))
