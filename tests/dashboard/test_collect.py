import json
import shutil

import pandas as pd
import pytest

from imgrec.dashboard.collect import GALLERY, collect_folder
from imgrec.dashboard.page import FILE
from imgrec.dashboard.thumbnails import data_uri
from imgrec.data.synthetic import make_synthetic
from imgrec.errors import ImgrecError

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
    per_label = pd.read_csv(folder / "1" / "report" / "per_label_test.csv").set_index("label")["f1"]
    assert data["runs"][0]["f1"] == pytest.approx(per_label.round(4).to_dict(), abs=1e-4)
    candidates = pd.read_csv(folder / "1" / "report" / "missing_label_candidates.csv")
    assert [c["image"] for c in data["candidates"]] == candidates["image"].head(len(data["candidates"])).tolist()


def test_a_cv_folder_shows_its_aggregate_and_out_of_fold_candidates(sweep, tmp_path):
    folder, _ = sweep
    cv = shutil.copytree(folder, tmp_path / "cv", ignore=shutil.ignore_patterns("checkpoints", "*.safetensors"))
    stats = {"test/f1_micro": {"mean": 0.61, "std": 0.02}, "val/f1_micro": {"mean": 0.7, "std": 0.01}}
    (cv / "cv.json").write_text(json.dumps({"folds": 2, "metrics": stats}))
    train_images = ["im1.jpg", "im2.jpg", "im3.jpg"]
    pd.DataFrame({"image": train_images, "label": "disc", "probability": 0.9, "given_labels": "-"}).to_csv(
        cv / "missing_label_candidates.csv", index=False)
    data = collect_folder(cv)
    assert data["kind"] == "cv" and data["summary"] == {k: [v["mean"], v["std"]] for k, v in stats.items()}
    assert [c["image"] for c in data["candidates"]] == train_images
    pixels = make_synthetic(200, 0).images  # the sweep's data (data.n_images=200, data_seed 0)
    assert [data["images"][c["img"]] for c in data["candidates"]] == [data_uri(pixels[k]) for k in range(3)]


def test_not_a_run_folder(tmp_path):
    with pytest.raises(ImgrecError, match="not a run, sweep or CV folder"):
        collect_folder(tmp_path)
