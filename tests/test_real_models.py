"""Each model family trains and tests on ../shared/data/idl2020-dev (6000 images, 14 labels).

Slow, and sized for a 2-core CPU: every model sees the images at their own 128 px and trains a few
epochs. README.md quotes what this prints (``pytest -m slow tests/test_real_models.py -s``).
"""

import json
import time

import pytest

from imgrec.data.images import Decoding
from imgrec.data.readers import read_course
from imgrec.data.split import RandomSplit
from tests.conftest import SHARED_DATA, most_frequent_f1, run_cli

CASES = {
    "scratch_small": ["+arch=scratch_small", "trainer.max_epochs=8"],
    "transfer_lite0_hidden": ["+arch=transfer_lite0_hidden"],
    "finetune_lite0": ["model.net.freeze=false", "model.finetuning.frozen_epochs=1", "trainer.max_epochs=3"],
    "ensemble_lite0_lite2": ["+arch=ensemble"],
}


@pytest.fixture(scope="module")
def baseline() -> float:
    root = SHARED_DATA / "idl2020-dev"
    if not root.is_dir():
        pytest.skip(f"{root} is absent")
    targets = read_course(root, Decoding(16)).targets
    return most_frequent_f1(targets[RandomSplit(seed=42)(targets).test])


@pytest.mark.slow
@pytest.mark.parametrize("name", CASES)
def test_family_on_idl2020_dev(tmp_path, baseline, name):
    start = time.time()
    r = run_cli(["imgrec.run", "data=idl", f"data.root={SHARED_DATA / 'idl2020-dev'}", f"paths.log_dir={tmp_path}",
                 "logger=none", "model.net.input_size=128", *CASES[name]], cwd=tmp_path, timeout=3600)
    wall = time.time() - start
    assert r.returncode == 0, r.stderr[-3000:]
    summary = json.loads(next(tmp_path.rglob("metrics.json")).read_text())
    f1 = summary["metrics"]["test/f1_micro"]
    print(f"\n{name}: test micro F1 {f1:.4f} (people everywhere: {baseline:.4f}); {summary['epochs']} epochs; "
          f"fit+test {summary['seconds']:.0f} s, wall {wall:.0f} s; {summary['size']['params']:,} parameters "
          f"({summary['size']['trainable_params']:,} trainable); checkpoint {summary['checkpoint']}")
    assert f1 > baseline + 0.1, (f1, baseline)
