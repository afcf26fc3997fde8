"""Bad input stops before training with one line naming the file or value, and a non-zero exit.

The commands run in-process (``run_in_process``): the same entry point and error handling a shell
command goes through, without a new interpreter per case.
"""

import shutil

import pytest
import torch

from tests.conftest import assert_one_line_error, run_in_process


@pytest.fixture
def run_on(tmp_path):
    def run(folder, *extra):
        return run_in_process(["imgrec.run", "data=idl", f"data.root={folder}", f"paths.log_dir={tmp_path / 'logs'}",
                              "logger=none", "trainer.max_epochs=1", "report.enabled=false", *extra], cwd=tmp_path)

    return run


@pytest.fixture
def course(course_dir, tmp_path):
    dest = tmp_path / "course"
    shutil.copytree(course_dir, dest)
    return dest


def test_missing_annotations_folder(run_on, course):
    shutil.rmtree(course / "annotations")
    assert_one_line_error(run_on(course), "annotations", "not found")


def test_annotation_line_not_a_number(run_on, course):
    (course / "annotations" / "disc.txt").write_text("1\nim2\n")
    assert_one_line_error(run_on(course), "disc.txt:2", "'im2' is not an image number")


def test_annotation_names_missing_image(run_on, course):
    (course / "annotations" / "disc.txt").write_text("1\n4242\n")
    assert_one_line_error(run_on(course), "disc.txt", "4242", "does not exist")


def test_truncated_image_and_skip(run_on, course):
    path = course / "images" / "im3.jpg"
    path.write_bytes(path.read_bytes()[:200])
    assert_one_line_error(run_on(course), "im3.jpg", "truncated")
    r = run_on(course, "data.on_bad_image=skip", "model.net.backbones.0.input_size=64")
    assert r.returncode == 0, r.stderr[-2000:]
    assert "skipped 1 bad image" in r.stderr + r.stdout


def test_empty_dataset(run_on, tmp_path):
    empty = tmp_path / "empty"
    (empty / "images").mkdir(parents=True)
    (empty / "annotations").mkdir()
    (empty / "annotations" / "a.txt").write_text("")
    assert_one_line_error(run_on(empty), "no images")


def test_unknown_backbone(run_on, course):
    assert_one_line_error(run_on(course, "model.net.backbones.0.name=resnet9000"), "resnet9000")


def test_mistyped_key_lists_the_valid_ones(tmp_path):
    r = run_in_process(["imgrec.run", f"paths.log_dir={tmp_path}", "trainer.max_epoch=3"], cwd=tmp_path)
    assert_one_line_error(r, "unknown config key 'trainer.max_epoch'", "did you mean 'trainer.max_epochs'?",
                          "min_epochs")


def test_unknown_group_option_lists_the_choices(tmp_path):
    r = run_in_process(["imgrec.run", f"paths.log_dir={tmp_path}", "model=transfr"], cwd=tmp_path)
    assert r.returncode != 0 and "Could not find 'model/transfr'" in r.stderr
    assert "Available options" in r.stderr and "transfer" in r.stderr


def test_unwritable_output_folder(tmp_path):
    blocker = tmp_path / "a_file"
    blocker.write_text("")
    r = run_in_process(["imgrec.run", f"paths.log_dir={blocker / 'logs'}"], cwd=tmp_path)
    assert_one_line_error(r, f"paths.log_dir={blocker / 'logs'}", "cannot write")


@pytest.mark.parametrize(("override", "fragment"), [
    ("thresholds.min_support=0", "thresholds.min_support=0: must be at least 1"),
    ("thresholds.rules=[median]", "thresholds.rules=['median']: expected some of 0.5, global, per_label"),
])
def test_bad_threshold_setting_stops_before_training(run_on, course, override, fragment):
    assert_one_line_error(run_on(course, override), fragment)


def test_fewer_images_than_the_split_needs(run_on, tmp_path):
    from imgrec.data.synthetic import make_synthetic, write_course_format

    root = write_course_format(make_synthetic(5), tmp_path / "tiny")
    assert_one_line_error(run_on(root), "dataset has 5 images", "too few for split")


def test_label_without_train_positive_warns_and_metrics_stay_defined(run_on, course, tmp_path):
    (course / "annotations" / "zz_unused.txt").write_text("")
    r = run_on(course, "model.net.backbones.0.input_size=64", "data.num_workers=0")
    assert r.returncode == 0, r.stderr[-2000:]
    log = r.stdout + r.stderr
    assert "no positive example in the train split for label(s): " in log and "zz_unused" in log
    import json

    metrics = json.loads(next((tmp_path / "logs").rglob("metrics.json")).read_text())["metrics"]
    assert metrics["test/f1/zz_unused"] == metrics["test/f1/zz_unused"]  # not NaN


@pytest.mark.skipif(torch.cuda.is_available(), reason="the refusal of GPU settings on a machine without CUDA")
@pytest.mark.parametrize("command", [["imgrec.run", "trainer=gpu"], ["imgrec.run", "trainer=ddp"],
                                     ["imgrec.predict", "ckpt=model.ckpt", "input=images", "device=cuda"]])
def test_gpu_settings_without_cuda(tmp_path, command):
    r = run_in_process([*command, f"paths.log_dir={tmp_path}"] if command[0] == "imgrec.run" else command, cwd=tmp_path)
    setting = "device=cuda" if command[0] == "imgrec.predict" else "trainer.accelerator=gpu"
    assert_one_line_error(r, setting, "no CUDA GPU is visible")
