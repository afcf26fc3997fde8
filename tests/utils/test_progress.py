"""imgrec.utils.progress: the one switch between redrawn bars (a terminal) and log lines (a file)."""

import io
import logging
import os
import pty
import sys

import pytest
from tqdm import tqdm

from imgrec.utils import progress as P


@pytest.fixture
def auto(monkeypatch):
    monkeypatch.delenv(P.PROGRESS_ENV, raising=False)


def test_a_terminal_gets_bars_and_a_file_lines(auto, monkeypatch, tmp_path):
    leader, follower = pty.openpty()
    with open(follower, "w") as terminal, open(tmp_path / "run.log", "w") as log_file:
        monkeypatch.setattr(sys, "stdout", terminal)
        assert P.live_bars() and isinstance(P.progress(10, "work"), tqdm)
        assert isinstance(P.progress(10, "work", bar=False), P.Heartbeat)  # e.g. a rank > 0
        monkeypatch.setattr(sys, "stdout", log_file)
        assert not P.live_bars() and isinstance(P.progress(10, "work"), P.Heartbeat)
    os.close(leader)


@pytest.mark.parametrize(("mode", "bars"), [("bars", True), ("lines", False), ("LINES", False)])
def test_the_mode_can_be_forced(monkeypatch, mode, bars):
    monkeypatch.setenv(P.PROGRESS_ENV, mode)
    monkeypatch.setattr(sys, "stdout", io.StringIO())  # not a terminal
    assert P.live_bars() is bars


def test_lines_mode_writes_no_redraws_and_long_work_says_where_it_stands(auto, monkeypatch, caplog):
    out = io.StringIO()
    monkeypatch.setattr(sys, "stdout", out)
    with caplog.at_level(logging.INFO), P.progress(300, "features lite0") as bar:
        for _ in range(3):
            bar.update(100)
    assert out.getvalue() == "" and not caplog.records  # short work: its own log line says it ended
    beat = P.Heartbeat(300, "features lite0", every=0.0)
    with caplog.at_level(logging.INFO):
        beat.update(100)
        beat.update(200)  # done: nothing more
    assert [r.getMessage().split(",")[0] for r in caplog.records] == ["features lite0: 100/300 img (33%)"]
