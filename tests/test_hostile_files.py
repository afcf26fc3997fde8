"""Hostile and odd files through every reader: the course folder and the table (training), ``imgrec predict``
from a checkpoint and from an ONNX file.

Each case is made here by code: a course folder of four images where ``im2`` is the case (or, for a name
that is not UTF-8, a fifth file beside them). Bad cases stop with one line naming the file
(``on_bad_image=error``) and leave nothing written, or are skipped and counted (``skip``) with the other
images' rows in place. Odd but valid cases decode to the expected RGB pixels, the same in training
and in both predict paths. The model is the small scratch CNN of ``tests/inference/fixtures``.
"""

from __future__ import annotations

import csv
import io
import os
import struct
import zlib
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from omegaconf import OmegaConf
from PIL import Image

from imgrec.data.images import Decoding, display
from imgrec.data.readers import read_course, read_table
from imgrec.inference.onnx_export import export_onnx
from imgrec.inference.onnx_predict import DEFAULTS, load_onnx
from imgrec.inference.onnx_predict import main as onnx_main
from imgrec.inference.onnx_predict import predict as onnx_predict
from imgrec.inference.predictions_io import Inputs, Predictions, write_predictions
from imgrec.inference.predictor import load_predictor
from imgrec.predict import predict as ckpt_predict
from imgrec.utils.errors import ImgrecError
from tests.conftest import assert_one_line_error, run_in_process

CKPT = Path(__file__).resolve().parent / "inference" / "fixtures" / "checkpoint_2026_12" / "model.ckpt"
SIZE = 128  # the size that checkpoint decodes at
LABELS = ["bow", "checker", "dark", "disc", "face", "grid", "hat", "ring", "square", "star", "stripes", "triangle",
          "waves", "zigzag"]  # the checkpoint's
GOOD = {1: (200, 40, 40), 3: (40, 200, 40), 4: (40, 40, 200)}  # im1, im3, im4: plain JPEGs of these colours


