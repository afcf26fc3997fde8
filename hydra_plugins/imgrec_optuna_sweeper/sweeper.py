"""A Hydra sweeper over Optuna's ask/tell API (``hparams_search=optuna``).

Each batch asks ``n_jobs`` trials, launches them together through Hydra's launcher (trial ``k`` runs
as job ``k``, so in ``<sweep folder>/<k>``) and tells each result: the run's return value, FAIL when
the run failed (returned None or raised), PRUNED when the run's pruning callback
(:class:`imgrec.training.callbacks.OptunaPruning`) stopped it. The study lives in ``storage`` (SQLite in the
sweep folder), so running the same sweep again continues it up to ``n_trials`` in all.

Optuna is imported lazily: Hydra imports every module under ``hydra_plugins`` at start-up.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hydra.core.plugins import Plugins
from hydra.plugins.sweeper import Sweeper
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig

if TYPE_CHECKING:
    import optuna
    from hydra.core.override_parser.types import Override

log = logging.getLogger(__name__)


def distribution(override: Override) -> Any:
    """The Optuna distribution of a sweep override (``choice``, ``range``, ``interval``; ``tag(log, ...)``
    for a log scale, ``tag(int, interval(...))`` for integers), or the plain value of a fixed one."""
    from hydra.core.override_parser.types import Transformer
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

    if not override.is_sweep_override():
        return override.get_value_element_as_str()
    value = override.value()
    if override.is_choice_sweep() or override.is_range_sweep():
        values = list(override.sweep_iterator(transformer=Transformer.encode))
        if override.is_choice_sweep() or value.shuffle:
            return CategoricalDistribution(values)
        if all(isinstance(v, int) for v in values):
            return IntDistribution(values[0], values[-1], step=int(value.step))
        return FloatDistribution(values[0], values[-1], step=value.step)
    if override.is_interval_sweep():  # Hydra's intervals are float: tag(int, ...) searches integers
        if "int" in value.tags:
            return IntDistribution(int(value.start), int(value.end), log="log" in value.tags)
        return FloatDistribution(value.start, value.end, log="log" in value.tags)
    raise ValueError(f"{override.input_line}: not a sweep Optuna can search")


def search_space(arguments: Sequence[str]) -> tuple[dict[str, Any], dict[str, str]]:
    """Split overrides into Optuna distributions (sweeps) and fixed ``key: value`` overrides; a later
    override of a key replaces an earlier one (the command line wins over ``params``)."""
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from optuna.distributions import BaseDistribution

    space: dict[str, BaseDistribution] = {}
    fixed: dict[str, str] = {}
    for override in OverridesParser.create().parse_overrides(list(arguments)):
        key, value = override.get_key_element(), distribution(override)
        space.pop(key, None), fixed.pop(key, None)
        (space if isinstance(value, BaseDistribution) else fixed)[key] = value
    return space, fixed


class OptunaSweeper(Sweeper):
    """Keys are those of ``hydra.sweeper`` (``conf/hydra/sweeper/optuna.yaml``).

    ``n_trials`` counts every trial the study holds (finished, failed, pruned). ``trial_key`` is the
    config key through which a run learns its trial number (for the pruning callback).
    """

    def __init__(self, study_name: str, storage: str, direction: str, n_trials: int, n_jobs: int,
                 sampler: optuna.samplers.BaseSampler, pruner: optuna.pruners.BasePruner,
                 params: Mapping[str, str] | None = None, trial_key: str = "optuna_trial") -> None:
        self.study_name, self.storage, self.direction = study_name, storage, direction
        self.n_trials, self.n_jobs = n_trials, max(1, n_jobs)
        self.sampler, self.pruner = sampler, pruner
        self.params = dict(params or {})
        self.trial_key = trial_key

    def setup(self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig) -> None:
        self.config = config
        self.launcher = Plugins.instance().instantiate_launcher(
            hydra_context=hydra_context, task_function=task_function, config=config)
        Path(str(config.hydra.sweep.dir)).mkdir(parents=True, exist_ok=True)  # before SQLite opens a file there

    def open_study(self) -> optuna.Study:
        import optuna
        from optuna.trial import TrialState

        study = optuna.create_study(study_name=self.study_name, storage=self.storage, sampler=self.sampler,
                                    pruner=self.pruner, direction=self.direction, load_if_exists=True)
        for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING, TrialState.WAITING)):
            # Left running by a sweep that was killed: its run never reported back.
            log.warning("trial %d was interrupted in an earlier sweep: recorded as failed", trial.number)
            study.tell(trial.number, state=TrialState.FAIL)
        return study

    def sweep(self, arguments: list[str]) -> None:
        from optuna.trial import TrialState

        space, fixed = search_space([f"{k}={v}" for k, v in self.params.items()] + list(arguments))
        study = self.open_study()
        log.info("Study name: %s", study.study_name)
        log.info("Storage: %s, sampler %s, pruner %s, %s", self.storage, type(self.sampler).__name__,
                 type(self.pruner).__name__, self.direction)
        todo = self.n_trials - len(study.trials)
        if todo <= 0:
            log.info("the study already holds %d of %d trials: nothing to do", len(study.trials), self.n_trials)
        while todo > 0:
            trials = [study.ask(space) for _ in range(min(self.n_jobs, todo))]
            overrides = [tuple([*(f"{k}={v}" for k, v in {**t.params, **fixed}.items()),
                                f"{self.trial_key}={t.number}"]) for t in trials]
            returns = self.launcher.launch(overrides, initial_job_idx=trials[0].number)
            stored = {t.number: t for t in study.get_trials(deepcopy=False)}  # with what the runs reported
            for trial, ret in zip(trials, returns):
                self.tell(study, stored[trial.number], ret)
            todo -= len(trials)
        if study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
            log.info("best trial %d: %.4f %s", study.best_trial.number, study.best_value, study.best_params)

    @staticmethod
    def tell(study: optuna.Study, trial: optuna.trial.FrozenTrial, ret: Any) -> None:
        """Record a run's outcome: PRUNED if its pruning callback stopped it, FAIL if it failed."""
        from optuna.trial import TrialState

        from imgrec.training.callbacks import PRUNED_AT

        try:
            value = ret.return_value  # raises the run's exception if it raised
        except Exception as exc:  # noqa: BLE001 - any failure of a run is the trial's, not the sweep's
            log.warning("trial %d failed: %r", trial.number, exc)
            value = None
        pruned_at = trial.user_attrs.get(PRUNED_AT)
        if pruned_at is not None:
            log.info("trial %d pruned at epoch %d", trial.number, pruned_at)
            study.tell(trial.number, state=TrialState.PRUNED)
        elif value is None:
            study.tell(trial.number, state=TrialState.FAIL)
        else:
            study.tell(trial.number, float(value))
