"""Resumable, self-healing feature extraction (imgrec.features.extraction)."""

import logging

import numpy as np
import pytest
import torch

from imgrec.data.augment import study_pipeline
from imgrec.data.synthetic import make_synthetic
from imgrec.features import extraction as F

BATCH, CHUNK_BATCHES = 8, 2  # 16 images a chunk


@pytest.fixture(scope="module")
def images() -> np.ndarray:
    return make_synthetic(70, seed=1, image_size=32).images


def encode(x: torch.Tensor) -> torch.Tensor:
    """A cheap, position-sensitive stand-in for a backbone: per-channel means of four quadrants."""
    assert x.dtype == torch.uint8 and x.shape[1] == 3
    q = x.float().unfold(2, 16, 16).unfold(3, 16, 16).mean((-1, -2))
    return q.flatten(1)


def run(images, parts, augment=None, views=1):
    return F.extract(encode, images, np.arange(len(images)), BATCH, parts, 12, views, augment, seed=7,
                     chunk_batches=CHUNK_BATCHES)


def test_batches_are_the_images_in_order(images):
    idx = np.array([5, 1, 9, 3, 2])
    got = torch.cat(list(F.batches(images, idx, 2)))
    assert torch.equal(got, torch.from_numpy(images[idx]).permute(0, 3, 1, 2))


@pytest.mark.parametrize("augmented", [False, True], ids=["plain", "augmented"])
def test_killed_extraction_resumes_to_identical_features(images, tmp_path, monkeypatch, augmented):
    def augment():
        return study_pipeline(seed=0) if augmented else None

    views = 2 if augmented else 1
    whole = run(images, tmp_path / "whole", augment(), views)
    assert whole.shape == (70, views, 12)
    if augmented:  # the views differ from each other and from the plain images
        assert not torch.equal(whole[:, 0], whole[:, 1])

    write, written = F.write_features, []

    def killed_after_three(path, tensor):
        if len(written) == 3:
            raise KeyboardInterrupt("killed")
        write(path, tensor)
        written.append(path)

    monkeypatch.setattr(F, "write_features", killed_after_three)
    with pytest.raises(KeyboardInterrupt):
        run(images, tmp_path / "killed", augment(), views)
    monkeypatch.setattr(F, "write_features", write)
    assert len(list((tmp_path / "killed").glob("*.safetensors"))) == 3

    batches, calls = F.batches, []
    monkeypatch.setattr(F, "batches", lambda *args: (calls.append(args), batches(*args))[1])
    resumed = run(images, tmp_path / "killed", augment(), views)
    assert torch.equal(resumed, whole)
    chunks = -(-70 // (BATCH * CHUNK_BATCHES)) * views
    assert len(calls) == chunks - 3  # only the missing chunks were computed


def test_shares_cover_every_chunk_once_and_equal_one_process(images, tmp_path, monkeypatch):
    """Two shards (each with its own augmentation pipeline, as two ranks have) compute every chunk once;
    an extraction afterwards only reads them and equals one process's, augmented views included."""
    whole = run(images, tmp_path / "one", study_pipeline(seed=0), views=2)
    shares = [F.extract_share(encode, images, np.arange(len(images)), BATCH, tmp_path / "two", 12, F.Shard(k, 2),
                              views=2, augment=study_pipeline(seed=0), seed=7, chunk_batches=CHUNK_BATCHES)
              for k in range(2)]
    assert sum(n for n, _ in shares) == 2 * len(images) and min(n for n, _ in shares) > 0
    monkeypatch.setattr(F, "write_features", lambda *args: pytest.fail("a chunk was computed again"))
    assert torch.equal(run(images, tmp_path / "two", study_pipeline(seed=0), views=2), whole)


def test_truncated_chunk_is_rebuilt(images, tmp_path, caplog):
    whole = run(images, tmp_path / "a")
    chunk = sorted((tmp_path / "a").glob("*.safetensors"))[1]
    chunk.write_bytes(chunk.read_bytes()[:50])
    with caplog.at_level(logging.WARNING):
        again = run(images, tmp_path / "a")
    assert torch.equal(again, whole)
    assert [r.getMessage() for r in caplog.records if "damaged" in r.getMessage()][0].startswith(f"features: {chunk}")


@pytest.mark.parametrize("reader", ["read_features", "open_features"])
@pytest.mark.parametrize("damage", ["truncate", "garbage", "wrong_shape"])
def test_damaged_feature_file_is_deleted_with_one_warning(tmp_path, caplog, damage, reader):
    """Both readers: loading (the chunks) and memory-mapping (the finished cache files)."""
    read = getattr(F, reader)
    path = tmp_path / "f.safetensors"
    F.write_features(path, torch.ones(4, 1, 3))
    if damage == "truncate":
        path.write_bytes(path.read_bytes()[:-5])
    elif damage == "garbage":
        path.write_bytes(b"\x00" * 64)
    shape = (4, 1, 2) if damage == "wrong_shape" else (4, 1, 3)
    with caplog.at_level(logging.WARNING):
        assert read(path, shape) is None
    assert not path.exists()
    assert len([r for r in caplog.records if r.levelno == logging.WARNING]) == 1
    F.write_features(path, torch.ones(4, 1, 3))
    assert torch.equal(torch.as_tensor(np.asarray(read(path, (4, 1, 3)))), torch.ones(4, 1, 3))


def test_cache_files_are_memory_mapped_in_their_dtype(tmp_path):
    """fp16 activations stay fp16 and are read from the file's pages, not loaded."""
    path = tmp_path / "a.safetensors"
    values = torch.randn(5, 2, 7).half()
    F.write_features(path, values)
    mapped = F.open_features(path, (5, 2, 7))
    assert isinstance(mapped, np.memmap) and mapped.dtype == np.float16 and not mapped.flags.writeable
    assert torch.equal(torch.from_numpy(np.array(mapped)), values)
