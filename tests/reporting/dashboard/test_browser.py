"""The dashboard in a real browser: Debian's chromium driven through Playwright (skipped, with the
reason, where either is missing)."""

import csv
import shutil

import numpy as np
import pytest
from hydra.utils import instantiate
from omegaconf import OmegaConf

from imgrec.reporting.dashboard.page import FILE

ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]


@pytest.fixture(scope="session")  # session, like the sweep, and asked for first: no browser, no sweep
def browser():
    sync_api = pytest.importorskip("playwright.sync_api", reason="the playwright package is not installed")
    executable = shutil.which("chromium") or shutil.which("chromium-browser")
    if executable is None:
        pytest.skip("no chromium on PATH (Debian: apt-get install chromium); the browser tests need it")
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=executable, args=ARGS)
        yield browser
        browser.close()


@pytest.fixture(scope="module")
def page(browser, sweep):
    folder, _ = sweep
    page = browser.new_page(accept_downloads=True, viewport={"width": 1300, "height": 900})
    page.errors, page.requests = [], []
    page.on("console", lambda m: page.errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: page.errors.append(str(e)))
    page.on("request", lambda r: page.requests.append(r.url) if not r.url.startswith(("file:", "data:", "blob:"))
            else None)
    page.goto((folder / FILE).resolve().as_uri())
    page.wait_for_function("document.querySelectorAll('#pr path.js-line').length > 0")
    yield page
    page.close()


def column(page, name):
    return page.eval_on_selector_all("#runs tbody tr", f"""(rows) => {{
        const k = [...document.querySelectorAll('#runs thead th')].findIndex(th => th.dataset.col === {name!r});
        return rows.map(r => r.children[k].textContent); }}""")


def test_page_loads_offline_without_errors(page):
    assert page.errors == [] and page.requests == []


def test_runs_table_sorts_and_filters(page):
    page.click("#runs th[data-col='val/f1_micro']")
    up = [float(v) for v in column(page, "val/f1_micro")]
    page.click("#runs th[data-col='val/f1_micro']")
    down = [float(v) for v in column(page, "val/f1_micro")]
    assert up == sorted(up) and down == sorted(up, reverse=True) and len(up) == 2
    page.fill("#filter", "lr=0.01")
    assert column(page, "settings") == ["model.optimizer.lr=0.01"]
    page.fill("#filter", "")


def test_plots_render(page):
    heat = page.eval_on_selector_all("#heatmap .hm image", "els => els.map(e => e.getAttribute('href').length)")
    assert heat and heat[0] > 100  # the heatmap's bitmap
    lines = page.eval_on_selector_all("#pr path.js-line, #f1t path.js-line", "els => els.map(e => e.getAttribute('d'))")
    assert sum(d.count("L") >= 3 for d in lines) >= 4  # curves, not just single points
    assert page.locator("#settings .main-svg").count() >= 1 and page.locator("#durations .bars path").count() == 2


def test_gallery_images_load(page):
    widths = page.eval_on_selector_all("#gallery img", "imgs => imgs.map(i => i.complete ? i.naturalWidth : 0)")
    assert len(widths) == 12 and all(w > 0 for w in widths)
    captions = page.eval_on_selector_all("#gallery figcaption", "els => els.map(e => e.textContent)")
    assert all(" : " in c for c in captions)


def test_review_exports_corrections_that_the_data_module_applies(page, sweep, tmp_path):
    folder, _ = sweep
    cards = page.locator("#review .card")
    assert cards.count() >= 3
    names = [cards.nth(k).locator("div").nth(0).text_content() for k in range(3)]
    labels = [cards.nth(k).locator("b").text_content() for k in range(3)]
    cards.nth(0).locator("button.accept").click()
    cards.nth(1).locator("button.accept").click()
    assert "current" in cards.nth(2).get_attribute("class")  # accepting moves on
    page.keyboard.press("r")  # the keyboard rejects the third
    assert "reject" in cards.nth(2).get_attribute("class")
    with page.expect_download() as download:
        page.click("#export")
    path = tmp_path / "corrections.csv"
    download.value.save_as(path)
    rows = list(csv.DictReader(path.open()))
    page.reload()  # verdicts survive a reload (browser storage)
    assert ["accept" in cards.nth(k).get_attribute("class") for k in range(3)] == [True, True, False]
    assert [(r["image"], r["label"], r["action"], r["verdict"]) for r in rows] == [
        (names[0], labels[0], "add", "accept"), (names[1], labels[1], "add", "accept"),
        (names[2], labels[2], "add", "reject")]

    cfg = OmegaConf.load(folder / page_best(page) / "config_resolved.yaml")
    plain = instantiate(cfg.data)
    plain.setup()
    cfg.data.corrections = str(path)
    corrected = instantiate(cfg.data)
    corrected.setup()
    row = {n: i for i, n in enumerate(plain.data.names)}
    col = {n: j for j, n in enumerate(plain.data.label_names)}
    cells = [(row[n], col[lab]) for n, lab in zip(names, labels)]
    assert [plain.data.targets[c] for c in cells] == [0, 0, 0]
    assert [corrected.data.targets[c] for c in cells] == [1, 1, 0]  # accepted added, rejected not
    moved = corrected.data.targets.sum(0) - plain.data.targets.sum(0)
    expected = np.zeros_like(moved)
    for _, j in cells[:2]:
        expected[j] += 1
    assert (moved == expected).all()


def page_best(page):
    return page.evaluate("JSON.parse(document.getElementById('data').textContent).best")
