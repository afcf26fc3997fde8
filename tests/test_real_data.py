"""One run on a small slice of the real course data (skipped where ../shared/data is absent)."""

import json

from tests.conftest import idl_slice, most_frequent_f1, run_in_process


def test_frozen_lite0_on_a_slice_of_idl2020(tmp_path):
    root = idl_slice(tmp_path / "idl", 600)
    r = run_in_process(["imgrec.run", "data=idl", f"data.root={root}", f"paths.log_dir={tmp_path / 'logs'}",
                        "logger=none", "model.net.backbones.0.input_size=128", "split.fractions=[0.6,0.2,0.2]"],
                       cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-3000:]
    summary = json.loads(next((tmp_path / "logs").rglob("metrics.json")).read_text())
    from imgrec.data.readers import read_course
    from imgrec.data.split import RandomSplit

    data = read_course(root)
    test = RandomSplit((0.6, 0.2, 0.2), seed=42)(data.targets).test
    baseline = most_frequent_f1(data.targets[test])
    assert summary["metrics"]["test/f1_micro"] > baseline + 0.15, (summary["metrics"]["test/f1_micro"], baseline)
