"""When a sweep ends with ``logger=wandb``: one summary run in the sweep's W&B group, holding the
results table and naming the best run (the sweep's ``report.md`` summarises it on disk).

Like the runs, it is offline unless W&B is configured (``wandb sync`` uploads it later), and its id
comes from the sweep folder, so a resumed sweep updates the same summary run.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from imgrec.config.resolvers import run_id
from imgrec.reporting.sweep_compare import best_run
from imgrec.reporting.sweep_table import collect, failed_runs

log = logging.getLogger(__name__)


class WandbSweepSummary(Callback):
    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        settings = (config.get("logger") or {}).get("wandb")
        if settings is None:
            return
        sweep_dir = Path(str(config.hydra.sweep.dir))
        table = collect(sweep_dir)
        if table.empty:
            return
        import wandb

        summary: dict[str, Any] = {"runs": len(table), "failed": failed_runs(table)}
        best = best_run(sweep_dir, table, config.optimized_metric)
        if best is not None:
            run, score = best
            summary.update({"best/run": str(sweep_dir / run), "best/wandb_id": run_id(str(sweep_dir / run)),
                            f"best/{config.optimized_metric}": score,
                            "best/settings": table.loc[table["run"].astype(str) == run, "settings"].iloc[0]})
        group = sweep_dir.name  # the runs' group (imgrec.sweep_group), resolved here without their HydraConfig
        with wandb.init(project=settings.project, group=group, job_type="sweep-summary",
                        name=f"{config.task_name}-summary", tags=["sweep-summary"], dir=str(sweep_dir),
                        id=run_id(str(sweep_dir)), resume="allow",
                        mode="offline" if settings.offline else "online",
                        config={"sweep_dir": str(sweep_dir), "optimized_metric": config.optimized_metric}) as run:
            run.log({"sweep/results": wandb.Table(dataframe=table.astype({"run": str}))})
            run.summary.update(summary)
        log.info("W&B sweep summary: group %s, best run %s", group, summary.get("best/run"))
