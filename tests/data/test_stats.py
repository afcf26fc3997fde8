import numpy as np
import pytest

from imgrec.data.stats import annotation_targets, label_table, labels_per_image
from imgrec.data.synthetic import make_synthetic, write_course_format
from imgrec.utils.errors import ImgrecError
from tests.conftest import SHARED_DATA

STUDY_TABLE = {"people": 6403, "female": 3227, "portrait": 3121, "male": 2979, "clouds": 1095, "flower": 761,
               "night": 598, "tree": 525, "dog": 448, "bird": 360, "car": 319, "sea": 173, "river": 120, "baby": 95}


def test_study_label_table_from_the_full_annotations():
    folder = SHARED_DATA / "idl2020-annotations-full"
    if not folder.is_dir():
        pytest.skip(f"{folder} is absent")
    targets, names = annotation_targets(folder, n_images=20000)
    assert targets.shape == (20000, 14)
    assert labels_per_image(targets)[0] == 9824
    table = label_table(targets, names)
    assert dict(zip(table["label"], table["images"])) == STUDY_TABLE
    assert list(table["label"]) == list(STUDY_TABLE)  # most frequent first


def test_annotation_targets_match_the_course_reader(tmp_path):
    data = make_synthetic(50, seed=1)
    root = write_course_format(data, tmp_path / "course")
    targets, names = annotation_targets(root, n_images=50)
    assert names == data.label_names and np.array_equal(targets, data.targets)
    table = label_table(targets, names)
    assert table["images"].sum() == data.targets.sum() and np.isclose(table["share"].iloc[0],
                                                                       table["images"].iloc[0] / 50)
    with pytest.raises(ImgrecError, match="above n_images=10"):
        annotation_targets(root, n_images=10)
