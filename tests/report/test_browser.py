"""The report in a real headless Chromium (Debian's), driven over the DevTools protocol.

Checks what a person would: the page loads without console errors, the charts are drawn, the
search finds a record, hostile rows stay text and never run, charts keep readable text at a
phone's and a wide screen's width, and 50K rows stay usable. Screenshots for a human to look at
go to a temporary folder, or to ``$TUNESMITH_ARTIFACTS`` when set (``artifacts/`` is git-ignored).
Without Chromium, and no way to install it, the tests skip and say why.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.report.cdp import Browser
from tests.report.conftest import (
    NEEDLE_ID,
    NEEDLE_WORD,
    XSS_BREAKOUT,
    XSS_IMG,
    XSS_SCRIPT,
    instructions,
    write_run,
)
from tunesmith.io import write_records
from tunesmith.records import Record
from tunesmith.report import write_report, write_run_report
from tunesmith.report.data import MAX_FIELD_CHARS

pytestmark = pytest.mark.integration


def _chromium() -> str:
    """Debian's chromium; installed with apt (as `make browser` does) when missing and possible."""
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found:
        return found
    root = os.geteuid() == 0
    sudo = not root and shutil.which("sudo") and subprocess.run(
        ["sudo", "-n", "true"], capture_output=True, check=False
    ).returncode == 0  # fmt: skip
    if not shutil.which("apt-get") or not (root or sudo):
        pytest.skip("chromium is not installed and apt-get cannot install it here (no apt or root)")
    prefix = [] if root else ["sudo", "-n"]
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for cmd in (["apt-get", "update", "-qq"], ["apt-get", "install", "-y", "-qq", "chromium"]):
        res = subprocess.run(prefix + cmd, capture_output=True, text=True, env=env, check=False)
        if res.returncode != 0:  # e.g. no network or no package: not a defect of the report
            last = (res.stderr.strip().splitlines() or ["no message"])[-1][:300]
            pytest.skip(f"chromium is not installed and `{' '.join(cmd)}` failed: {last}")
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if not found:
        pytest.skip("chromium is still not on PATH after apt-get install chromium")
    return found


