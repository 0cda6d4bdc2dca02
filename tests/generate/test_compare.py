"""The generation-method comparison on the scripted fake teacher: definitions, shared cache, budget."""

from __future__ import annotations

import json
from pathlib import Path

from tests.generate.fakes import cheap_embed, responder
from tunesmith.generate.compare import compare_methods, format_table
from tunesmith.llm.factory import LLMConfig
from tunesmith.llm.fake import FakeBackend

PARAMS = {
    "self-instruct": {"prompts_per_batch": 2},
    "alpaca": {"max_tokens": 500},
    "sedi": {"max_tokens": 500, "embedder": cheap_embed},
}


def _compare(tmp_path: Path, **config: object) -> tuple[list[dict], list[FakeBackend]]:
    backends: list[FakeBackend] = []

    def make() -> FakeBackend:
        backends.append(FakeBackend(responses=responder))
        return backends[-1]

    rows = compare_methods(
        tmp_path, seeds=None, config=LLMConfig(backend="fake", **config),  # type: ignore[arg-type]
        num_instructions=8, params=PARAMS, make_backend=make,
    )  # fmt: skip
    return rows, backends


def _instructions(folder: Path) -> set[str]:
    return {json.loads(line)["instruction"] for line in (folder / "kept.jsonl").open()}


def test_rows_follow_the_documented_definitions(tmp_path: Path) -> None:
    rows, backends = _compare(tmp_path)
    assert [r["method"] for r in rows] == ["alpaca", "sedi", "self-instruct"]
    for row in rows:
        folder = Path(row["run"])
        assert row["kept"] == len(_instructions(folder)) >= 8, row
        assert row["calls_per_kept"] == row["calls"] / row["kept"]
        assert row["status"] == "reached" and (row["kept"] == 8) == (row["why"] == "")
    # identical requests are paid once: SeDi's first round is Alpaca's (same template, same seeds)
    assert rows[1]["shared"] > 0
    paid = sum(b.calls for b in backends)
    assert paid == sum(r["calls"] for r in rows) - sum(r["shared"] for r in rows)
    # Self-Instruct pays a classification and an instance call per bootstrapped instruction
    si = rows[2]
    boot = [json.loads(x) for x in (Path(si["run"]) / "events.jsonl").open()]
    bootstrapped = max(e["kept"] for e in boot if e.get("stage") == "bootstrap")
    assert si["calls"] == si["generation_calls"] + 2 * bootstrapped
    table = format_table(rows).splitlines()
    assert table[0].startswith("SeDi-Instruct vs Alpaca-style on identical prompts: ")
    assert table[1].split()[:4] == ["method", "status", "generated", "kept"]
    saved = json.loads((tmp_path / "comparison.json").read_text())
    assert saved["rows"] == rows


def test_a_method_out_of_budget_ends_its_own_row_only(tmp_path: Path) -> None:
    rows, _ = _compare(tmp_path, max_calls=3)
    assert [r["method"] for r in rows] == ["alpaca", "sedi", "self-instruct"]
    for row in rows:
        assert row["calls"] <= 3, row  # the same budget for every method, shared answers included
    assert any(r["status"] == "budget" for r in rows)
    budget_rows = [r for r in rows if r["status"] == "budget"]
    assert all("budget" in r["why"] for r in budget_rows)
    assert all(r["calls_per_kept"] is None for r in rows if r["kept"] == 0)
    assert rows[-1]["status"] == "budget", "the last method still ran after an earlier ran out"


def test_rerunning_the_comparison_counts_no_call_twice(tmp_path: Path) -> None:
    first, _ = _compare(tmp_path)
    again, backends = _compare(tmp_path)
    assert sum(b.calls for b in backends) == 0
    keys = ("kept", "generated", "calls", "calls_per_kept")
    assert [{k: r[k] for k in keys} for r in again] == [{k: r[k] for k in keys} for r in first]
