"""One tiny sweep (two learning rates, 2 epochs) shared by the dashboard tests."""

from pathlib import Path

import pytest

from tests.conftest import TINY, run_cli

# 200 images with a large test split: 50 test images, enough for 12-image galleries and several candidates.
SWEEP = [o for o in TINY if not o.startswith(("trainer.max_epochs", "data.n_images"))] + [
    "trainer.max_epochs=2", "data.n_images=200", "split.fractions=[0.5,0.25,0.25]", "report.gallery=12"]


@pytest.fixture(scope="session")
def sweep(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """The sweep folder and the sweep's stdout."""
    root = tmp_path_factory.mktemp("dashboard_sweep")
    r = run_cli(["imgrec.run", "-m", "model.optimizer.lr=0.001,0.01", f"paths.log_dir={root}",
                 f"paths.cache_dir={root / 'cache'}", *SWEEP], cwd=root)
    assert r.returncode == 0, r.stderr[-3000:]
    return next((root / "train" / "multiruns").iterdir()), r.stdout
