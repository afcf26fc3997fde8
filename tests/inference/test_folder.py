"""``predict_files`` reads a folder in chunks: it never decodes more than a chunk at a time, gives what one
pass over all images gives, keeps a skipped file's row, and counts the images on a progress bar."""

import numpy as np
from PIL import Image

from imgrec.data.images import Decoding, decode_images
from imgrec.inference import folder as F
from imgrec.utils.progress import Heartbeat


def mean_colour(images: np.ndarray) -> np.ndarray:  # any function of the pixels stands in for a model
    return images.reshape(len(images), -1, 3).mean(1).astype(np.float32) / 255


def test_chunks_bound_what_is_decoded_and_give_one_pass_results(tmp_path, monkeypatch):
    rng = np.random.default_rng(0)
    paths = [tmp_path / f"im{n}.png" for n in range(1, 22)]
    for path in paths:
        Image.fromarray(rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)).save(path)
    paths[4].write_bytes(b"")  # im5: skipped, in the first chunk
    batches = []

    def probabilities(images: np.ndarray) -> np.ndarray:
        batches.append(len(images))
        return mean_colour(images)

    decoded = []
    monkeypatch.setattr(F, "decode_images", lambda block, *args, **kwargs: decoded.append(len(block)) or
                        decode_images(block, *args, **kwargs))
    bars = []
    monkeypatch.setattr(F, "progress", lambda total, desc: bars.append(Heartbeat(total, desc)) or bars[-1])
    decoding = Decoding(8, on_bad_image="skip")
    result = F.predict_files(paths, probabilities, 3, decoding, batch_size=2)
    assert decoded == [16, 5] and max(batches) == 2  # chunks of CHUNK_BATCHES (8) batches of 2
    images, kept, _ = decode_images(paths, decoding)
    np.testing.assert_array_equal(result.probs[kept], mean_colour(images))
    assert list(result.skipped) == [4] and "im5.png: empty file" in result.skipped[4]
    assert not result.probs[4].any() and not result.predicted(np.zeros(3))[4].any()
    assert [(bar.desc, bar.n, bar.total) for bar in bars] == [("predict", 21, 21)]  # skipped files count too
