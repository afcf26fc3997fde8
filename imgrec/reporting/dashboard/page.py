"""The self-contained page: ``template.html`` with plotly's JavaScript and the collected data inlined,
so it opens from ``file://`` with no server and no network."""

from __future__ import annotations

import html
import json
import logging
from pathlib import Path
from typing import Any

from plotly.offline import get_plotlyjs

from imgrec.reporting.dashboard.collect import collect_folder
from imgrec.utils.io import write_text

log = logging.getLogger(__name__)

TEMPLATE = Path(__file__).with_name("template.html")
FILE = "dashboard.html"


def render(data: dict[str, Any]) -> str:
    # "</" cannot end the JSON's script element early once escaped; JSON.parse reads "<\/" as "</"
    payload = json.dumps(data, allow_nan=False, separators=(",", ":")).replace("</", "<\\/")
    page = TEMPLATE.read_text()
    page = page.replace("__TITLE__", html.escape(data["title"]), 1).replace("__DATA__", payload, 1)
    return page.replace("/*PLOTLY*/", get_plotlyjs(), 1)  # last: the library's text is never searched


def write_dashboard(path: str | Path, out: str | Path | None = None, metric: str = "val/f1_micro") -> Path:
    """Write the dashboard of a run, sweep or CV folder (default ``<path>/dashboard.html``)."""
    data = collect_folder(path, metric)
    return write_text(Path(out) if out else Path(path) / FILE, render(data))
