"""`peftbench report --format html`: one self-contained page (styles, scripts, chart library and data
inlined; it opens from disk with no network): a sortable, filterable table of every row and task, the
Pareto views as interactive charts with seed error bars, and a drill-down per row (loss and eval curves,
config with what differs between its runs, links to the run files). The data comes from `pagedata`;
the page's own code is `assets/page.js` and `assets/page.css`; the chart library is vendored in `vendor/`
(its README says which and why)."""

from __future__ import annotations

import html
import json
import math
import re
from importlib import resources
from pathlib import Path

from .pagedata import page_data
from .runs import alone_note
from .tables import Table

VENDOR = ("chart.umd.min.js", "chartjs-chart-error-bars.umd.min.js", "chartjs-plugin-datalabels.min.js")


def asset(*parts: str) -> str:
    return resources.files("peftbench.report").joinpath(*parts).read_text(encoding="utf-8")


def finite(value):
    """NaN and infinities (a Pearson correlation of constant predictions) as null: JSON has no NaN."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [finite(v) for v in value]
    return value


def inline_json(data) -> str:
    """JSON safe inside a <script> element: no "</" can close it early."""
    return json.dumps(finite(data), separators=(",", ":"), ensure_ascii=False, allow_nan=False).replace("</", "<\\/")


def title_of(ok: list[dict]) -> str:
    """"minilm: 13 methods on 5 tasks" (or the models' names, comma-separated)."""
    models = sorted({str(r.get("model")) for r in ok})
    methods, tasks = len({r.get("method") for r in ok}), len({r["task"] for r in ok})
    return (f"{', '.join(models)}: {methods} method{'s' * (methods != 1)} on "
            f"{tasks} task{'s' * (tasks != 1)}")


def render_page(table: Table, ok: list[dict], keys: list[str], failed: list[str], output: str | None,
                tuned: str) -> str:
    """The page for the scores table's runs; run-file links are relative to where the page is written."""
    link_from = Path(output).parent if output else Path.cwd()
    data = page_data(ok, keys, link_from, tuned)
    title = title_of(ok)
    data |= {"title": title, "notes": [n for n in [*table.notes, alone_note(ok)] if n], "failed": failed}
    scripts = "\n".join(f"<script>{asset('vendor', name)}</script>" for name in VENDOR)
    parts = {"title": html.escape(title), "style": asset("assets", "page.css"), "vendor": scripts,
             "data": inline_json(data), "script": asset("assets", "page.js")}
    return re.sub(r"\{\{(\w+)\}\}", lambda m: parts[m.group(1)], asset("assets", "page.html"))  # one pass
