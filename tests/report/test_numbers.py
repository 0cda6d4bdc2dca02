"""A generation run's numbers agree everywhere: console, manifest, compare-generators, report.

Runs the real generators on the scripted fake teacher (fast, offline). Self-Instruct is the case
that used to disagree: its ``kept.jsonl`` holds one row per instance, so a report counting rows
said 16 kept and 1.25 calls per kept where the console said 8 and 2.50.
"""

from __future__ import annotations

import json
import re
from html import unescape
from pathlib import Path

import pytest

from tests.generate.fakes import cheap_embed, responder
from tunesmith.commands._common import generation_line
from tunesmith.generate.compare import compare_methods, method_row
from tunesmith.generate.pipeline import run_generation
from tunesmith.llm.factory import LLMConfig
from tunesmith.llm.fake import FakeBackend
from tunesmith.report import write_report, write_run_report
from tunesmith.report.build import datasets_context, run_context

PARAMS = {
    "self-instruct": {"prompts_per_batch": 2},
    "alpaca": {"max_tokens": 500},
    "sedi": {"max_tokens": 500, "embedder": cheap_embed},
}
NUMBERS = ("generated", "kept", "calls", "calls_per_kept", "cost_per_kept")
LINE = re.compile(
    r"kept (\d+) instructions from (\d+) generated, (\d+) calls, (\S+) calls per kept"
)


@pytest.mark.parametrize("method", list(PARAMS))
def test_report_says_what_the_console_and_the_manifest_say(tmp_path: Path, method: str) -> None:
    run = run_generation(
        method, seeds=None, out=tmp_path / method, config=LLMConfig(backend="fake", use_cache=False),
        params={"num_instructions": 8, **PARAMS[method]}, backend=FakeBackend(responses=responder),
    )  # fmt: skip
    printed = LINE.search(generation_line(run.path, method, 8))
    assert printed, generation_line(run.path, method, 8)
    summary = run_context(run.path, metrics="none")["summary"]
    kept, generated, calls = map(int, printed.groups()[:3])
    assert (summary["kept"], summary["generated"], summary["calls"]) == (kept, generated, calls)
    assert f"{summary['calls_per_kept']:.2f}" == printed[4]
    manifest = json.loads((run.path / "manifest.json").read_text(encoding="utf-8"))["summary"]
    assert (manifest["kept_instructions"], manifest["generated"]) == (kept, generated)
    assert manifest["calls_per_kept"] == summary["calls_per_kept"]
    row = method_row(run.path, method, 8)
    assert {k: summary[k] for k in NUMBERS} == {k: row[k] for k in NUMBERS}
    kept_rows = sum(1 for line in (run.path / "kept.jsonl").open() if line.strip())
    assert summary["kept_rows"] == kept_rows
    if method == "self-instruct":
        assert kept_rows > kept, "one row per instance: rows and instructions differ"
    html = write_run_report(run.path).read_text(encoding="utf-8")
    text = " ".join(unescape(re.sub(r"<[^>]+>", " ", html)).split())
    assert f"{generated} generated instructions {kept} kept instructions ({kept_rows} rows)" in text
    # kept != asked is explained on the page as on the console (generate -n N keeps N or says why)
    assert summary["why"] == row["why"] and (kept == 8) == (not row["why"])
    if row["why"]:
        assert f"kept {kept} of the 8 instructions asked: {row['why']}" in text


def test_a_comparison_report_shows_the_comparison_table_numbers(tmp_path: Path) -> None:
    rows = compare_methods(
        tmp_path / "cmp", seeds=None, config=LLMConfig(backend="fake", use_cache=False),
        num_instructions=8, params=PARAMS, make_backend=lambda: FakeBackend(responses=responder),
    )  # fmt: skip
    shown = {r["method"]: r for r in datasets_context([tmp_path / "cmp"], metrics="none")["runs"]}
    for row in rows:
        assert {k: shown[row["method"]][k] for k in NUMBERS} == {k: row[k] for k in NUMBERS}
    assert write_report([tmp_path / "cmp"], tmp_path / "cmp.html", metrics="none").is_file()


def test_a_cached_rerun_says_its_answers_came_from_the_cache(tmp_path: Path) -> None:
    """The same run into a new folder pays nothing; the line says where the answers came from
    instead of a bare "0 calls" that reads as if nothing happened."""
    config = LLMConfig(backend="fake", cache_path=str(tmp_path / "cache.sqlite"))
    lines = []
    for name in ("first", "again"):
        run = run_generation(
            "alpaca", seeds=None, out=tmp_path / name, config=config,
            params={"num_instructions": 8, **PARAMS["alpaca"]},
            backend=FakeBackend(responses=responder),
        )  # fmt: skip
        lines.append(generation_line(run.path, "alpaca", 8))
    first, again = (LINE.search(line) for line in lines)
    assert first and again and int(first[3]) > 0 and int(again[3]) == 0
    assert "from the request cache" not in lines[0]
    assert f", {first[3]} more answered from the request cache" in lines[1]
