"""``make reproduce``'s best step: ``+experiment=best`` without the CVs its transfer-cv step has run."""

from pathlib import Path

from experiments.idl2020.best_model import SHARED_STEP, candidates, overrides
from experiments.idl2020.cv_findings import CV_STEPS, TRANSFER


def test_the_best_step_trains_only_the_candidates_transfer_cv_has_not_cross_validated():
    experiment, arch, select_from = overrides(Path("/logs"))
    own = arch.removeprefix("+arch=").split(",")
    assert experiment == "+experiment=best" and SHARED_STEP in CV_STEPS
    assert own == [c for c in candidates() if c not in TRANSFER] and all(c.startswith("partial_") for c in own)
    assert len(own) < len(candidates())  # some candidates are shared
    assert select_from == "hydra.callbacks.sweep_report.select_from=['/logs/transfer-cv']"
