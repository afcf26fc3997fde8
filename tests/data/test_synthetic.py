import numpy as np

from imgrec.data.readers import read_course
from imgrec.data.synthetic import LABELS, MOTIFS, make_synthetic, write_course_format


def test_deterministic_and_nested():
    a, b = make_synthetic(50, seed=7), make_synthetic(80, seed=7)
    assert np.array_equal(a.images, b.images[:50]) and np.array_equal(a.targets, b.targets[:50])
    assert not np.array_equal(a.images, make_synthetic(50, seed=8).images)


def test_shape_and_labels():
    d = make_synthetic(20)
    assert d.images.shape == (20, 128, 128, 3) and d.images.dtype == np.uint8
    assert d.label_names == sorted(LABELS) and len(d.label_names) == 14


def test_statistics_match_the_course_data():
    d = make_synthetic(4000, seed=1)
    counts = d.targets.sum(0)
    ratio = counts.max() / counts.min()
    assert 30 < ratio < 120, ratio  # rarest about 1/60 of the most frequent
    assert 0.4 < (d.targets.sum(1) == 0).mean() < 0.65  # about half unlabelled
    col = {n: j for j, n in enumerate(d.label_names)}
    for m in MOTIFS:  # implications: a child never appears without its parent
        if m.parent:
            child, parent = d.targets[:, col[m.name]], d.targets[:, col[m.parent]]
            assert child.sum() > 0 and np.all(parent[child == 1] == 1), m.name


def test_drop_rate_removes_labels_not_pixels():
    full, dropped = make_synthetic(300, seed=2), make_synthetic(300, seed=2, drop_rate=0.3)
    assert np.array_equal(full.images, dropped.images)
    kept = dropped.targets.sum() / full.targets.sum()
    assert 0.6 < kept < 0.8 and np.all(dropped.targets <= full.targets)


def test_course_format_round_trip(tmp_path):
    d = make_synthetic(30, seed=4)
    back = read_course(write_course_format(d, tmp_path))
    assert back.label_names == d.label_names and back.names == d.names
    assert np.array_equal(back.targets, d.targets)
    assert np.abs(back.images.astype(int) - d.images).mean() < 6  # JPEG


def test_dropped_labels_are_the_same_in_every_process():
    """The labels a drop_rate removes depend on the seed only, not on the process's string hashing."""
    import os
    import subprocess
    import sys

    code = "from imgrec.data.synthetic import make_synthetic; print(make_synthetic(150, 0, 0.3).fingerprint)"
    prints = {subprocess.run([sys.executable, "-c", code], env={**os.environ, "PYTHONHASHSEED": seed},
                             capture_output=True, text=True, check=True).stdout for seed in ("1", "2")}
    assert len(prints) == 1, prints
