import json

import pandas as pd
import pytest

from imgrec.data.synthetic import make_synthetic
from imgrec.reporting.dashboard.collect import GALLERY, collect_folder
from imgrec.reporting.dashboard.page import FILE
from imgrec.reporting.dashboard.thumbnails import data_uri
from imgrec.utils.errors import ImgrecError
from tests.reporting.dashboard.conftest import cv_copy

MAX_BYTES = 10 * 1024 * 1024


def test_the_sweep_writes_its_dashboard_and_names_it_last(sweep):
    folder, stdout = sweep
    page = folder / FILE
    assert stdout.strip().splitlines()[-1] == f"dashboard: {page.resolve()}"
    text = page.read_text()
    assert page.stat().st_size <= MAX_BYTES
    assert "https://" not in text.split("</script>", 1)[1]  # after plotly: nothing that reaches the network
    data = json.loads(text.split('<script type="application/json" id="data">', 1)[1].split("</script>", 1)[0])
    assert [r["run"] for r in data["rows"]] == ["0", "1"] and list(data["settings"]) == ["model.optimizer.lr"]
    assert all(len(run["gallery"]) == GALLERY and all(g["img"] in data["images"] for g in run["gallery"])
               for run in data["runs"])


def test_run_table_and_per_label_f1_match_the_run_files(sweep):
    folder, _ = sweep
    data = collect_folder(folder / "1")  # a run folder on its own
    metrics = json.loads((folder / "1" / "metrics.json").read_text())["metrics"]
    assert data["kind"] == "run" and data["rows"][0]["test/f1_micro"] == pytest.approx(metrics["test/f1_micro"])
    assert data["settings"] == {}  # one run sweeps nothing, whatever its overrides
    per_label = pd.read_csv(folder / "1" / "report" / "per_label_test.csv").set_index("label")["f1"]
    assert data["runs"][0]["f1"] == pytest.approx(per_label.round(4).to_dict(), abs=1e-4)
    candidates = pd.read_csv(folder / "1" / "report" / "missing_label_candidates.csv")
    assert [c["image"] for c in data["candidates"]] == candidates["image"].head(len(data["candidates"])).tolist()


def test_a_cv_folder_shows_its_aggregate_and_out_of_fold_candidates(sweep, tmp_path):
    folder, _ = sweep
    data = collect_folder(cv_copy(folder, tmp_path / "cv", {"": ["0", "1"]}))
    assert data["kind"] == "cv"
    (summary,) = data["summary"]
    assert (summary["name"], summary["runs"], summary["stats"]["test/f1_micro"]) == ("cv", ["0", "1"], [0.6, 0.02])
    assert [c["image"] for c in data["candidates"]] == ["im1.jpg"]  # the CV's, not the best run's
    pixels = make_synthetic(200, 0).images  # the sweep's data (data.n_images=200, data_seed 0)
    assert data["images"][data["candidates"][0]["img"]] == data_uri(pixels[0])  # read through the runs' config


def test_a_cv_over_settings_has_one_summary_row_each(sweep, tmp_path):
    folder, _ = sweep
    data = collect_folder(cv_copy(folder, tmp_path / "cv", {"cv_0": ["0"], "cv_1": ["1"]}))
    assert [s["name"] for s in data["summary"]] == ["cv_0: model.optimizer.lr=0.001", "cv_1: model.optimizer.lr=0.01"]
    assert [c["image"] for c in data["candidates"]] == [f"im{int(data['best']) + 1}.jpg"]  # the best run's setting


def test_not_a_run_folder(tmp_path):
    with pytest.raises(ImgrecError, match="not a run, sweep or CV folder"):
        collect_folder(tmp_path)
