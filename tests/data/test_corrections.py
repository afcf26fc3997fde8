import json
import logging

import numpy as np
import pytest
from hydra.utils import instantiate

from imgrec.data.corrections import apply_corrections, read_corrections
from imgrec.data.synthetic import make_synthetic
from imgrec.training.provenance import write_provenance
from imgrec.utils.errors import ImgrecError
from tests.conftest import compose_cfg


@pytest.fixture(scope="module")
def data():
    return make_synthetic(30, seed=1)


def write(path, lines):
    path.write_text("image,label,action,verdict\n" + "".join(f"{line}\n" for line in lines))
    return path


def test_only_accepted_rows_change_labels_and_the_fingerprint_follows(tmp_path, data):
    j = data.label_names.index("disc")
    off = [i for i in range(len(data)) if not data.targets[i, j]][:2]
    on = [i for i in range(len(data)) if data.targets[i, j]][:2]
    path = write(tmp_path / "c.csv", [f"{data.names[off[0]]},disc,add,accept",
                                      f"{data.names[off[1]]},disc,add,reject",
                                      f"{data.names[on[0]]},disc,remove,accept",
                                      f"{data.names[on[1]]},disc,remove,"])
    before = data.targets.copy()
    corrected, corrections = apply_corrections(data, path)
    changed = np.argwhere(corrected.targets != before)
    assert sorted(map(tuple, changed)) == sorted([(off[0], j), (on[0], j)])
    assert corrected.targets[off[0], j] == 1 and corrected.targets[on[0], j] == 0
    assert corrected.targets[:, j].sum() == before[:, j].sum()  # one added, one removed
    assert (data.targets == before).all()  # the original record is untouched
    assert corrected.fingerprint != data.fingerprint  # caches keyed on the fingerprint follow the labels
    assert corrections.counts() == {"add": 1, "remove": 1, "rejected": 1, "unreviewed": 1}
    assert len(corrections.sha256) == 64


@pytest.mark.parametrize("lines, message", [
    (["nope.png,disc,add,accept"], "line 2: unknown image 'nope.png'"),
    (["{0},blob,add,accept"], "line 2: unknown label 'blob'"),
    (["{0},disc,add"], "line 2: malformed row"),
    (["{0},disc,flip,accept"], "line 2: action 'flip'"),
    (["{0},disc,add,maybe"], "line 2: verdict 'maybe'"),
    (["{0},disc,add,accept", "{0},disc,add,reject"], "line 3: conflicting verdict"),
])
def test_bad_rows_name_the_line(tmp_path, data, lines, message):
    path = write(tmp_path / "c.csv", [line.format(data.names[0]) for line in lines])
    with pytest.raises(ImgrecError, match=message) as err:
        apply_corrections(data, path)
    assert str(err.value).startswith(str(path)) and "\n" not in str(err.value)


def test_missing_columns(tmp_path):
    path = tmp_path / "c.csv"
    path.write_text("image,label\na,b\n")
    with pytest.raises(ImgrecError, match="missing column.*action, verdict"):
        read_corrections(path)


def test_datamodule_applies_the_overlay_and_provenance_records_it(tmp_path, caplog):
    cfg = compose_cfg(tmp_path, ["data.n_images=40"])
    plain = instantiate(cfg.data)
    plain.setup()
    i = int(np.flatnonzero(plain.data.targets[:, 0] == 0)[0])
    path = write(tmp_path / "c.csv", [f"{plain.data.names[i]},{plain.data.label_names[0]},add,accept"])
    cfg.data.corrections = str(path)
    corrected = instantiate(cfg.data)
    with caplog.at_level(logging.INFO, logger="imgrec.data.datamodule"):
        corrected.setup()
    assert read_corrections(path).sha256 in caplog.text and "'add': 1" in caplog.text  # the run log
    assert corrected.data.targets.sum() == plain.data.targets.sum() + 1
    assert corrected.data.targets[i, 0] == 1
    assert (corrected.split.test == plain.split.test).all()  # the split does not depend on the labels
    write_provenance(tmp_path, cfg, corrected.data.fingerprint)
    record = json.loads((tmp_path / "provenance.json").read_text())["corrections"]
    assert record["sha256"] == read_corrections(path).sha256 and record["add"] == 1 and record["file"] == str(path)
