"""The console of a sweep: no Python warnings, no third-party tips, progress and a short table."""

import re

from tests.conftest import run_cli

NOISE = ("Warning", "wandb: WARNING", "Tip:", "litlogger", "Restoring states", "Loaded model weights", "Total FLOPs")


def test_tiny_sweep_prints_no_warnings_or_tips(tmp_path):
    result = run_cli(["imgrec.run", "-m", "+preproc=split,augment_oversample", "data.n_images=120",
                      "model.net.input_size=32", "trainer.max_epochs=2", "cache.views=1", "report.gallery=2",
                      f"paths.log_dir={tmp_path / 'logs'}", f"paths.cache_dir={tmp_path / 'cache'}"], tmp_path)
    out = result.stdout + result.stderr
    assert result.returncode == 0, out[-3000:]
    assert not [t for t in NOISE if t in out], [line for line in out.splitlines() if any(t in line for t in NOISE)]
    assert "sweep: run 1/2" in out and "sweep: run 2/2" in out
    assert re.search(r"sweep: run 1/2 done in \d+ s, about .* left", out)
    header = out[out.index("Results ("):].splitlines()[1]
    assert [c.strip() for c in header.strip("|").split("|")] == ["setting", "val F1", "test F1", "test P", "test R",
                                                                 "tuned F1", "s"]
