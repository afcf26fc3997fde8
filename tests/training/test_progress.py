"""imgrec.training.progress.ConsoleProgressBar: Lightning's bars in a terminal, one line per epoch in a file."""

import logging

import pytest
import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader, TensorDataset

from imgrec.training.progress import ConsoleProgressBar
from imgrec.utils.progress import PROGRESS_ENV


class Tiny(pl.LightningModule):
    def __init__(self) -> None:
        super().__init__()
        self.layer = torch.nn.Linear(4, 1)

    def training_step(self, batch, batch_idx):
        loss = self.layer(batch[0]).pow(2).mean()
        self.log("train/loss", loss, on_epoch=True, prog_bar=True)
        return loss

    def validation_step(self, batch, batch_idx):
        self.log("val/f1_micro", 0.5, prog_bar=True)

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)


def fit(mode: str, monkeypatch) -> None:
    monkeypatch.setenv(PROGRESS_ENV, mode)
    loader = DataLoader(TensorDataset(torch.randn(32, 4)), batch_size=8)
    trainer = pl.Trainer(max_epochs=2, callbacks=[ConsoleProgressBar()], logger=False, enable_checkpointing=False,
                         enable_model_summary=False, accelerator="cpu")
    trainer.fit(Tiny(), loader, loader)


@pytest.mark.filterwarnings("ignore::UserWarning")  # Lightning's few-workers and logging-interval notes
def test_lines_mode_logs_one_line_per_epoch_and_draws_nothing(monkeypatch, capsys, caplog):
    with caplog.at_level(logging.INFO, logger="imgrec.training.progress"):
        fit("lines", monkeypatch)
    assert capsys.readouterr().out == ""
    lines = [r.getMessage() for r in caplog.records if r.name == "imgrec.training.progress"]
    assert [line.split(":")[0] for line in lines] == ["epoch 1/2", "epoch 2/2"]
    assert "train/loss" in lines[0] and "val/f1_micro 0.5" in lines[0] and lines[0].endswith(" s)")


@pytest.mark.filterwarnings("ignore::UserWarning")
def test_bars_mode_draws_lightnings_bars(monkeypatch, capsys, caplog):
    with caplog.at_level(logging.INFO, logger="imgrec.training.progress"):
        fit("bars", monkeypatch)
    assert "Epoch 1" in capsys.readouterr().out
    assert not [r for r in caplog.records if r.name == "imgrec.training.progress"]
