"""hydra-optuna-sweeper's ``OptunaSweeper``, made resumable from its storage.

Upstream reopens a stored study (``load_if_exists``) but numbers the jobs of every invocation from 0,
so a resumed search would reuse the folders of the first trials, and it always runs ``n_trials``
more. Here ``n_trials`` is the study's total (as upstream's config comment says), new trials are
numbered after the stored ones, so trial ``k`` runs in ``<sweep folder>/<k>``, and the sweep folder
is created before SQLite opens its database there.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import optuna
from hydra.types import HydraContext, TaskFunction
from hydra_plugins.hydra_optuna_sweeper.optuna_sweeper import OptunaSweeper
from omegaconf import DictConfig


def stored_trials(storage: str | None, study_name: str | None) -> int:
    """Trials of any state the storage holds for ``study_name`` (0 for a new study)."""
    if storage is None or study_name is None:
        return 0
    names = {s.study_name for s in optuna.get_all_study_summaries(storage)}
    return len(optuna.load_study(study_name=study_name, storage=storage).trials) if study_name in names else 0


class ResumableOptunaSweeper(OptunaSweeper):
    def setup(self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig) -> None:
        super().setup(hydra_context=hydra_context, task_function=task_function, config=config)
        impl: Any = self.sweeper
        Path(str(config.hydra.sweep.dir)).mkdir(parents=True, exist_ok=True)
        done = stored_trials(impl.storage, impl.study_name)
        impl.job_idx = done
        impl.n_trials = max(impl.n_trials - done, 0)
