"""The notebooks run top to bottom (with nbmake's runner) and are kept in git without outputs."""

from pathlib import Path

import nbformat
import pytest
from nbmake.nb_run import NotebookRun

from tests.conftest import ROOT, SHARED_DATA

NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))


def execute(name: str) -> str:
    """Run ``notebooks/<name>.ipynb``; return its text outputs."""
    result = NotebookRun(ROOT / "notebooks" / f"{name}.ipynb", default_timeout=600).execute()
    assert result.error is None, result.error.trace[-3000:]
    texts = []
    for cell in result.nb.cells:
        for out in cell.get("outputs", []):
            texts.append(out.get("text", "") + out.get("data", {}).get("text/plain", ""))
    return "\n".join(texts)


def test_explore_data_reproduces_the_study_table(monkeypatch):
    folder = SHARED_DATA / "idl2020-annotations-full"
    if not folder.is_dir():
        pytest.skip(f"{folder} is absent")
    monkeypatch.setenv("IMGREC_NB_DATA", str(folder))
    monkeypatch.setenv("IMGREC_NB_IMAGES", "20000")
    text = execute("01_explore_data")
    assert "20000 images, 9824 with no label" in text
    rows = [line.split() for line in text.splitlines() if line.strip().split()[:1] in (["people"], ["baby"])]
    assert ["people", "6403", "32.02%"] in rows and ["baby", "95", "0.47%"] in rows


def test_augmentations_notebook():
    assert "after (" in execute("02_augmentations")


@pytest.mark.slow
@pytest.mark.parametrize("name", ["01_explore_data", "03_error_analysis"])
def test_notebook_on_the_embedded_data(name, monkeypatch):
    monkeypatch.delenv("IMGREC_NB_DATA", raising=False)
    monkeypatch.delenv("IMGREC_NB_RUN", raising=False)
    execute(name)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_notebook_outputs_are_stripped(path: Path):
    nb = nbformat.read(path, as_version=4)
    for cell in nb.cells:
        if cell.cell_type == "code":
            assert cell.outputs == [] and cell.execution_count is None, (
                f"{path.name}: commit notebooks without outputs (make strip-notebooks)")


def test_there_are_three_notebooks():
    assert [p.name for p in NOTEBOOKS] == ["01_explore_data.ipynb", "02_augmentations.ipynb",
                                           "03_error_analysis.ipynb"]
