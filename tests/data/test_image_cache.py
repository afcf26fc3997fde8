import logging

import numpy as np
import pytest
from PIL import Image

from imgrec.data.image_cache import load_images
from imgrec.data.readers import list_images, read_course


def test_cache_hit_is_memory_mapped_and_equal(course_dir, tmp_path):
    paths = list_images(course_dir / "images")
    first, kept, _ = load_images(paths, cache_dir=tmp_path)
    again, kept_again, _ = load_images(paths, cache_dir=tmp_path)
    assert isinstance(again, np.memmap) and np.array_equal(first, again) and kept == kept_again
    assert len(list((tmp_path / "images").glob("*.npy"))) == 1


def test_changed_image_is_never_served_stale(course_dir, tmp_path):
    import shutil

    root = tmp_path / "data"
    shutil.copytree(course_dir, root)
    before = read_course(root, cache_dir=tmp_path / "cache")
    Image.new("RGB", (128, 128), (255, 0, 0)).save(root / "images" / "im1.jpg")
    after = read_course(root, cache_dir=tmp_path / "cache")
    assert not np.array_equal(before.images[0], after.images[0]) and after.images[0, ..., 0].mean() > 240
    assert np.array_equal(before.images[1:], after.images[1:])
    assert len(list((tmp_path / "cache" / "images").glob("*.npy"))) == 2


@pytest.mark.parametrize("damage", ["truncate_array", "garbage_index"])
def test_damaged_cache_entry_is_decoded_again(course_dir, tmp_path, caplog, damage):
    paths = list_images(course_dir / "images")
    first, kept, _ = load_images(paths, cache_dir=tmp_path)
    first = np.array(first)  # not the memmap: the damage below is done to the mapped file in place
    array = next((tmp_path / "images").glob("*.npy"))
    if damage == "truncate_array":
        array.write_bytes(array.read_bytes()[: array.stat().st_size // 2])
    else:
        array.with_suffix(".json").write_text("{not json")
    with caplog.at_level(logging.WARNING):
        again, kept_again, _ = load_images(paths, cache_dir=tmp_path)
    assert np.array_equal(first, again) and kept == kept_again
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and warnings[0].startswith(f"images: {array} is damaged")
    hit, _, _ = load_images(paths, cache_dir=tmp_path)  # rebuilt whole: a plain hit again
    assert isinstance(hit, np.memmap) and np.array_equal(first, hit)
