"""A sweep's dashboard, and the same sweep as a CV, in a real browser (Debian's chromium driven through
Playwright; skipped, with the reason, where either is missing), in a window 1,400 px wide."""

import csv
import re

import numpy as np
import pytest
from hydra.utils import instantiate
from omegaconf import OmegaConf

from imgrec.reporting.dashboard.page import FILE, write_dashboard
from imgrec.reporting.sweep_table import COLUMNS
from tests.reporting.dashboard.conftest import cv_copy, open_dashboard, past_the_window, plot_boxes


@pytest.fixture(scope="module")
def page(browser, sweep):  # the browser first: no browser, no sweep
    folder, _ = sweep
    page = open_dashboard(browser, folder / FILE)  # the page the sweep wrote
    yield page
    page.close()


@pytest.fixture(scope="module")
def cv_page(browser, sweep, tmp_path_factory):
    folder, _ = sweep
    cv = cv_copy(folder, tmp_path_factory.mktemp("cv") / "cv", {"": ["0", "1"]})
    page = open_dashboard(browser, write_dashboard(cv))
    yield page
    page.close()


def column(page, name):
    return page.eval_on_selector_all("#runs tbody tr", f"""(rows) => {{
        const k = [...document.querySelectorAll('#runs thead th')].findIndex(th => th.dataset.col === {name!r});
        return rows.map(r => r.children[k].textContent); }}""")


def test_page_loads_offline_without_errors(page):
    assert page.errors == [] and page.requests == [] and page.dialogs == []


def test_runs_table_sorts_and_filters(page):
    page.click("#runs th[data-col='val/f1_micro']")
    up = [float(v) for v in column(page, "val/f1_micro")]
    page.click("#runs th[data-col='val/f1_micro']")
    down = [float(v) for v in column(page, "val/f1_micro")]
    assert up == sorted(up) and down == sorted(up, reverse=True) and len(up) == 2
    page.fill("#filter", "lr=0.01")
    assert column(page, "settings") == ["model.optimizer.lr=0.01"]
    page.fill("#filter", "")


def test_table_shows_whole_seconds_integer_counts_and_scores_to_4_decimals(page):
    assert all(re.fullmatch(r"\d[\d,]*", s) for s in column(page, "seconds"))
    assert all(re.fullmatch(r"\d+", e) for e in column(page, "epochs"))
    assert all(re.fullmatch(r"[01]\.\d{4}", v) for c in COLUMNS for v in column(page, c))


def overlap(a, b):
    return a["left"] < b["right"] and b["left"] < a["right"] and a["top"] < b["bottom"] and b["top"] < a["bottom"]


def test_plot_titles_clear_the_mode_bar(page):
    boxes = plot_boxes(page, ".gtitle", ".modebar")
    titled = {name: (title, modebar) for name, (title, modebar) in boxes.items() if title}
    assert {"pr", "f1t", "cooc-targets", "cooc-predictions", "setting-0"} <= set(titled)
    assert all(modebar and not overlap(title, modebar) for title, modebar in titled.values()), titled


def test_a_cv_page_fits_the_window_with_its_mean_and_std_row(cv_page):
    assert max(past_the_window(cv_page)) <= 0
    assert "0.6000\n± 0.0200" in cv_page.eval_on_selector_all("#runs tfoot td", "tds => tds.map(t => t.textContent)")
    assert cv_page.errors == [] and cv_page.requests == []


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
