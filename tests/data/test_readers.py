import shutil

import numpy as np
import pytest
from PIL import Image

from imgrec.data.images import Decoding
from imgrec.data.readers import list_images, read_course, read_table
from imgrec.utils.errors import ImgrecError


@pytest.fixture
def course(course_dir, tmp_path):
    dest = tmp_path / "course"
    shutil.copytree(course_dir, dest)
    return dest


def test_course_reader(course):
    d = read_course(course)
    assert len(d) == 60 and d.images.shape == (60, 128, 128, 3)
    assert d.label_names == sorted(d.label_names)
    people = (course / "annotations" / "disc.txt").read_text().split()
    assert d.targets[:, d.label_names.index("disc")].sum() == len(people)
    assert d.names[:3] == ["im1.jpg", "im2.jpg", "im3.jpg"]


def test_hidden_files_named_like_images_are_left_out_and_counted(course, caplog):
    """macOS leaves ``._<name>`` metadata files beside each image on other file systems: not images."""
    (course / "images" / "._im1.jpg").write_bytes(b"\x00\x05\x16\x07" + bytes(60))
    (course / "images" / ".hidden.png").write_bytes(b"")
    with caplog.at_level("INFO", logger="imgrec.data.readers"):
        listed = list_images(course / "images")
    assert [p.name for p in listed[:2]] == ["im1.jpg", "im2.jpg"] and not any(p.name[0] == "." for p in listed)
    assert "2 hidden file(s) named like images left out" in caplog.text
    assert len(read_course(course)) == 60


def test_unlisted_image_has_no_label(course):
    for f in (course / "annotations").glob("*.txt"):
        f.write_text("\n".join(n for n in f.read_text().split() if n != "5") + "\n")
    d = read_course(course)
    assert d.targets[d.names.index("im5.jpg")].sum() == 0


@pytest.mark.parametrize("line, message", [("abc", "is not an image number"), ("-3", "not a positive image number"),
                                           ("999", "does not exist")])
def test_bad_annotation_lines(course, line, message):
    with (course / "annotations" / "disc.txt").open("a") as fh:
        fh.write(f"{line}\n")
    with pytest.raises(ImgrecError, match=message) as err:
        read_course(course)
    assert "disc.txt" in str(err.value) and "\n" not in str(err.value)


def test_duplicate_annotation(course):
    f = course / "annotations" / "disc.txt"
    first = f.read_text().split()[0]
    f.write_text(f.read_text() + f"{first}\n")
    with pytest.raises(ImgrecError, match="listed twice"):
        read_course(course)


def test_missing_or_empty_annotations(course):
    for f in (course / "annotations").glob("*.txt"):
        f.unlink()
    with pytest.raises(ImgrecError, match="no annotation files"):
        read_course(course)
    shutil.rmtree(course / "annotations")
    with pytest.raises(ImgrecError, match="annotations folder not found"):
        read_course(course)


def test_truncated_image_fails_or_is_skipped(course):
    path = course / "images" / "im7.jpg"
    path.write_bytes(path.read_bytes()[:300])
    with pytest.raises(ImgrecError, match="im7.jpg: unreadable or truncated"):
        read_course(course)
    d = read_course(course, Decoding(on_bad_image="skip"))
    assert len(d) == 59 and "im7.jpg" not in d.names and len(d.skipped) == 1


def test_grayscale_and_odd_size_images(course):
    Image.new("L", (100, 80), 128).save(course / "images" / "im2.jpg")
    d = read_course(course)
    assert d.images[1].shape == (128, 128, 3) and abs(int(d.images[1].mean()) - 128) <= 2
    with pytest.raises(ImgrecError, match="im2.jpg: image is 100x80"):
        read_course(course, Decoding(resize=False))


def test_table_reader_both_layouts(course, tmp_path):
    ref = read_course(course)
    names = ref.names[:10]
    onehot = tmp_path / "labels.csv"
    onehot.write_text("file," + ",".join(ref.label_names) + "\n" + "".join(
        f"{n}," + ",".join(str(v) for v in ref.targets[i]) + "\n" for i, n in enumerate(names)))
    a = read_table(onehot, images=course / "images")
    assert a.label_names == ref.label_names and np.array_equal(a.targets, ref.targets[:10])
    listed = tmp_path / "labels.tsv"
    rows = [" ".join(name for name, v in zip(ref.label_names, ref.targets[i]) if v) for i in range(10)]
    listed.write_text("file\tlabels\n" + "".join(f"{n}\t{r}\n" for n, r in zip(names, rows)))
    b = read_table(listed, images=course / "images")
    present = [j for j, name in enumerate(ref.label_names) if name in b.label_names]
    assert np.array_equal(b.targets, ref.targets[:10][:, present])


def test_table_reader_bad_cell(tmp_path):
    t = tmp_path / "t.csv"
    t.write_text("file,a,b\nx.jpg,1,2\n")
    with pytest.raises(ImgrecError, match=r"t.csv:2: '2' is not 0 or 1"):
        read_table(t)
