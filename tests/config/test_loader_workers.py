"""trainer=gpu and trainer=ddp set the loaders' workers from the CPU count, per process
(conf/trainer/loader/workers.yaml, resolver imgrec.loader_workers); the CPU trainers keep the data's 0."""

import os

import pytest
import torch
from hydra.utils import instantiate
from omegaconf import OmegaConf

from imgrec.config.compose import compose_config
from imgrec.config.resolvers import loader_workers
from imgrec.data.datamodule import WorkerSeeds


@pytest.fixture
def cpus(monkeypatch):
    """This process may use ``n`` CPUs, and 4 GPUs are visible."""
    monkeypatch.delenv("SLURM_CPUS_PER_TASK", raising=False)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 4)

    def allow(n: int) -> None:
        monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(n)))

    return allow


def test_workers_share_the_cpus_among_the_processes_of_the_node(cpus, monkeypatch):
    cpus(16)
    assert loader_workers(1) == 15  # one CPU left to the process that trains
    assert loader_workers(2) == loader_workers("0,1") == loader_workers(OmegaConf.create([0, 1])) == 7
    assert loader_workers(-1) == loader_workers("auto") == 3  # every visible GPU: 4 processes
    cpus(2)
    assert loader_workers(4) == 1  # at least one
    monkeypatch.setenv("SLURM_CPUS_PER_TASK", "8")  # a SLURM task is one process with CPUs of its own
    assert loader_workers(4) == 7


@pytest.mark.parametrize("trainer, workers", [("cpu", 0), ("ddp_cpu", 0), ("gpu", 7), ("ddp", 1)])
def test_gpu_trainers_set_the_data_configs_workers(tmp_path, cpus, trainer, workers):
    cpus(8)  # ddp: all 4 visible GPUs, 8 // 4 - 1 = 1 worker each
    cfg = compose_config(tmp_path / "run", [f"trainer={trainer}", "data=idl", f"data.root={tmp_path}"])
    assert cfg.data.num_workers == workers and cfg.data.pin_memory
    assert compose_config(tmp_path / "run", [f"trainer={trainer}", "data.num_workers=3"]).data.num_workers == 3


def test_the_loaders_of_a_gpu_trainer(tmp_path, cpus):
    cpus(4)
    cfg = compose_config(tmp_path / "run", ["trainer=gpu", "data.n_images=40", "augment=seed"])
    datamodule = instantiate(cfg.data)
    datamodule.setup("fit")
    loader = datamodule.train_dataloader()
    assert loader.num_workers == 3 and loader.persistent_workers
    assert isinstance(loader.worker_init_fn, WorkerSeeds) and loader.dataset.augment is datamodule.augment
    assert loader.pin_memory == torch.cuda.is_available()  # pinned where there is a GPU to copy to
