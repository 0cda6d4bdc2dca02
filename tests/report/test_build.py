"""Rendering the page: escaping at every boundary, the CSP hash, the API and the CLI."""

from __future__ import annotations

import base64
import hashlib
import json
import re
from html.parser import HTMLParser
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tests.report.conftest import NEEDLE_ID, XSS_BREAKOUT, XSS_IMG, XSS_SCRIPT, write_run
from tunesmith.cli import app
from tunesmith.errors import ConfigError, DataError
from tunesmith.io import write_records
from tunesmith.records import Record
from tunesmith.report import charts, write_report, write_run_report
from tunesmith.report.build import embed_json


class _Tags(HTMLParser):
    """Every start tag a browser's parser would create, and the JSON data block."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.data_block: list[str] = []
        self._in_data = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))
        self._in_data = tag == "script" and dict(attrs).get("id") == "ts-data"

    def handle_endtag(self, tag: str) -> None:
        self._in_data = False

    def handle_data(self, data: str) -> None:
        if self._in_data:
            self.data_block.append(data)


def parse(html: str) -> _Tags:
    p = _Tags()
    p.feed(html)
    return p


def test_embed_json_escapes_markup_and_round_trips() -> None:
    value = {"s": XSS_BREAKOUT + " & <!-- \u2028 \u2029", "n": [1, 2.5, None]}
    text = str(embed_json(value))
    for bad in ("<", ">", "&", "\u2028", "\u2029"):
        assert bad not in text
    assert "\\u003c/script\\u003e" in text
    assert json.loads(text) == value


def test_page_has_only_our_two_scripts_and_no_injected_tags(run_dir: Path) -> None:
    out = write_run_report(run_dir, metrics="none")
    assert out == run_dir / "report.html"
    html = out.read_text(encoding="utf-8")
    tags = parse(html)
    scripts = [attrs for tag, attrs in tags.tags if tag == "script"]
    assert scripts == [{"type": "application/json", "id": "ts-data"}, {}]
    assert not [t for t, _ in tags.tags if t == "img"]
    assert not any(k.startswith("on") for _, attrs in tags.tags for k in attrs)
    # The rows survive the trip through the JSON block intact.
    data = json.loads("".join(tags.data_block))
    rows = {r[0]: r for r in data["records"]}
    assert rows["xss-script"][2] == XSS_SCRIPT and rows["xss-script"][4] == XSS_BREAKOUT
    assert rows["xss-img"][3] == XSS_IMG
    assert data["groups"] == {"kept": 33, "rouge_l": 10, XSS_IMG: 20}
    # Server-rendered text (stage names, reasons, seeds) is escaped by Jinja's autoescape.
    assert "&lt;img src=x onerror=" in html and "&lt;script&gt;window.__pwned" in html


def test_csp_allows_exactly_the_inline_script(run_dir: Path) -> None:
    html = write_run_report(run_dir, metrics="none").read_text(encoding="utf-8")
    csp = re.search(r'http-equiv="Content-Security-Policy" content="([^"]+)"', html)
    assert csp and "default-src 'none'" in csp.group(1)
    body = re.search(r"<script>(.*?)</script>", html, re.S)
    assert body is not None
    digest = base64.b64encode(hashlib.sha256(body.group(1).encode()).digest()).decode()
    assert f"'sha256-{digest}'" in csp.group(1)
    assert "http://" not in html.replace("http://www.w3.org/2000/svg", "")
    assert "https://" not in html


def test_sections_present_for_a_run(run_dir: Path) -> None:
    html = write_run_report(run_dir, run_dir / "r.html", metrics="none").read_text("utf-8")
    for section in ('id="summary"', 'id="funnel"', 'id="curves"', 'id="seeds"', 'id="records"'):
        assert section in html
    assert html.count('<svg class="chart"') >= 4  # funnel, 2 curves, histograms
    assert "$0.0060" in html  # cost in the summary
    assert "Statistics not computed" in html


def test_charts_escape_generated_text() -> None:
    rows = [
        {"verb": "<b>write</b>", "noun": XSS_IMG, "count": 5},
        {"verb": "list", "noun": "x", "count": 2},
    ]
    svg = str(charts.sunburst_chart(rows))
    assert "<b>" not in svg and "<img" not in svg
    assert "&lt;b&gt;write&lt;/b&gt;" in svg
    line = str(charts.line_chart([("<i>kept</i>", [(0, 1), (1, 2)])], x_label="x", y_label="y"))
    assert "<i>" not in line and "&lt;i&gt;kept" in line
    funnel = {"generated": 3, "kept": 1, "steps": [
        {"stage": XSS_SCRIPT, "removed": 2, "reaching": 3, "remaining": 1, "share": 2 / 3}
    ]}  # fmt: skip
    assert "<script" not in str(charts.funnel_chart(funnel))


def test_nice_ticks_cover_the_range() -> None:
    ticks = charts.nice_ticks(0, 93)
    assert ticks[0] <= 0 and ticks[-1] >= 93 and len(ticks) <= 8
    assert charts.nice_ticks(5, 5)[-1] > 5  # a flat series still gets an axis
    assert [charts.fmt_num(v) for v in (5e-05, 0.25, 0, 1500, 2e6)] == [
        "0.00005",
        "0.25",
        "0",
        "1.5k",
        "2M",
    ]


def test_write_report_for_datasets(tmp_path: Path, run_dir: Path) -> None:
    a = write_records(tmp_path / "a.jsonl", [Record(id="1", instruction="Write a poem.")])
    b = write_records(tmp_path / "b.json", [Record(id="2", instruction="List three fruits.")])
    out = write_report([a, b, run_dir], tmp_path / "out" / "cmp.html", metrics="none")
    html = out.read_text(encoding="utf-8")
    data = json.loads("".join(parse(html).data_block))
    assert data["groups"] == {"a": 1, "b": 1, "run": 33}
    assert 'id="funnel"' not in html and 'id="records"' in html


def test_errors_are_one_line_user_errors(tmp_path: Path, run_dir: Path) -> None:
    with pytest.raises(DataError, match="not a run folder"):
        write_run_report(tmp_path)
    with pytest.raises(ConfigError, match="--metrics"):
        write_run_report(run_dir, metrics="some")
    with pytest.raises(DataError, match="no such file"):
        write_report([tmp_path / "missing.jsonl"], tmp_path / "x.html")


def test_cli_report_run_and_datasets(tmp_path: Path) -> None:
    run = write_run(tmp_path / "run")
    res = CliRunner().invoke(app, ["report", str(run), "--metrics", "none"])
    assert res.exit_code == 0, res.output
    assert (run / "report.html").is_file() and "report.html" in res.output
    data = write_records(tmp_path / "d.jsonl", [Record(id=NEEDLE_ID, instruction="Say hi.")])
    out = tmp_path / "d.html"
    res = CliRunner().invoke(app, ["report", str(data), "--out", str(out), "--metrics", "none"])
    assert res.exit_code == 0, res.output
    assert NEEDLE_ID in out.read_text(encoding="utf-8")


@pytest.mark.integration
def test_cheap_metrics_equal_compute_stats(run_dir: Path) -> None:
    """The metrics table shows exactly what tunesmith.metrics computes; the sunburst is parsed."""
    from tunesmith.metrics.stats import compute_stats
    from tunesmith.report.build import run_context
    from tunesmith.report.data import open_run

    ctx = run_context(run_dir, metrics="cheap")
    kept_row = ctx["metric_rows"][0]
    assert kept_row["name"] == "kept" and ctx["metric_rows"][1]["name"] == "generated"
    direct = compute_stats(open_run(run_dir).read_kept(), name="kept", metrics={"cheap"})
    for key in ("size", "rep_2", "diversity", "self_bleu", "unique_tokens"):
        assert kept_row["stats"][key] == direct[key]
    assert ("self_bleu", "Self-BLEU") in ctx["metric_columns"]
    (sunburst,) = ctx["sunbursts"]
    assert sunburst["name"] == "kept"
    assert "write" in str(sunburst["svg"]) and "poem" in str(sunburst["svg"])


def test_a_run_that_has_not_decided_anything_yet(tmp_path: Path) -> None:
    from tunesmith.runs import RunDir

    RunDir.open(tmp_path / "fresh", method="self_instruct")
    html = write_run_report(tmp_path / "fresh", metrics="cheap").read_text(encoding="utf-8")
    assert "No rows decided yet." in html
    assert 'id="curves"' not in html and 'id="seeds"' not in html
    data = json.loads("".join(parse(html).data_block))
    assert data == {"records": [], "groups": {}, "sort_keys": []}


def test_a_failing_metric_becomes_a_note(monkeypatch: pytest.MonkeyPatch, run_dir: Path) -> None:
    import tunesmith.metrics.stats as stats

    def broken(*args: object, **kwargs: object) -> dict[str, object]:
        raise ConfigError("tokenizer 'spacy' unavailable")

    monkeypatch.setattr(stats, "compute_stats", broken)
    html = write_run_report(run_dir, metrics="cheap").read_text(encoding="utf-8")
    assert "metrics skipped: tokenizer &#39;spacy&#39; unavailable" in html


def test_a_folder_of_runs_is_compared(tmp_path: Path) -> None:
    write_run(tmp_path / "cmp" / "self-instruct", n=40)
    write_run(tmp_path / "cmp" / "sedi", n=20)
    res = CliRunner().invoke(app, ["report", str(tmp_path / "cmp"), "--metrics", "none"])
    assert res.exit_code == 0, res.output
    html = (tmp_path / "cmp" / "report.html").read_text(encoding="utf-8")
    assert 'id="runs"' in html and "kept instructions" in html
    data = json.loads("".join(parse(html).data_block))
    assert data["groups"] == {"sedi": 13, "self-instruct": 23}  # n/2 kept + 3 hostile rows
    assert html.count('<svg class="chart"') >= 2 + 3  # 2 comparison curves + 3 histograms


@pytest.mark.integration
def test_report_of_a_real_generation_run(tmp_path: Path) -> None:
    """The run folder `tunesmith generate sedi` writes (fake teacher) becomes a full report."""
    run = tmp_path / "sedi"
    args = [
        "generate",
        "sedi",
        "--backend",
        "fake",
        "-n",
        "5",
        "--max-rounds",
        "2",
        "--out",
        str(run),
    ]
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 0, res.output
    res = CliRunner().invoke(app, ["report", str(run), "--metrics", "none"])
    assert res.exit_code == 0, res.output
    html = (run / "report.html").read_text(encoding="utf-8")
    rejected = (run / "rejected.jsonl").read_text(encoding="utf-8").splitlines()
    kept = (
        (run / "kept.jsonl").read_text(encoding="utf-8").splitlines()
        if (run / "kept.jsonl").exists()
        else []
    )
    data = json.loads("".join(parse(html).data_block))
    assert len(data["records"]) == len(rejected) + len(kept)
    # the summary counts instructions as the console does (tests/report/test_numbers.py)
    generated = json.loads((run / "manifest.json").read_text("utf-8"))["summary"]["generated"]
    assert f'{generated:,}</div><div class="k">generated instructions' in html
    assert 'id="seeds"' in html and 'id="curves"' in html


def test_no_histogram_for_a_field_empty_everywhere(tmp_path: Path) -> None:
    data = write_records(tmp_path / "i.jsonl", [Record(id="1", instruction="Write a poem.")])
    html = write_report([data], tmp_path / "i.html", metrics="none").read_text(encoding="utf-8")
    assert "instruction words" in html
    assert "input words" not in html and "output words" not in html


def test_latency_is_labelled_as_summed_over_calls_next_to_wall_time(run_dir: Path) -> None:
    from tunesmith.llm.usage import Ledger, StageUsage

    ledger = Ledger()  # 40 calls of 2.5 s each, run concurrently in about 10 s of wall time
    ledger.stages["generate"] = StageUsage(calls=40, latency_s=100.0)
    (run_dir / "ledger.json").write_text(json.dumps(ledger.to_dict()), encoding="utf-8")
    html = write_run_report(run_dir, run_dir / "r.html", metrics="none").read_text("utf-8")
    text = re.sub(r"<[^>]+>", " ", html)
    text = " ".join(text.split())
    assert "LLM latency" not in text
    assert "LLM call time 100.0 s summed over 40 calls · 2.5 s per call" in text
    assert "wall time" in text and "call time (summed)" in text


def test_failed_rows_show_in_the_funnel_and_the_browser(run_dir: Path) -> None:
    row = {"id": "f1", "instruction": "Summarize the contract.", "status": 413,
           "message": "request too large"}  # fmt: skip
    (run_dir / "failed.jsonl").write_text(json.dumps(row) + "\n", encoding="utf-8")
    html = write_run_report(run_dir, run_dir / "r.html", metrics="none").read_text("utf-8")
    funnel = html[html.index('id="funnel"') : html.index('id="curves"')]
    assert "failed (LLM error)" in funnel and "request too large" in funnel
    assert 'class="removed failed"' in funnel and "--retry-failed" in funnel
    assert "1 failed" in html[html.index('id="summary"') : html.index('id="funnel"')]
    data = json.loads("".join(parse(html).data_block))
    assert data["groups"]["failed"] == 1
    (failed_row,) = [r for r in data["records"] if r[1] == "failed"]
    assert failed_row[0] == "f1" and failed_row[5] == "HTTP 413 — request too large"


def test_charts_are_never_drawn_much_larger_or_smaller_than_their_viewbox() -> None:
    svg = str(charts.line_chart([("a", [(0, 1), (1, 2)])], x_label="x", y_label="y", width=640))
    assert 'style="max-width:640px;min-width:512px"' in svg
    hist = str(charts.histogram_chart([0, 10, 20], {"a": [1, 2]}, x_label="w", width=420))
    assert "max-width:420px;min-width:336px" in hist


@pytest.mark.integration
def test_datasets_of_different_sizes_compare_size_dependent_metrics_at_equal_size(
    run_dir: Path,
) -> None:
    from tunesmith.metrics.stats import compute_stats
    from tunesmith.report.build import run_context
    from tunesmith.report.data import open_run, rejected_record

    ctx = run_context(run_dir, metrics="cheap")
    kept, generated = ctx["metric_rows"]
    run = open_run(run_dir)
    every = run.read_kept() + [rejected_record(row)[1] for row in run.read_rejected()]
    direct = compute_stats(every, metrics={"cheap"}, size_sample=len(run.read_kept()))
    assert generated["stats"]["size"] == 63 and kept["stats"]["size"] == 33
    for key in ("self_bleu", "rep_2", "unique_tokens"):
        assert generated["stats"][key] == direct[key]
    assert any("seeded sample of 33 of 63 rows" in n for n in generated["notes"])
    assert not any("seeded sample" in n for n in kept["notes"])
