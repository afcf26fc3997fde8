"""The self-contained page: ``template.html`` with plotly's JavaScript and the collected data inlined,
so it opens from ``file://`` with no server and no network."""

from __future__ import annotations

import html
import json
import logging
import re
from pathlib import Path
from typing import Any

from plotly.offline import get_plotlyjs

from imgrec.reporting.dashboard.collect import collect_folder
from imgrec.utils.io import write_text

log = logging.getLogger(__name__)

TEMPLATE = Path(__file__).with_name("template.html")
FILE = "dashboard.html"


# Inside a script element "</script" ends it and "<!--<script" keeps it from ending where it should: no "<"
# (nor ">", "&") is left in the JSON, whose strings read "\u003c" as "<".
JSON_ESCAPES = str.maketrans({"<": "\\u003c", ">": "\\u003e", "&": "\\u0026"})


def render(data: dict[str, Any]) -> str:
    payload = json.dumps(data, allow_nan=False, separators=(",", ":")).translate(JSON_ESCAPES)
    values = {"TITLE": html.escape(data["title"]), "DATA": payload}
    page = re.sub(r"__(TITLE|DATA)__", lambda m: values[m[1]], TEMPLATE.read_text())  # one pass: never re-read
    return page.replace("/*PLOTLY*/", get_plotlyjs(), 1)  # last: the library's text is never searched


def write_dashboard(path: str | Path, out: str | Path | None = None, metric: str = "val/f1_micro") -> Path:
    """Write the dashboard of a run, sweep or CV folder (default ``<path>/dashboard.html``)."""
    data = collect_folder(path, metric)
    return write_text(Path(out) if out else Path(path) / FILE, render(data))