def png_bytes(width: int, height: int, idat: bytes | None) -> bytes:
    """A PNG written chunk by chunk, so that its header may declare what its data does not hold."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))  # 8-bit RGB
    return b"\x89PNG\r\n\x1a\n" + header + (b"" if idat is None else chunk(b"IDAT", idat)) + chunk(b"IEND", b"")


def jpeg(path: Path, rgb: tuple[int, int, int], size: tuple[int, int] = (SIZE, SIZE)) -> None:
    Image.new("RGB", size, rgb).save(path, quality=95)


def halves(top: tuple[int, int, int], bottom: tuple[int, int, int], size: tuple[int, int]) -> Image.Image:
    img = Image.new("RGB", size, bottom)
    img.paste(top, (0, 0, size[0], size[1] // 2))
    return img


def checker() -> np.ndarray:
    return (np.indices((SIZE, SIZE)).sum(0) % 2 * 255).astype(np.uint8)[..., None].repeat(3, axis=2)


# ---- bad cases: each writes the file(s) for image 2 and returns the name the error must carry ----

def writing(name: str, data: bytes) -> Callable[[Path], str]:
    def make(folder: Path) -> str:
        (folder / name).write_bytes(data)
        return name
    return make


def directory(folder: Path) -> str:
    (folder / "im2.jpg").mkdir()
    return "im2.jpg"


def pipe(folder: Path) -> str:
    os.mkfifo(folder / "im2.jpg")  # reading it would wait forever
    return "im2.jpg"


def symlink_loop(folder: Path) -> str:
    (folder / "im2.jpg").symlink_to("im2.jpg")
    return "im2.jpg"


def non_utf8_name(folder: Path) -> str:
    name = os.fsdecode(b"photo\xff.jpg")
    jpeg(folder / name, (90, 90, 90))
    return display(name)  # photo\xff.jpg, as messages and predictions.csv show it


def truncated(folder: Path) -> str:
    buffer = io.BytesIO()
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (SIZE, SIZE, 3), dtype=np.uint8)).save(buffer, "JPEG")
    return writing("im2.jpg", buffer.getvalue()[:len(buffer.getvalue()) // 2])(folder)


BAD: dict[str, tuple[Callable[[Path], str], str]] = {  # case -> (maker, what the message says)
    "empty": (writing("im2.jpg", b""), "empty file (0 bytes)"),
    "text_named_jpg": (writing("im2.jpg", b"not an image\n"), "not an image file"),
    "truncated_jpeg": (truncated, "unreadable or truncated image"),
    # a 1 KB PNG whose header declares 30,000 x 30,000 pixels (900 MP; the limit is 500 MP)
    "decompression_bomb": (writing("im2.png", png_bytes(30_000, 30_000, zlib.compress(b"\0" * 90_001 * 4))),
                           "declares 30000x30000 = 900,000,000 pixels, above {key}max_pixels=500,000,000"),
    "directory": (directory, "a directory, not an image file"),
    "pipe": (pipe, "not a regular file"),
    "symlink_loop": (symlink_loop, "cannot read (Too many levels of symbolic links)"),
    "non_utf8_name": (non_utf8_name, "the file name is not valid UTF-8"),
    "header_only": (writing("im2.png", png_bytes(16, 16, None)), "unreadable or truncated image"),
}


# ---- odd but valid: each writes image 2 and checks the decoded (SIZE, SIZE, 3) pixels ----

def exif_rotated(folder: Path) -> None:
    """Stored sideways (red left, blue right) with EXIF orientation 6: upright, red is on top."""
    img = Image.new("RGB", (24, 16), (0, 0, 255))
    img.paste((255, 0, 0), (0, 0, 12, 16))
    exif = Image.Exif()
    exif[0x0112] = 6
    img.save(folder / "im2.jpg", exif=exif, quality=95)


def animated_gif(folder: Path) -> None:
    frames = [Image.new("RGB", (16, 16), rgb) for rgb in ((255, 0, 0), (0, 0, 255))]
    frames[0].save(folder / "im2.gif", save_all=True, append_images=frames[1:], duration=100, loop=0)


def rgba_png(folder: Path) -> None:
    rgba = np.zeros((16, 16, 4), dtype=np.uint8)
    rgba[..., 1] = 255
    rgba[:8, :, 3] = 255  # top half opaque green, bottom half transparent
    Image.fromarray(rgba, "RGBA").save(folder / "im2.png")


def close(pixel: np.ndarray, rgb: tuple[int, int, int], tolerance: int = 12) -> bool:
    return bool(np.abs(pixel.astype(int) - rgb).max() <= tolerance)


ODD: dict[str, tuple[Callable[[Path], None], Callable[[np.ndarray], bool]]] = {
    "png16": (lambda f: Image.fromarray(np.full((16, 16), 40_000, np.uint16)).save(f / "im2.png"),
              lambda x: bool((x == int(40_000 / 65535 * 255)).all())),
    "cmyk_jpeg": (lambda f: Image.new("CMYK", (16, 16), (0, 255, 255, 0)).save(f / "im2.jpg"),  # red
                  lambda x: close(x.mean((0, 1)), (255, 0, 0), 30)),
    "rgba_png": (rgba_png, lambda x: close(x[2, 2], (0, 255, 0), 0) and close(x[-3, -3], (255, 255, 255), 0)),
    "palette_gif": (lambda f: halves((0, 128, 0), (255, 255, 0), (16, 16)).convert(
        "P", palette=Image.Palette.ADAPTIVE, colors=2).save(f / "im2.gif"),
                    lambda x: close(x[2, 2], (0, 128, 0), 0) and close(x[-3, -3], (255, 255, 0), 0)),
    "animated_gif": (animated_gif, lambda x: close(x.mean((0, 1)), (255, 0, 0), 0)),  # the first frame
    "exif_rotated_jpeg": (exif_rotated, lambda x: close(x[10, 118], (255, 0, 0), 30)
                          and close(x[118, 10], (0, 0, 255), 30)),
    "one_pixel": (lambda f: Image.new("RGB", (1, 1), (10, 200, 30)).save(f / "im2.png"),
                  lambda x: bool((x == (10, 200, 30)).all())),
    "forty_times_the_size": (lambda f: halves((220, 20, 20), (20, 20, 220), (40 * SIZE, 40 * SIZE)).save(
        f / "im2.jpg", quality=90), lambda x: close(x[5, 5], (220, 20, 20)) and close(x[-5, -5], (20, 20, 220))),
    # The extension is not the format: a PNG named .jpg is read by its content, exactly.
    "png_named_jpg": (lambda f: Image.fromarray(checker()).save(f / "im2.jpg", format="PNG"),
                      lambda x: bool((x == checker()).all())),
}


def make_course(folder: Path, make_case: Callable[[Path], object]) -> tuple[Path, str | None]:
    """``folder`` in the course format with images 1, 3, 4 and the case; returns it and what ``make_case``
    returned (the case's file name, for a bad case)."""
    images = folder / "images"
    images.mkdir(parents=True)
    for n, rgb in GOOD.items():
        jpeg(images / f"im{n}.jpg", rgb)
    name = make_case(images)
    (folder / "annotations").mkdir()
    has_2 = any(p.name.startswith("im2.") for p in images.iterdir())
    for label in LABELS:
        (folder / "annotations" / f"{label}.txt").write_text("")
    (folder / "annotations" / "bow.txt").write_text("1\n2\n" if has_2 else "1\n")
    (folder / "annotations" / "disc.txt").write_text("3\n")
    return folder, name


def table_of(folder: Path) -> Path:
    """A label table listing every entry of ``folder / images`` (names as bytes, as the file system has them)."""
    rows = b"".join(os.fsencode(p.name) + b"," + (b"bow" if p.name.startswith("im1") else b"disc") + b"\n"
                    for p in sorted((folder / "images").iterdir()))
    (folder / "labels.csv").write_bytes(b"file,labels\n" + rows)
    return folder / "labels.csv"


@pytest.fixture(scope="module")
def onnx_model(tmp_path_factory) -> Path:
    return export_onnx(CKPT, tmp_path_factory.mktemp("onnx") / "model.onnx")


@pytest.fixture(scope="module")
def baseline(tmp_path_factory) -> dict[str, np.ndarray]:
    """The probabilities of the three good images, predicted alone."""
    folder, _ = make_course(tmp_path_factory.mktemp("good"), lambda images: None)
    ckpt_predict(cfg(folder / "images", folder / "out", "error"))
    return {row[0]: np.array(row[1:-2], float) for row in read_rows(folder / "out" / "predictions.csv")[1:]}


def cfg(folder: Path, out: Path, mode: str):
    return OmegaConf.create({"ckpt": str(CKPT), "input": str(folder), "out": str(out), "batch_size": 2,
                             "on_bad_image": mode, "max_pixels": None, "engine": "eager", "thresholds": None})


def read_rows(path: Path) -> list[list[str]]:
    return list(csv.reader(path.open()))


def run_reader(reader: str, folder: Path, mode: str, onnx_model: Path):
    """One reader over ``folder`` in ``mode``: training's return a Dataset, predict's the 0/1 matrix."""
    decoding = Decoding(SIZE, on_bad_image=mode)
    if reader == "course":
        return read_course(folder, decoding, cache_dir=folder / "cache")
    if reader == "table":
        return read_table(table_of(folder), folder / "images", decoding, cache_dir=folder / "cache")
    out = folder / f"out_{reader}"
    if reader == "predict":
        return ckpt_predict(cfg(folder / "images", out, mode))
    settings = {**DEFAULTS, "model": str(onnx_model), "input": str(folder / "images"), "out": str(out),
                "batch_size": 2, "on_bad_image": mode}
    return onnx_predict(settings)


READERS = ["course", "table", "predict", "onnx_predict"]


@pytest.mark.parametrize("reader", READERS)
@pytest.mark.parametrize("case", list(BAD))
def test_bad_file_stops_in_one_line_or_is_skipped(case, reader, tmp_path, onnx_model, baseline, caplog):
    make, message = BAD[case]
    folder, name = make_course(tmp_path, make)
    out, predicts = folder / f"out_{reader}", "predict" in reader
    if predicts:  # nothing already written may be lost
        out.mkdir()
        (out / "results.txt").write_text("an earlier result\n")
    key = "" if predicts else "data."
    if case == "non_utf8_name" and reader == "course":  # not named im<N>.jpg: not a course image, as any other
        assert [n for n in run_reader(reader, folder, "error", onnx_model).names] == ["im1.jpg", "im3.jpg", "im4.jpg"]
        return
    if case == "non_utf8_name" and reader == "table":  # a table cannot name it in UTF-8: the table is refused
        with pytest.raises(ImgrecError, match=r"labels.csv: not UTF-8 text") as err:
            run_reader(reader, folder, "skip", onnx_model)
        assert "\n" not in str(err.value)
        return

    with pytest.raises(ImgrecError) as err:
        run_reader(reader, folder, "error", onnx_model)
    text = str(err.value)
    assert "\n" not in text and f"{name}: " in text and message.format(key=key) in text, text
    if predicts:
        assert (out / "results.txt").read_text() == "an earlier result\n" and os.listdir(out) == ["results.txt"]
    else:
        assert not [p for p in (folder / "cache").rglob("*") if p.is_file()]  # no cache entry, whole or half

    caplog.clear()
    result = run_reader(reader, folder, "skip", onnx_model)
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING" and "skipped" in r.getMessage()]
    assert len(warnings) == 1 and f"skipped 1 bad image(s) ({key}on_bad_image=skip)" in warnings[0], warnings
    if reader in ("course", "table"):
        assert result.names == ["im1.jpg", "im3.jpg", "im4.jpg"] and len(result.skipped) == 1
        assert f"{name}: " in result.skipped[0] and message.format(key=key) in result.skipped[0]
        np.testing.assert_allclose(result.images[:, 0, 0].astype(int), list(GOOD.values()), atol=3)
        assert sorted(p.suffix for p in (folder / "cache" / "images").iterdir()) == [".json", ".npy"]  # one, whole
        return
    # predict: one row per listed file; the skipped one all 0 and named; the others' rows where they were
    order = ["im1.jpg", "im3.jpg", "im4.jpg", name] if case == "non_utf8_name" else \
        ["im1.jpg", name, "im3.jpg", "im4.jpg"]
    rows = read_rows(out / "predictions.csv")[1:]
    assert [row[0] for row in rows] == order and result.shape == (4, 14)
    skipped_row = order.index(name)
    assert not result[skipped_row].any() and rows[skipped_row][1:-1] == [""] * 15
    assert message.format(key=key) in rows[skipped_row][-1]
    for row in rows:
        if row[0] != name:
            np.testing.assert_allclose(np.array(row[1:-2], float), baseline[row[0]], atol=2e-6)
    assert np.loadtxt(out / "results.txt", dtype=int).tolist() == result.tolist()
    assert (out / "skipped.txt").read_text().startswith(f"{skipped_row + 1}\t")
    assert f"{name} (row {skipped_row + 1})" in warnings[0]


@pytest.mark.parametrize("case", list(ODD))
def test_odd_file_decodes_the_same_pixels_everywhere(case, tmp_path, onnx_model):
    make, expected = ODD[case]
    folder, _ = make_course(tmp_path, make)
    course = run_reader("course", folder, "error", onnx_model)
    pixels = course.images[1]
    assert course.names[1].startswith("im2.") and expected(pixels), pixels[::40, ::40].tolist()
    np.testing.assert_array_equal(run_reader("table", folder, "error", onnx_model).images, course.images)
    for reader, predictor in (("predict", load_predictor(CKPT)), ("onnx_predict", load_onnx(onnx_model))):
        run_reader(reader, folder, "error", onnx_model)
        rows = read_rows(folder / f"out_{reader}" / "predictions.csv")[1:]
        probs = np.array([row[1:-2] for row in rows], float)
        np.testing.assert_allclose(probs, predictor.probabilities(np.asarray(course.images)), atol=2e-6)


@pytest.mark.parametrize("case", ["bom", "crlf", "duplicate", "label_names_with_comma_quotes_html",
                                  "empty_label_column", "empty_labels_cells", "missing_file"])
def test_label_table_oddities(case, tmp_path):
    images = tmp_path / "images"
    images.mkdir()
    for n, rgb in GOOD.items():
        jpeg(images / f"im{n}.jpg", rgb, (16, 16))
    onehot = 'file,"a,b","say ""hi""",<script>x</script>\nim1.jpg,1,0,1\nim3.jpg,0,1,0\nim4.jpg,0,0,0\n'
    table = tmp_path / "t.csv"
    read = lambda mode="error": read_table(table, images, Decoding(16, on_bad_image=mode))  # noqa: E731
    if case in ("bom", "crlf"):
        table.write_bytes(("\ufeff" + onehot if case == "bom" else onehot.replace("\n", "\r\n")).encode())
        data = read()
        assert data.label_names == ["a,b", 'say "hi"', "<script>x</script>"] and data.names[0] == "im1.jpg"
        assert data.targets.tolist() == [[1, 0, 1], [0, 1, 0], [0, 0, 0]]
    elif case == "duplicate":
        table.write_text(onehot + "im3.jpg,1,1,1\n")
        with pytest.raises(ImgrecError, match=r"t.csv:5: im3.jpg is listed again \(first on line 3\)"):
            read()
    elif case == "label_names_with_comma_quotes_html":  # text everywhere, also in predictions.csv's header
        table.write_text(onehot)
        data = read()
        out = tmp_path / "out"
        write_predictions(out, Inputs([images / n for n in data.names], data.targets),
                          Predictions(np.full(data.targets.shape, 0.7, np.float32), {}), np.full(3, 0.5),
                          data.label_names, Decoding(16, prefix=""))
        header = read_rows(out / "predictions.csv")[0]
        assert header == ["file", "p_a,b", 'p_say "hi"', "p_<script>x</script>", "labels", "skipped"]
    elif case == "empty_label_column":
        table.write_text(onehot.replace('"a,b"', ""))
        with pytest.raises(ImgrecError, match=r"t.csv:1: column 2 has no label name"):
            read()
    elif case == "empty_labels_cells":  # the labels layout: an empty cell is an image with no label
        table.write_text("file,labels\nim1.jpg,cat dog\nim3.jpg,\nim4.jpg,dog\n")
        data = read()
        assert data.label_names == ["cat", "dog"] and data.targets.tolist() == [[1, 1], [0, 0], [0, 1]]
        table.write_text("file,labels\nim1.jpg,\nim3.jpg,\n")
        with pytest.raises(ImgrecError, match="t.csv: no labels found"):
            read()
    else:
        table.write_text(onehot + "im9.jpg,1,1,1\n")
        with pytest.raises(ImgrecError, match=r"images/im9.jpg: file not found"):
            read()
        data = read("skip")
        assert data.names == ["im1.jpg", "im3.jpg", "im4.jpg"] and len(data.skipped) == 1


def test_commands_say_it_in_one_line_with_their_own_keys(tmp_path, onnx_model):
    """The whole commands, in-process: training, predict and the ONNX command stop on the bomb in one line
    naming the file, its declared size and the command's own setting; predict's skip warning names
    ``on_bad_image``; on a course folder the skipped image is scored as no label."""
    folder, _ = make_course(tmp_path / "course", BAD["decompression_bomb"][0])
    r = run_in_process(["imgrec.run", "data=idl", f"data.root={folder}", f"paths.log_dir={tmp_path / 'logs'}",
                        "logger=none", "report.enabled=false"], cwd=tmp_path)
    assert_one_line_error(r, "im2.png: declares 30000x30000", "data.max_pixels=500,000,000")
    assert not list((tmp_path / "logs").rglob("*.ckpt")) and not list((tmp_path / "logs").rglob("metrics.json"))
    predict = ["imgrec.predict", f"ckpt={CKPT}", f"input={folder}", f"out={tmp_path / 'p'}", "engine=eager"]
    assert_one_line_error(run_in_process(predict, cwd=tmp_path), "im2.png: declares 30000x30000",
                          " max_pixels=500,000,000")
    r = run_in_process([*predict, "on_bad_image=skip"], cwd=tmp_path)
    log = r.stdout + r.stderr
    assert r.returncode == 0 and "(on_bad_image=skip): im2.png (row 2)" in log and "data.on_bad_image" not in log
    scores = (tmp_path / "p" / "scores.json").read_text()
    assert '"images": 4' in scores and '"skipped": 1' in scores
    with pytest.raises(SystemExit, match=r"^error: .*im2.png: declares 30000x30000.* max_pixels=500,000,000") as err:
        onnx_main([f"model={onnx_model}", f"input={folder}", f"out={tmp_path / 'o'}"])
    assert "\n" not in str(err.value.code)
