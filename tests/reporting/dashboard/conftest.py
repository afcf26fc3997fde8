"""One tiny sweep (two learning rates, 2 epochs) shared by the dashboard tests, the browser they run in,
and one run made odd from the sweep's outputs without training."""

import dataclasses
import json
import shutil
from pathlib import Path

import pandas as pd
import pytest
from filelock import FileLock

from imgrec.data.synthetic import make_synthetic
from imgrec.reporting.label_issues import candidate_missing_labels
from imgrec.reporting.run_report import write_run_report
from imgrec.reporting.sweep_table import COLUMNS
from imgrec.training.evaluate import Evaluation
from tests.conftest import TINY, run_in_process

# 200 images with a large test split: 50 test images, enough for 12-image galleries and several candidates.
SWEEP = [o for o in TINY if not o.startswith(("trainer.max_epochs", "data.n_images"))] + [
    "trainer.max_epochs=2", "data.n_images=200", "split.fractions=[0.5,0.25,0.25]", "report.enabled=true",
    "report.gallery=12"]
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]

# Names that would run as script if a page or report wrote them as HTML (each sets its own number).
HTML_LABEL = "<img src=x onerror=window.pwned=1>"
HTML_FILE = "<!--<script>window.pwned=2</script>.jpg"  # "<!--<script" also ends a JSON script element early
HTML_FOLDER = "<svg onload=alert(3)>"  # a dialog, which the page records
LONG_LABEL = "person_wearing_a_hat_and_sunglasses_outdoors_in_the_rain"


@pytest.fixture(scope="session")
def sweep(tmp_path_factory: pytest.TempPathFactory, worker_id: str) -> tuple[Path, str]:
    """The sweep folder and the sweep's stdout. Run once for all pytest-xdist workers (the dashboard's
    tests are in several modules, which may go to several workers): the first to ask runs it, the others
    wait for it under a file lock and read it."""
    base = tmp_path_factory.getbasetemp()
    root = (base if worker_id == "master" else base.parent) / "dashboard_sweep"
    with FileLock(f"{root}.lock"):
        if not (root / "stdout.txt").is_file():
            root.mkdir()
            r = run_in_process(["imgrec.run", "-m", "model.optimizer.lr=0.001,0.01", f"paths.log_dir={root}",
                                f"paths.cache_dir={root / 'cache'}", *SWEEP], cwd=root)
            assert r.returncode == 0, r.stderr[-3000:]
            (root / "stdout.txt").write_text(r.stdout)
    return next((root / "train" / "multiruns").iterdir()), (root / "stdout.txt").read_text()


@pytest.fixture(scope="session")  # session, like the sweep, and asked for first: no browser, no sweep
def browser():
    """Debian's chromium driven through Playwright (skipped, with the reason, where either is missing)."""
    sync_api = pytest.importorskip("playwright.sync_api", reason="the playwright package is not installed")
    executable = shutil.which("chromium") or shutil.which("chromium-browser")
    if executable is None:
        pytest.skip("no chromium on PATH (Debian: apt-get install chromium); the browser tests need it")
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=executable, args=ARGS)
        yield browser
        browser.close()


@pytest.fixture(scope="module")
def odd_run(sweep, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The sweep's run 1 as a run folder on its own, renamed: one label carries HTML, one is long, the top
    missing-label candidate's file name and the folder's name carry HTML. Its outputs and its report are
    rewritten from the sweep's (no training)."""
    folder, _ = sweep
    ev = Evaluation.load(folder / "1" / "predictions.npz")
    labels = list(ev.label_names)
    labels[3], labels[4] = HTML_LABEL, LONG_LABEL  # disc and face, which the synthetic images often carry
    test = ev.test
    top = candidate_missing_labels(test.probs, test.targets, ev.thresholds.applied(), labels,
                                   [ev.names[i] for i in test.indices])["row"].iloc[0]
    names = list(ev.names)
    names[test.indices[top]] = HTML_FILE
    ev = dataclasses.replace(ev, label_names=labels, names=names)
    run = tmp_path_factory.mktemp("odd") / HTML_FOLDER
    run.mkdir()
    shutil.copy(folder / "1" / "metrics.json", run)
    ev.save(run / "predictions.npz")
    write_run_report(run, ev, make_synthetic(200, 0).images, {"run": str(run)}, min_support=5)
    return run


def open_dashboard(browser, html: Path):
    """A browser page, 1,400 px wide, on a dashboard file, once its curves are drawn. It records console
    errors, uncaught exceptions, dialogs and requests that leave the page (``page.errors``,
    ``page.dialogs``, ``page.requests``)."""
    page = browser.new_page(accept_downloads=True, viewport={"width": 1400, "height": 900})
    page.errors, page.dialogs, page.requests = [], [], []
    page.on("console", lambda m: page.errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: page.errors.append(str(e)))
    page.on("dialog", lambda d: (page.dialogs.append(d.message), d.dismiss()))
    page.on("request", lambda r: page.requests.append(r.url) if not r.url.startswith(("file:", "data:", "blob:"))
            else None)
    page.goto(html.resolve().as_uri())
    page.wait_for_function("document.querySelectorAll('#pr path.js-line').length > 0")
    return page


def cv_copy(folder: Path, dest: Path, aggregates: dict[str, list[str]]) -> Path:
    """The sweep as a CV: ``aggregates`` maps a subfolder ("" for the sweep itself) to its fold runs."""
    cv = shutil.copytree(folder, dest, ignore=shutil.ignore_patterns("checkpoints", "*.safetensors"))
    for k, (sub, runs) in enumerate(aggregates.items()):
        stats = {metric: {"mean": 0.6 + k / 10, "std": 0.02} for metric in COLUMNS}  # as wide as a real one
        (cv / sub).mkdir(exist_ok=True)
        (cv / sub / "cv.json").write_text(json.dumps({"runs": [str(cv / r) for r in runs], "metrics": stats}))
        pd.DataFrame({"image": [f"im{k + 1}.jpg"], "label": "disc", "probability": 0.9, "given_labels": "-"}).to_csv(
            cv / sub / "missing_label_candidates.csv", index=False)
    return cv


def past_the_window(page) -> list[float]:
    """How far the page and the runs table reach past the window's right edge, in px (<= 0: inside)."""
    return page.evaluate("""() => [document.documentElement.scrollWidth - innerWidth,
                                   document.getElementById('runs').getBoundingClientRect().right - innerWidth]""")


def plot_boxes(page, *selectors: str) -> dict[str, list[dict | None]]:
    """Each plot's id with the bounding box of the first element under it matching each selector."""
    return dict(page.eval_on_selector_all(".js-plotly-plot", """(plots, selectors) => plots.map(p => [p.id,
        selectors.map(s => { const e = p.querySelector(s); return e && e.getBoundingClientRect().toJSON(); })])""",
                                          list(selectors)))
