import csv

from tests.conftest import TINY, run_cli


def test_preproc_sweep_end_to_end(tmp_path):
    overrides = [o for o in TINY if not o.startswith("trainer.max_epochs")] + ["trainer.max_epochs=4"]
    r = run_cli(["imgrec.run", "+experiment=preproc_sweep", f"paths.log_dir={tmp_path}",
                 "cache.views=2", *overrides], cwd=tmp_path)
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
