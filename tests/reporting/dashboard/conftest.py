"""One tiny sweep (two learning rates, 2 epochs) shared by the dashboard tests."""

from pathlib import Path

import pytest
from filelock import FileLock

from tests.conftest import TINY, run_in_process

# 200 images with a large test split: 50 test images, enough for 12-image galleries and several candidates.
SWEEP = [o for o in TINY if not o.startswith(("trainer.max_epochs", "data.n_images"))] + [
    "trainer.max_epochs=2", "data.n_images=200", "split.fractions=[0.5,0.25,0.25]", "report.enabled=true",
    "report.gallery=12"]


@pytest.fixture(scope="session")
def sweep(tmp_path_factory: pytest.TempPathFactory, worker_id: str) -> tuple[Path, str]:
    """The sweep folder and the sweep's stdout. Run once for all pytest-xdist workers (the dashboard's
    tests are in two modules, which may go to two workers): the first to ask runs it, the others wait
    for it under a file lock and read it."""
    base = tmp_path_factory.getbasetemp()
    root = (base if worker_id == "master" else base.parent) / "dashboard_sweep"
    with FileLock(f"{root}.lock"):
        if not (root / "stdout.txt").is_file():
            root.mkdir()
            r = run_in_process(["imgrec.run", "-m", "model.optimizer.lr=0.001,0.01", f"paths.log_dir={root}",
                                f"paths.cache_dir={root / 'cache'}", *SWEEP], cwd=root)
            assert r.returncode == 0, r.stderr[-3000:]
            (root / "stdout.txt").write_text(r.stdout)
    return next((root / "train" / "multiruns").iterdir()), (root / "stdout.txt").read_text()
