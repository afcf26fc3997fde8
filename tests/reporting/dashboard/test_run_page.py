"""One run's dashboard in a real browser, 1,400 px wide: a run folder on its own, with a long label name and
names that carry HTML (``conftest.odd_run``); and its report, opened as HTML."""

import pytest

from imgrec.reporting.dashboard.page import write_dashboard
from imgrec.training.run_summary import RunSummary
from tests.reporting.dashboard.conftest import (
    HTML_FILE,
    HTML_FOLDER,
    HTML_LABEL,
    LONG_LABEL,
    open_dashboard,
    past_the_window,
    plot_boxes,
)


@pytest.fixture(scope="module")
def page(browser, odd_run):  # the browser first: no browser, no sweep
    page = open_dashboard(browser, write_dashboard(odd_run))
    yield page
    page.close()


def texts(page, selector):
    return page.eval_on_selector_all(selector, "els => els.map(e => e.textContent)")


def test_one_run_shows_no_swept_settings(page):
    assert page.locator("#settings .js-plotly-plot").count() == 0
    assert not page.get_by_text("Metrics against each swept setting").is_visible()


def test_the_page_and_its_table_fit_the_window(page, odd_run):
    assert max(past_the_window(page)) <= 0
    assert texts(page, "#runs tbody td.settings") == [" ".join(RunSummary.read(odd_run).overrides)]  # all, wrapped


def test_plots_keep_their_width_beside_long_names(page):
    """The heat maps' plot areas keep most of their box; the long names are cut on the axes (whole on hover)
    and every tick label stays inside its plot."""
    boxes = plot_boxes(page, ".nsewdrag", ".main-svg")
    for name in ["heatmap", "cooc-targets", "cooc-predictions", "durations"]:
        area, plot = boxes[name]
        assert area["width"] >= 0.5 * plot["width"] and area["height"] >= 0.4 * plot["height"], name
    ticks = page.eval_on_selector_all(".js-plotly-plot", """plots => plots.flatMap(p => {
        const box = p.getBoundingClientRect();
        return [...p.querySelectorAll('.xtick text, .ytick text')].map(t => {
            const r = t.getBoundingClientRect();
            return [p.id, t.textContent, r.left >= box.left - 1 && r.right <= box.right + 1]; }); })""")
    assert all(inside for _, _, inside in ticks), [t for t in ticks if not t[2]]
    labels = {text for name, text, _ in ticks if name == "heatmap"}
    assert LONG_LABEL not in labels and any(LONG_LABEL.startswith(t.rstrip("…")) for t in labels if t.endswith("…"))


def test_names_with_html_show_as_text_and_never_run(page):
    assert page.evaluate("window.pwned") is None and page.dialogs == [] and page.errors == []
    assert page.text_content("#title") == f"{HTML_FOLDER} (run)" and HTML_FOLDER in page.title()
    assert HTML_FILE in texts(page, "#review .card div")  # the top candidate's
    assert any(HTML_LABEL in t for t in texts(page, "#gallery figcaption"))  # captions: true : predicted labels
    assert any(t.startswith(HTML_LABEL[:20]) for t in texts(page, "#f1t .legendtext"))  # plotly's SVG text


def test_the_run_report_shows_names_as_text_even_read_as_html(browser, odd_run):
    """report.md opened as if it were HTML (as a markdown viewer passes inline HTML through): the names show
    literally and nothing runs."""
    page = browser.new_page()
    dialogs = []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    page.set_content(f"<html><body><pre>{(odd_run / 'report.md').read_text()}</pre></body></html>")
    text = page.inner_text("body")
    assert page.evaluate("window.pwned") is None and dialogs == []
    assert all(name in text for name in [HTML_LABEL, HTML_FILE, HTML_FOLDER])
    page.close()
