import csv
import re

from tests.conftest import TINY, run_cli

# What the console of a sweep must not show: Python warnings, W&B's warnings, Lightning's tips and chatter.
NOISE = ("Warning", "wandb: WARNING", "Tip:", "litlogger", "Restoring states", "Loaded model weights", "Total FLOPs")


def test_preproc_sweep_end_to_end(tmp_path):
    """The study's sweep with W&B (offline): three runs, their table, and a console that reads like a report."""
    overrides = [o for o in TINY if not o.startswith(("trainer.max_epochs", "logger"))] + ["trainer.max_epochs=4"]
    r = run_cli(["imgrec.run", "+experiment=preproc_sweep", f"paths.log_dir={tmp_path}",
                 "cache.views=2", "report.gallery=2", *overrides], cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-3000:]
    sweep = next((tmp_path / "preproc_sweep" / "multiruns").iterdir())
    rows = list(csv.DictReader((sweep / "results.csv").open()))
    assert [row["settings"] for row in rows] == ["+preproc=split", "+preproc=augment", "+preproc=augment_oversample"]
    for row in rows:
        assert 0.3 < float(row["test/f1_micro"]) <= 1 and float(row["seconds"]) > 0
    for k in range(3):
        run = sweep / str(k)
        assert (run / "metrics.json").is_file() and (run / ".hydra" / "config.yaml").is_file()
        assert (run / "checkpoints" / "last.ckpt").is_file()
    assert "test/f1_micro" in (sweep / "results.md").read_text() and "Results" in r.stdout

    out = r.stdout + r.stderr
    assert not [t for t in NOISE if t in out], [line for line in out.splitlines() if any(t in line for t in NOISE)]
    assert all(f"sweep: run {k}/3" in out for k in (1, 2, 3))
    assert re.search(r"sweep: run 1/3 done in \d+ s, about .* left", out)
    header = out[out.index("Results ("):].splitlines()[1]
    assert [c.strip() for c in header.strip("|").split("|")] == ["setting", "val F1", "test F1", "test P", "test R",
                                                                 "tuned F1", "s"]
