"""Odd image files: each is converted to 8-bit RGB, or refused with one line naming the file."""

import os

import numpy as np
import pytest
from PIL import Image

from imgrec.data.images import Decoding, decode_image, decode_images
from imgrec.utils.errors import ImgrecError


def test_zero_byte_file(tmp_path):
    (tmp_path / "a.jpg").write_bytes(b"")
    with pytest.raises(ImgrecError, match=r"a.jpg: empty file \(0 bytes\)"):
        decode_image(tmp_path / "a.jpg")


def test_text_file_named_jpg(tmp_path):
    (tmp_path / "a.jpg").write_text("not an image\n")
    with pytest.raises(ImgrecError, match="a.jpg: not an image file"):
        decode_image(tmp_path / "a.jpg")


def test_truncated_jpeg(tmp_path):
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (128, 128, 3), dtype=np.uint8)).save(tmp_path / "a.jpg")
    data = (tmp_path / "a.jpg").read_bytes()
    (tmp_path / "a.jpg").write_bytes(data[: len(data) // 2])
    with pytest.raises(ImgrecError, match="a.jpg: unreadable or truncated"):
        decode_image(tmp_path / "a.jpg")


def test_png_with_alpha_is_composited_on_white(tmp_path):
    rgba = np.zeros((128, 128, 4), dtype=np.uint8)
    rgba[..., 0] = 255
    rgba[:64, :, 3] = 255  # top half opaque red, bottom half transparent
    Image.fromarray(rgba, "RGBA").save(tmp_path / "a.png")
    out = decode_image(tmp_path / "a.png")
    assert out.shape == (128, 128, 3) and tuple(out[0, 0]) == (255, 0, 0) and tuple(out[-1, -1]) == (255, 255, 255)


def test_16_bit_grayscale_is_scaled(tmp_path):
    Image.fromarray(np.full((128, 128), 65535 // 2, dtype=np.uint16)).save(tmp_path / "a.png")
    out = decode_image(tmp_path / "a.png")
    assert out.dtype == np.uint8 and abs(int(out.mean()) - 127) <= 1


def test_cmyk_is_converted(tmp_path):
    Image.new("CMYK", (128, 128), (0, 255, 255, 0)).save(tmp_path / "a.jpg")  # red in CMYK
    out = decode_image(tmp_path / "a.jpg")
    assert out.shape == (128, 128, 3) and out[..., 0].mean() > 200 and out[..., 1].mean() < 60


def test_wrong_size_resized_or_refused(tmp_path):
    Image.new("RGB", (64, 96), (10, 20, 30)).save(tmp_path / "a.png")
    assert decode_image(tmp_path / "a.png").shape == (128, 128, 3)
    with pytest.raises(ImgrecError, match="a.png: image is 64x96, expected 128x128"):
        decode_image(tmp_path / "a.png", Decoding(resize=False))


def test_skip_counts_bad_images(tmp_path):
    Image.new("RGB", (128, 128)).save(tmp_path / "good.png")
    (tmp_path / "bad.jpg").write_bytes(b"")
    images, kept, skipped = decode_images([tmp_path / "good.png", tmp_path / "bad.jpg"], Decoding(on_bad_image="skip"))
    assert images.shape == (1, 128, 128, 3) and kept == [0] and len(skipped) == 1 and "bad.jpg" in skipped[0]
    with pytest.raises(ImgrecError, match="data.on_bad_image='ignore'"):
        Decoding(on_bad_image="ignore")
    with pytest.raises(ImgrecError, match="on_bad_image='ignore'") as err:
        Decoding(on_bad_image="ignore", prefix="")
    assert not str(err.value).startswith("data.")


def test_pixel_limit_from_the_header_names_the_setting(tmp_path):
    Image.new("RGB", (100, 50)).save(tmp_path / "a.png")
    with pytest.raises(ImgrecError, match=r"a.png: declares 100x50 = 5,000 pixels, above data.max_pixels=4,999 "):
        decode_image(tmp_path / "a.png", Decoding(max_pixels=4999))
    with pytest.raises(ImgrecError, match=r"above max_pixels=4,999 "):
        decode_image(tmp_path / "a.png", Decoding(max_pixels=4999, prefix=""))
    assert decode_image(tmp_path / "a.png", Decoding(max_pixels=5e3)).shape == (128, 128, 3)  # 5e3 as Hydra gives it
    assert Image.MAX_IMAGE_PIXELS == int(1024 * 1024 * 1024 // 4 // 3)  # PIL's own limit is left as it was
    for bad in (0, -5, 1.5, True, "many"):
        with pytest.raises(ImgrecError, match=r"data.max_pixels=.*: expected a positive whole number of pixels"):
            Decoding(max_pixels=bad)


def test_a_pipe_named_like_an_image_is_refused_not_waited_on(tmp_path):
    os.mkfifo(tmp_path / "a.jpg")
    with pytest.raises(ImgrecError, match="a.jpg: not a regular file"):
        decode_image(tmp_path / "a.jpg")
