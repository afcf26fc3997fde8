from pathlib import Path

import numpy as np
from pytorch_lightning.loggers import WandbLogger

from imgrec.evaluation.thresholds import fit_thresholds
from imgrec.reporting.run_report import log_to_wandb, write_run_report
from imgrec.training.evaluate import Evaluation, SplitOutputs


def fake_evaluation(n=120, c=4, seed=0):
    rng = np.random.default_rng(seed)
    splits = []
    for k in range(2):
        y = (rng.random((n, c)) < 0.3).astype(np.uint8)
        p = np.clip(y * 0.5 + rng.random((n, c)) * 0.6, 0, 1).astype(np.float32)
        splits.append(SplitOutputs(p, y, np.arange(k * n, (k + 1) * n)))
    th = fit_thresholds(splits[0].probs, splits[0].targets, 5)
    return Evaluation([f"l{j}" for j in range(c)], [f"im{i + 1}.jpg" for i in range(2 * n)], *splits, th, {})


def test_report_without_images_and_npz_round_trip(tmp_path):
    ev = fake_evaluation()
    rep = write_run_report(tmp_path, ev, None, {"run": "fake"}, min_support=5)
    text = rep.path.read_text()
    assert "### Candidate missing labels" in text and "worst_images" not in text  # no images: no galleries
    assert set(rep.figures) == {"f1_per_label", "pr_curves", "wrong_labels_per_image", "cooccurrence"}
    back = Evaluation.load(ev.save(tmp_path / "predictions.npz"))
    assert back.label_names == ev.label_names and back.names == ev.names
    assert np.array_equal(back.test.probs, ev.test.probs) and np.array_equal(back.val.indices, ev.val.indices)
    assert np.array_equal(back.thresholds.per_class, ev.thresholds.per_class)


def test_report_goes_to_wandb_as_tables_and_images(tmp_path, monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "offline")
    ev = fake_evaluation()
    images = np.random.default_rng(0).integers(0, 255, (240, 32, 32, 3), dtype=np.uint8)
    rep = write_run_report(tmp_path, ev, images, {"run": "fake"}, min_support=5)
    logger = WandbLogger(project="imgrec-test", save_dir=str(tmp_path), offline=True)
    try:
        log_to_wandb(rep, [logger])
        media = logger.experiment.dir + "/media"
    finally:
        import wandb

        wandb.finish()
    logged = {p.name.split("_")[0] for p in Path(media).rglob("*") if p.is_file()}
    assert {"summary", "mislabels", "worst", "pr"} <= logged, logged
