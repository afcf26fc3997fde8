"""Feature extraction shared by the ranks of a DDP run (imgrec.features.cache, extraction.extract_share)."""

import re

import pytest
import pytorch_lightning as pl
import torch
from hydra.utils import instantiate
from safetensors.torch import load_file

from imgrec.features.cache import FeatureDataModule
from tests.conftest import TINY, compose_cfg, run_cli

# batch 8: chunks of 128 images, so 200 images make 2 plain chunks and 4 augmented ones (2 views)
SETTINGS = [*(o for o in TINY if not o.startswith(("trainer.max_epochs", "data.batch_size", "data.n_images"))),
            "data.n_images=200", "data.batch_size=8", "trainer.max_epochs=1", "augment=seed", "cache.views=2"]


@pytest.mark.slow  # 30-70 s: two processes that import Lightning, one after the other
def test_ddp_ranks_extract_their_shares_and_match_one_process(tmp_path):
    """trainer=ddp_cpu (2 processes): each rank extracts its share of the chunks and logs its rate, the
    cache holds each file once, and the features equal those of one process, bitwise (eager) when that
    process runs the ranks' one torch thread (Lightning gives each rank cores / ranks threads; with 2
    threads the features differ by rounding, up to 2e-5 here, on features up to 6)."""
    r = run_cli(["imgrec.run", "trainer=ddp_cpu", f"paths.log_dir={tmp_path}", f"paths.cache_dir={tmp_path / 'ddp'}",
                 *SETTINGS], cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-3000:]
    shares = re.findall(r"rank (\d)/2 extracted (\d+) of (\d+) images in [\d.]+ s \([\d.]+ images/s\)", r.stdout)
    assert sorted(rank for rank, _, _ in shares) == ["0", "0", "1", "1"]  # plain and augmented, each rank
    for kind_total in {total for _, _, total in shares}:
        computed = [int(n) for _, n, total in shares if total == kind_total]
        assert sum(computed) == int(kind_total) and min(computed) > 0

    cfg = compose_cfg(tmp_path / "single", SETTINGS)
    pl.seed_everything(cfg.seed)
    images = instantiate(cfg.data)
    images.setup("fit")
    net = instantiate(cfg.model.net)(num_classes=14)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        FeatureDataModule(images, net.backbones, cfg.cache.dir, cfg.cache.views, cfg.cache.engine).setup()
    finally:
        torch.set_num_threads(threads)

    def cached(folder):
        return {p.name: load_file(p)["features"] for p in sorted((folder / "features").glob("*.safetensors"))}

    ddp, single = cached(tmp_path / "ddp"), cached(tmp_path / "single" / "cache")
    assert len(single) == 2 and ddp.keys() == single.keys()  # plain and augmented, under the same keys
    assert not list((tmp_path / "ddp" / "features").glob("*.parts"))  # the chunks are gone once gathered
    for name in single:
        assert torch.equal(ddp[name], single[name]), name
