import csv

import pytest

from tests.conftest import TINY, run_in_process

SMALL = [o for o in TINY if not o.startswith(("trainer.max_epochs", "data.n_images"))]


def run_arch_sweep(tmp_path, *extra):
    r = run_in_process(["imgrec.run", "+experiment=arch_sweep", f"paths.log_dir={tmp_path}", *SMALL, *extra],
                       cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-3000:]
    sweep = next((tmp_path / "arch_sweep" / "multiruns").iterdir())
    return {row["settings"]: row for row in csv.DictReader((sweep / "results.csv").open())}


def test_arch_sweep_table_shows_all_three_families(tmp_path):
    """One member of each family (the command line narrows the sweep's list)."""
    rows = run_arch_sweep(tmp_path, "+arch=transfer_lite0_hidden,scratch_small,ensemble", "data.n_images=160",
                          "trainer.max_epochs=2", "model.net.input_size=48")
    assert list(rows) == ["+arch=transfer_lite0_hidden", "+arch=scratch_small", "+arch=ensemble"]
    transfer, scratch, ensemble = rows.values()
    for row in rows.values():
        assert int(row["epochs"]) == 2 and 0 <= float(row["test/f1_micro"]) <= 1
    assert int(scratch["trainable"]) == int(scratch["params"]) > 0  # trained from scratch: everything
    assert int(transfer["trainable"]) == 1280 * 256 + 256 + 256 * 14 + 14  # frozen: the hidden layer and output
    assert int(ensemble["trainable"]) == 2 * 1280 * 14 + 14  # frozen pair: one linear head on 2560 features
    assert int(ensemble["params"]) > int(transfer["params"]) > int(scratch["params"])


@pytest.mark.slow
def test_full_arch_sweep(tmp_path):
    rows = run_arch_sweep(tmp_path, "data.n_images=300", "trainer.max_epochs=3")
    assert len(rows) == 10 and all(0 <= float(row["test/f1_micro"]) <= 1 for row in rows.values())
    assert {s.split("=")[1].split("_")[0] for s in rows} == {"transfer", "scratch", "ensemble"}