@pytest.fixture(scope="module")
def artifacts(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where screenshots go: $TUNESMITH_ARTIFACTS, else a pytest temporary folder."""
    chosen = os.environ.get("TUNESMITH_ARTIFACTS")
    path = Path(chosen) if chosen else tmp_path_factory.mktemp("report-screenshots")
    path.mkdir(parents=True, exist_ok=True)
    return path


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with Browser(_chromium()) as b:
        yield b


@pytest.fixture(scope="module")
def run_report(tmp_path_factory: pytest.TempPathFactory) -> Path:
    run = write_run(tmp_path_factory.mktemp("browser") / "run", n=120)
    return write_run_report(run, metrics="cheap")


def _open(browser: Browser, page: Path) -> None:
    browser.console_errors.clear()
    browser.dialogs.clear()
    browser.goto(page.resolve().as_uri())
    browser.wait_for("document.body.dataset.ready === '1'")


def _search(browser: Browser, text: str, expect_total: str, timeout: float = 30) -> None:
    browser.eval("document.getElementById('rb-search').value = ''")
    browser.type_into("#rb-search", text)
    browser.wait_for(
        f"document.getElementById('rb-count').dataset.query === {json.dumps(text)}",
        timeout=timeout,
    )
    assert browser.eval("document.getElementById('rb-count').dataset.total") == expect_total


def test_report_renders_searches_and_never_runs_injected_code(
    browser: Browser, run_report: Path, artifacts: Path
) -> None:
    _open(browser, run_report)
    browser.drain(0.5)
    assert browser.console_errors == []

    # Charts are drawn: funnel bars, curve lines, histogram bars, sunburst arcs.
    sizes = browser.eval(
        "[...document.querySelectorAll('svg.chart')].map(s => "
        "[s.getBoundingClientRect().width, s.querySelectorAll('path,rect,circle').length])"
    )
    assert len(sizes) >= 6 and all(w > 100 and n > 0 for w, n in sizes)
    assert browser.eval("document.querySelectorAll('.sunburst path.arc').length") > 20
    assert browser.eval("document.querySelectorAll('#seeds tbody tr').length") == 3

    # The first page shows 25 cards; search narrows to the one known record.
    assert browser.eval("document.querySelectorAll('#rb-list .rec').length") == 25
    _search(browser, NEEDLE_WORD.upper(), "1")  # case-insensitive
    assert browser.eval("document.querySelector('#rb-list .rec').dataset.id") == NEEDLE_ID
    assert browser.eval("document.querySelector('#rb-list mark').textContent") == NEEDLE_WORD

    # Hostile rows are found, shown as the literal text, and did not execute.
    _search(browser, "onerror", "1")
    card = browser.eval("document.querySelector('#rb-list .rec').textContent")
    assert XSS_IMG in card
    _search(browser, "window.__pwned = 1", "1")
    shown = browser.eval(
        "[...document.querySelectorAll('#rb-list .rec-instruction, #rb-list .rec-output')]"
        ".map(e => e.textContent)"
    )
    assert shown == [XSS_SCRIPT, XSS_BREAKOUT]
    assert browser.eval("document.querySelectorAll('#rb-list img, #rb-list script').length") == 0
    assert browser.eval("typeof window.__pwned") == "undefined"
    assert browser.eval("document.querySelectorAll('script').length") == 2
    assert browser.eval("document.querySelectorAll('body img').length") == 0
    assert browser.dialogs == []  # no alert() ran
    # The stage named like an <img> tag is a filter option and a funnel label, as text.
    assert XSS_IMG in browser.eval(
        "[...document.querySelectorAll('#rb-group option')].map(o => o.value)"
    )
    assert XSS_IMG in browser.eval("document.getElementById('funnel').textContent")

    # Group filter and paging.
    browser.eval("document.getElementById('rb-search').value = ''")
    browser.eval(
        "const g = document.getElementById('rb-group'); g.value = 'rouge_l';"
        "g.dispatchEvent(new Event('change'))"
    )
    assert browser.eval("document.getElementById('rb-count').dataset.total") == "10"
    browser.eval(
        "document.getElementById('rb-group').value = ''; document.getElementById('rb-group').dispatchEvent(new Event('change'))"
    )
    browser.eval(
        "const s = document.getElementById('rb-sort'); s.value = '0:-1';"
        "s.dispatchEvent(new Event('change'))"
    )
    top = browser.eval(
        "[...document.querySelectorAll('#rb-list .rec')].slice(0, 3).map(e => e.dataset.id)"
    )
    assert top == ["r27", "r54", "r81"]  # rouge_l_max = i * 37 % 100 / 100: 0.99, 0.98, 0.97
    browser.eval("document.getElementById('rb-sort').value = ''")
    browser.eval("document.getElementById('rb-next').click()")
    assert "page 2 /" in browser.eval("document.getElementById('rb-page').textContent")
    browser.eval("document.getElementById('rb-prev').click(); scrollTo(0, 0)")

    browser.drain(0.3)
    assert browser.console_errors == []
    assert browser.eval("typeof window.__pwned") == "undefined"
    browser.screenshot(artifacts / "report.png")
    browser.screenshot(artifacts / "report-top.png", full_page=False)
    assert (artifacts / "report.png").stat().st_size > 50_000


# Rendered size of every text in every chart: its CSS font size times the chart's drawn scale.
_CHART_FONTS = """[...document.querySelectorAll('svg.chart')].flatMap(svg => {
  const scale = svg.getBoundingClientRect().width / svg.viewBox.baseVal.width;
  return [...svg.querySelectorAll('text')].map(
    t => parseFloat(getComputedStyle(t).fontSize) * scale);
})"""


@pytest.mark.parametrize("width", [420, 1920])
def test_chart_text_stays_readable_at_any_width(
    browser: Browser, run_report: Path, artifacts: Path, width: int
) -> None:
    browser.call("Emulation.setDeviceMetricsOverride", session=True, width=width, height=900,
                 deviceScaleFactor=1, mobile=False)  # fmt: skip
    try:
        _open(browser, run_report)
        sizes = browser.eval(_CHART_FONTS)
        assert len(sizes) > 50  # ticks, labels, legends, funnel and sunburst text
        assert min(sizes) >= 9.0 and max(sizes) <= 16.0, (width, min(sizes), max(sizes))
        browser.screenshot(artifacts / f"report-{width}px.png")
    finally:
        browser.call("Emulation.setDeviceMetricsOverride", session=True, width=1280,
                     height=900, deviceScaleFactor=1, mobile=False)  # fmt: skip


def test_fifty_thousand_rows_stay_usable(browser: Browser, tmp_path: Path) -> None:
    texts = instructions(50_000)
    records = [
        Record(id=f"row-{i}", instruction=f"{t} Variant {i}.", output=f"Answer {i}: " + t * 3)
        for i, t in enumerate(texts)
    ]
    records[31_337] = records[31_337].evolve(instruction=f"Explain the {NEEDLE_WORD} habitat.")
    data = write_records(tmp_path / "big.jsonl", records)
    page = write_report([data], tmp_path / "big.html", metrics="none")
    _open(browser, page)
    assert browser.eval("document.getElementById('rb-count').dataset.total") == "50000"

    # A generous bound: correctness under load, not a timing claim (see benchmarks/ for speed).
    started = time.monotonic()
    _search(browser, NEEDLE_WORD, "1", timeout=20)
    assert time.monotonic() - started < 20
    assert browser.eval("document.querySelector('#rb-list .rec').dataset.id") == "row-31337"
    _search(browser, "poem ocean", str(sum("poem" in t and "ocean" in t for t in texts)))
    assert browser.eval("document.querySelectorAll('#rb-list .rec').length") == 25
    assert browser.eval("1 + 1") == 2  # the page still answers
    browser.drain(0.2)
    assert browser.console_errors == []


def test_real_alpaca_rows_search_and_render(
    browser: Browser, alpaca_9k_path: Path, tmp_path: Path
) -> None:
    """9,229 real Alpaca rows: every row is in the page, and a real instruction is found."""
    from tunesmith.io import read_records

    records = read_records(alpaca_9k_path)
    target = records[4321]
    page = write_report([alpaca_9k_path], tmp_path / "alpaca.html", metrics="none")
    _open(browser, page)
    assert browser.eval("document.getElementById('rb-count').dataset.total") == str(len(records))
    query = target.instruction[:60]
    # The page searches (all whitespace-separated terms, case-insensitive) over shown text.
    terms = query.lower().split()
    shown = (
        "\n".join([*(f[:MAX_FIELD_CHARS] for f in (r.instruction, r.input, r.output)), r.id])
        for r in records
    )
    expected = sum(all(t in text.lower() for t in terms) for text in shown)
    _search(browser, query, str(expected))
    ids = browser.eval("[...document.querySelectorAll('#rb-list .rec')].map(e => e.dataset.id)")
    assert target.id in ids
    card = browser.eval(
        f"document.querySelector('#rb-list .rec[data-id={json.dumps(target.id)}] .rec-instruction').textContent"
    )
    assert card == target.instruction
    browser.drain(0.2)
    assert browser.console_errors == []
