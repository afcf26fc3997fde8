import logging

import numpy as np
import pytest
from PIL import Image

from imgrec.data.image_cache import load_images, release_pages
from imgrec.data.images import Decoding, decode_images
from imgrec.data.readers import list_images, read_course
from imgrec.utils.errors import ImgrecError


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


def test_written_block_by_block_with_bad_images_skipped(course_dir, tmp_path, monkeypatch):
    """Blocks of 7 images, two bad files in different blocks: the cached array is what decoding in
    memory gives (the .npy header rewritten for the images kept)."""
    import imgrec.data.image_cache as cache

    paths = list_images(course_dir / "images")
    bad = [tmp_path / "bad1.jpg", tmp_path / "bad2.jpg"]
    for path in bad:
        path.write_bytes(b"not a jpeg")
    paths = [*paths[:5], bad[0], *paths[5:20], bad[1], *paths[20:]]
    monkeypatch.setattr(cache, "BLOCK", 7)
    skip = Decoding(on_bad_image="skip")
    in_memory, kept, skipped = decode_images(paths, skip)
    cached, kept_cached, skipped_cached = load_images(paths, skip, cache_dir=tmp_path / "cache")
    assert kept_cached == kept and len(skipped_cached) == 2 and np.array_equal(cached, in_memory)
    assert np.array_equal(load_images(paths, skip, cache_dir=tmp_path / "cache")[0], in_memory)
    with pytest.raises(ImgrecError, match="bad1.jpg"):  # on_bad_image=error: stops, and leaves no partial file
        load_images(paths, cache_dir=tmp_path / "stopped")
    assert not list((tmp_path / "stopped" / "images").iterdir())


def test_release_pages_unmaps_what_was_read(tmp_path):
    """One pass over a memory-mapped array leaves it resident in the process unless released."""
    np.save(tmp_path / "a.npy", np.ones((64, 1 << 20), np.uint8))  # 64 MB
    array = np.load(tmp_path / "a.npy", mmap_mode="r")

    def resident_mb() -> float:
        status = dict(line.split(":", 1) for line in open("/proc/self/status").read().splitlines())
        return int(status["RssFile"].split()[0]) / 1024

    before = resident_mb()
    assert int(array[::2, ::4096].sum()) > 0  # touches a page of every other row
    assert resident_mb() - before > 16
    release_pages(array[5:9])  # a view of it releases the whole mapping
    assert resident_mb() - before < 4
    assert int(array.sum(dtype=np.int64)) == 64 << 20  # and it still reads the same
