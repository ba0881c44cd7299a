"""The report page in a real browser: headless Chromium (Debian's `chromium` package) opens the page from
disk, offline, and the test clicks and types as a reader would, over the DevTools protocol
(tests/chromium.py). Skipped where no Chromium is installed; `.ci/run` installs it.
PEFTBENCH_SCREENSHOTS=DIR keeps the screenshots the test takes."""

import os
import shutil
from pathlib import Path

import pytest

from chromium import Browser, find_chromium
from test_report_page import make_page

pytestmark = [pytest.mark.browser,
              pytest.mark.skipif(find_chromium() is None, reason="no Chromium on PATH (apt-get install chromium)")]

ROWS = "[...document.querySelectorAll('#table tbody tr.row')]"
CELL = "r.children[{}].textContent"
COLUMN = {"method": 0, "task": 2, "score": 5}


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("page")
    page = make_page(tmp)
    with Browser(width=1400, height=1000) as b:
        b.open(page)
        b.page = page
        yield b


def column(browser, name: str) -> list[str]:
    return browser.js(f"{ROWS}.map(r => {CELL.format(COLUMN[name])})")


def click(browser, selector: str) -> None:
    browser.js(f"document.querySelector({selector!r}).click()")


def choose(browser, selector: str, value: str, event: str = "change") -> None:
    """Set a select or input as a reader would and fire the event the page listens to."""
    browser.js(f"(() => {{ const e = document.querySelector({selector!r}); e.value = {value!r}; "
               f"e.dispatchEvent(new Event({event!r})); }})()")


def keep(browser, tmp_path: Path, name: str) -> Path:
    path = tmp_path / name
    browser.screenshot(path)
    if os.environ.get("PEFTBENCH_SCREENSHOTS"):
        Path(os.environ["PEFTBENCH_SCREENSHOTS"]).mkdir(parents=True, exist_ok=True)
        shutil.copy(path, Path(os.environ["PEFTBENCH_SCREENSHOTS"]) / name)
    return path


def test_renders_without_errors_and_draws_the_charts(browser, tmp_path):
    assert browser.errors == []
    assert len(column(browser, "method")) == 8
    assert browser.js("Chart.getChart('pareto-chart').data.datasets.map(d => d.label)") == [
        "full fine-tuning", "low-rank / reparameterised", "selective", "soft prompts", "Pareto front"]
    points = browser.js("Chart.getChart('pareto-chart').data.datasets[0].data[0]")
    assert points["label"] == "full" and points["yMax"] > points["y"] > points["yMin"]  # seed error bars
    shot = keep(browser, tmp_path, "page.png")
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 20_000


def test_clicking_a_header_sorts_the_rows(browser):
    click(browser, "th[data-key=score]")
    scores = [float(s.split()[0]) for s in column(browser, "score")]
    assert scores == sorted(scores, reverse=True) and scores[0] == 91.0  # numbers sort high first
    assert browser.js("document.querySelector('th[data-key=score]').getAttribute('aria-sort')") == "descending"
    click(browser, "th[data-key=score]")
    assert [float(s.split()[0]) for s in column(browser, "score")] == sorted(scores)
    click(browser, "th[data-key=label]")
    assert column(browser, "method")[:2] == ["bitfit", "bitfit"]
    assert browser.errors == []


def test_the_filters_hide_rows(browser):
    choose(browser, "#filter-task", "glue/rte")
    assert set(column(browser, "task")) == {"glue/rte"} and len(column(browser, "task")) == 4
    assert browser.js("document.querySelector('#shown').textContent") == "4 of 8 rows"
    choose(browser, "#filter-text", "lora", "input")
    assert column(browser, "method") == ["lora"]
    choose(browser, "#filter-task", "")
    choose(browser, "#filter-text", "", "input")
    assert len(column(browser, "method")) == 8


def test_a_row_opens_its_runs(browser, tmp_path):
    browser.js(f"{ROWS}.find(r => r.children[0].textContent === 'full' && r.children[2].textContent === 'glue/rte')"
               ".click()")
    detail = "document.querySelector('tr.detail')"
    assert browser.js(f"{detail}.querySelectorAll('canvas').length") == 2  # loss and eval curves
    assert browser.js("new Promise(r => requestAnimationFrame(() => requestAnimationFrame(() => "
                      f"r({detail}.querySelectorAll('canvas').length && Chart.getChart({detail}.querySelector('canvas'))"
                      ".data.datasets.length))))") == 3  # one loss curve per seed
    links = browser.js(f"[...{detail}.querySelectorAll('a')].map(a => a.href)")
    assert len(links) == 3 and all(Path(l.removeprefix("file://")).is_file() for l in links)
    assert browser.js(f"[...{detail}.querySelectorAll('tr.differs td:first-child')].map(t => t.textContent)") == ["seed"]
    keep(browser, tmp_path, "page-drilldown.png")
    assert browser.errors == []


def test_the_metric_picker_redraws(browser):
    choose(browser, "#pick-x", "memory")
    labels = browser.js("Chart.getChart('pareto-chart').data.datasets.flatMap(d => d.data.map(p => p.label))")
    assert set(labels) - {None} == {"full", "lora"}  # only the rows measured alone
    assert "bitfit" in browser.js("document.querySelector('#pareto-hint').textContent")
    choose(browser, "#pick-y", "glue/rte")
    assert browser.js("Chart.getChart('pareto-chart').options.scales.y.title.text") == "glue/rte score × 100"
    assert browser.errors == []
