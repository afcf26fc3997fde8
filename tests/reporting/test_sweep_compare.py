import json

import pandas as pd

from imgrec.reporting.sweep_report import write_results


def fake_run(sweep, k, f1, overrides):
    run = sweep / str(k)
    (run / "report").mkdir(parents=True)
    metrics = {"val/f1_micro": f1, "test/f1_micro": f1 - 0.05, "test_tuned/f1_micro": f1, "test/map": 0.8}
    (run / "metrics.json").write_text(json.dumps({"metrics": metrics, "overrides": overrides, "epochs": 3,
                                                  "seconds": 1.0}))
    pd.DataFrame({"label": ["a", "b"], "f1": [f1, f1 / 2]}).to_csv(run / "report" / "per_label_test.csv", index=False)
    (run / "report.md").write_text(f"# Run report\n\n## Metrics\n\nx\n\n## Error analysis (test)\n\n"
                                   f"### Mislabels per label\n\nrun {k}\n\n![worst](report/worst_images.png)\n")


def test_sweep_report_compares_runs_and_shows_the_best(tmp_path):
    fake_run(tmp_path, 0, 0.6, ["seed=1", "x=a"])
    fake_run(tmp_path, 1, 0.8, ["seed=1", "x=b"])
    table = write_results(tmp_path, "val/f1_micro")
    assert list(table["test_tuned/f1_micro"]) == [0.6, 0.8]
    text = (tmp_path / "report.md").read_text()
    assert "## Best run: 1 (x=b)" in text and "`val/f1_micro` = 0.8000" in text
    assert "### Error analysis of the best run (test)" in text and "#### Mislabels per label" in text
    assert "run 1" in text and "run 0" not in text
    assert "](1/report/worst_images.png)" in text  # links into the best run's folder
    assert "![test F1 per label](f1_per_label.png)" in text and (tmp_path / "f1_per_label.png").stat().st_size > 0
