"""The report's data assembly: funnel, curves, seed table, summary, histograms."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.report.conftest import XSS_IMG
from tunesmith.errors import DataError
from tunesmith.records import Record
from tunesmith.report import curves
from tunesmith.report import data as rd
from tunesmith.report.metrics import histogram


def test_funnel_counts_from_rejected_jsonl(run_dir: Path) -> None:
    run = rd.open_run(run_dir)
    funnel = rd.build_funnel(len(run.read_kept()), run.read_rejected())
    # 30 kept + 3 hostile kept; 10 removed by rouge_l, 20 by the oddly named stage
    assert funnel["generated"] == 63
    assert funnel["kept"] == 33
    first, second = funnel["steps"]
    assert (first["stage"], first["removed"], first["reaching"], first["remaining"]) == (
        "rouge_l",
        10,
        63,
        53,
    )
    assert first["share"] == pytest.approx(10 / 63)
    assert first["scores"] == pytest.approx({"min": 0.7, "median": 0.745, "max": 0.79})
    assert len(first["examples"]) == rd.EXAMPLES_PER_STAGE
    assert first["examples"][0]["score"] == "0.7"
    assert (second["stage"], second["removed"], second["remaining"]) == (XSS_IMG, 20, 33)
    assert second["scores"] is None  # no numeric score: no range shown
    assert second["remaining"] == funnel["kept"]


def test_funnel_with_nothing_rejected() -> None:
    funnel = rd.build_funnel(5, [])
    assert funnel == {"generated": 5, "kept": 5, "failed": 0, "unchanged": 0,
                      "unchanged_examples": [], "steps": []}  # fmt: skip


def test_kept_rows_whose_llm_step_failed_are_counted_with_the_reason() -> None:
    failed = {"reflection": {"status": "failed", "failure": "no [Better Answer] section"}}
    kept = [Record(id="a", instruction="x", meta=failed), Record(id="b", instruction="y"),
            Record(id="c", instruction="z", meta={"reflection": {"status": "ok"}})]  # fmt: skip
    unchanged = rd.unchanged_rows(kept)
    assert [(r["id"], r["reason"]) for r in unchanged] == [
        ("a", "reflection: no [Better Answer] section")
    ]
    funnel = rd.build_funnel(3, [], [], unchanged)
    assert funnel["unchanged"] == 1 and funnel["kept"] == 3
    assert funnel["unchanged_examples"][0]["reason"] == "reflection: no [Better Answer] section"


def test_curve_from_events_jsonl(run_dir: Path) -> None:
    run = rd.open_run(run_dir)
    curve = curves.build_curve(run.read_events(), started=run.manifest["started"])
    assert curve["x"] == "calls"
    pts = curve["points"]
    assert [p["generated"] for p in pts] == [12, 24, 36, 48, 60]
    assert [p["kept"] for p in pts] == [7, 14, 21, 28, 35]
    assert [p["calls"] for p in pts] == [8, 16, 24, 32, 40]
    assert pts[-1]["cost_per_kept"] == pytest.approx(0.006 / 35)
    assert all(p["elapsed_s"] >= 0 for p in pts)


def test_curve_falls_back_to_kept_plus_rejected_and_seconds() -> None:
    events = [
        {"t": 110.0, "kept": 4, "rejected": 2, "calls": 0},
        {"t": 100.0, "kept": 1, "rejected": 1, "calls": 0},
        {"t": 105.0, "note": "no counts: ignored"},
    ]
    curve = curves.build_curve(events, started=90.0)
    assert curve["x"] == "elapsed_s"  # a fully cached replay made no calls
    assert [(p["elapsed_s"], p["generated"], p["kept"]) for p in curve["points"]] == [
        (10.0, 2, 1),
        (20.0, 6, 4),
    ]
    assert curve["points"][0]["cost_per_kept"] == 0.0


def test_seed_scores_sorted_and_recomputed(run_dir: Path) -> None:
    seeds = rd.load_seed_scores(run_dir / "seed_scores.json")
    assert [s["id"] for s in seeds] == ["s1", "s2", "s3"]
    assert seeds[0]["score"] == 0.84
    assert seeds[1]["score"] == pytest.approx(3 / 10)  # missing score = SeedKept / SeedGen
    assert seeds[2]["score"] is None  # never generated: no score, listed last
    assert rd.load_seed_scores(run_dir / "absent.json") == []


def test_bad_seed_scores_and_manifest_name_file_and_line(tmp_path: Path) -> None:
    bad = tmp_path / "seed_scores.json"
    bad.write_text('[{"id": "a"},\n  oops]', encoding="utf-8")
    with pytest.raises(DataError, match=r"seed_scores.json:2"):
        rd.load_seed_scores(bad)
    (tmp_path / "manifest.json").write_text("{", encoding="utf-8")
    with pytest.raises(DataError, match=r"manifest\.json"):
        rd.open_run(tmp_path)


def test_open_run_does_not_touch_the_manifest(run_dir: Path) -> None:
    before = (run_dir / "manifest.json").read_text(encoding="utf-8")
    rd.open_run(run_dir)
    assert (run_dir / "manifest.json").read_text(encoding="utf-8") == before


def test_summary_from_manifest_and_ledger(run_dir: Path) -> None:
    run = rd.open_run(run_dir)
    ledger = json.loads((run_dir / "ledger.json").read_text(encoding="utf-8"))
    s = rd.summarize_run(run.manifest, ledger, n_kept=33, n_rejected=30)
    assert (s["method"], s["model"], s["backend"], s["status"]) == (
        "sedi",
        "teacher",
        "fake",
        "done",
    )
    assert (s["calls"], s["cache_hits"], s["prompt_tokens"], s["completion_tokens"]) == (
        40,
        2,
        20000,
        5000,
    )
    assert s["cost_per_kept"] == pytest.approx(0.006 / 33)
    assert s["calls_per_kept"] == pytest.approx(40 / 33)
    assert s["stages"]["generate"]["calls"] == 40
    assert s["started"].endswith("UTC") and s["elapsed_s"] >= 0


def test_record_rows_clip_long_fields(run_dir: Path) -> None:
    run = rd.open_run(run_dir)
    rec = run.read_kept()[0].evolve(output="x" * 50)
    (row,), keys = rd.record_rows([("kept", rec, "")], max_chars=10)
    assert row[0] == rec.id and row[1] == "kept"
    assert row[4] == "x" * 10 + "… [+40 chars]"
    assert keys == ["rouge_l_max"] and row[6] == [rec.scores["rouge_l_max"]]
    stage, rec2, detail = rd.rejected_record(run.read_rejected()[0])
    assert stage == "rouge_l" and detail.startswith("score 0.7 — ROUGE-L")
    assert rec2.id == run.read_rejected()[0]["id"]


def test_histogram_bins_every_value_once() -> None:
    values = {"a": [i % 21 for i in range(300)] + [1000], "b": [1, 2]}
    h = histogram(values)
    assert h["edges"][0] == 0 and h["edges"][-1] <= 30  # the range ends near the 99th percentile
    assert sum(h["series"]["a"]) == 301 and sum(h["series"]["b"]) == 2
    assert h["overflow"] is True  # 1000 is counted, in the last (">=") bin
    width = h["edges"][1]
    assert h["series"]["a"][0] == sum(1 for v in values["a"] if v < width)
    assert histogram({"a": []}) == {"edges": [], "series": {}, "overflow": False}


def test_sort_keys_are_numeric_scores_most_common_first(run_dir: Path) -> None:
    run = rd.open_run(run_dir)
    items = [("kept", r, "") for r in run.read_kept()]
    items += [rd.rejected_record(row) for row in run.read_rejected()]
    rows, keys = rd.record_rows(items)
    # every generated row has rouge_l_max; only rouge_l's rejections have a numeric score
    assert keys == ["rouge_l_max", "rejection_score"]
    by_id = {r[0]: r for r in rows}
    assert by_id["xss-img"][6] == [None, None]  # hostile rows carry no scores
    rouge_rejected = next(r for r in rows if r[1] == "rouge_l")
    assert rouge_rejected[6][1] == pytest.approx(0.7)
    odd = Record(id="z", instruction="x", scores={"flag": True, "nan": float("nan"), "txt": "a"})
    assert rd.sort_keys([odd]) == []


def test_curve_plots_only_generation_events_of_a_multi_stage_run() -> None:
    events = [
        {"t": 1, "stage": "bootstrap", "generated": 23, "kept": 20, "calls": 4},
        {"t": 2, "stage": "bootstrap", "generated": 46, "kept": 40, "calls": 8},
        {"t": 3, "stage": "is_classification", "done": 8, "kept": 8, "calls": 16},
        {"t": 4, "stage": "instances", "done": 8, "kept": 13, "calls": 24},
    ]
    curve = curves.build_curve(events)
    assert [(p["generated"], p["kept"]) for p in curve["points"]] == [(23, 20), (46, 40)]


def test_funnel_and_summary_count_failed_rows(run_dir: Path) -> None:
    failed = [
        {
            "id": "f1",
            "instruction": "Summarize the contract.",
            "status": 413,
            "message": "too long",
        },
        {"id": "f2", "instruction": "Translate it.", "status": None, "message": "content filter"},
        {"id": "r0", "instruction": "Failed, retried since, now kept.", "status": 500},
    ]
    (run_dir / "failed.jsonl").write_text(
        "".join(json.dumps(r) + "\n" for r in failed) + '{"id": "f3", "instr', encoding="utf-8"
    )  # a torn last line (a kill mid-write) is not a row
    rows = rd.read_failed(run_dir)
    assert [r["id"] for r in rows] == ["f1", "f2"]
    run = rd.open_run(run_dir)
    funnel = rd.build_funnel(len(run.read_kept()), run.read_rejected(), rows)
    assert (funnel["generated"], funnel["kept"], funnel["failed"]) == (65, 33, 2)
    first = funnel["steps"][0]
    assert (first["stage"], first["failed"], first["removed"], first["remaining"]) == (
        "failed (LLM error)", True, 2, 63,
    )  # fmt: skip
    assert first["examples"][0]["score"] == "413" and first["examples"][0]["reason"] == "too long"
    tagged = rd.build_funnel(0, [], [{"id": "x", "failed_in": "respond", "message": "HTTP 400"}])
    assert tagged["steps"][0]["examples"][0]["reason"] == "respond: HTTP 400"
    assert funnel["steps"][-1]["remaining"] == 33
    summary = rd.summarize_run(run.manifest, {}, n_kept=33, n_rejected=30, n_failed=2)
    assert (summary["generated"], summary["failed"]) == (65, 2)
    (run_dir / "failed.jsonl").write_text('{"id": 1}\n{bad\n{"id": 2}\n', encoding="utf-8")
    with pytest.raises(DataError, match=r"failed\.jsonl:2"):
        rd.read_failed(run_dir)


def test_cumulative_curves_never_go_down() -> None:
    # a recipe logs one "kept" per stage (100 -> 60 -> 50); a resumed job restarted its counters
    recipe = [
        {"t": 1, "stage": "dedup", "index": 0, "kept": 100, "rejected": 20},
        {"t": 2, "stage": "ifd", "index": 1, "kept": 60, "rejected": 40},
        {"t": 3, "stage": "select", "index": 2, "kept": 50, "rejected": 10},
    ]
    resumed = [
        {"t": 1, "stage": "respond", "kept": 10, "rejected": 2, "calls": 12, "cost_usd": 0.2},
        {"t": 2, "stage": "respond", "kept": 20, "rejected": 4, "calls": 24, "cost_usd": 0.4},
        {"t": 3, "stage": "respond", "kept": 5, "rejected": 1, "calls": 6, "cost_usd": 0.1},
        {"t": 4, "stage": "respond", "kept": 30, "rejected": 6, "calls": 36, "cost_usd": 0.6},
    ]
    for events in (recipe, resumed):
        pts = curves.build_curve(events)["points"]
        for key in ("generated", "kept", "calls", "cost_usd", "elapsed_s"):
            values = [p[key] for p in pts]
            assert values == sorted(values), (key, values)
    pts = curves.build_curve(resumed)["points"]
    assert [p["kept"] for p in pts] == [10, 20, 20, 30]
    assert [p["calls"] for p in pts] == [12, 24, 24, 36]
    assert len(curves.build_curve(recipe)["points"]) == 1  # one stage's series, not three stages'


def test_one_long_row_does_not_squash_the_length_histogram() -> None:
    lengths = [12, 25, 31, 40, 44, 48, 52, 55, 60, 63, 66, 70, 72, 75, 80, 84, 88, 95, 99, 1200]
    h = histogram({"outputs": lengths})
    assert h["overflow"] is True and h["edges"][-1] <= 300  # not stretched to 1,200
    counts = h["series"]["outputs"]
    assert counts[-1] >= 1 and sum(counts) == 20
    assert max(counts[:-1]) >= 2  # the ordinary rows spread over several readable bars
    assert sum(1 for c in counts[:-1] if c) >= 8
    even = histogram({"a": list(range(100))})
    assert even["overflow"] is False and even["edges"][-1] >= 99  # nothing to clip


def test_the_curve_ends_at_the_runs_total_calls() -> None:
    events = [
        {"t": 1, "stage": "bootstrap", "generated": 23, "kept": 20, "calls": 3, "cost_usd": 0.3},
        {"t": 2, "stage": "bootstrap", "generated": 46, "kept": 40, "calls": 5, "cost_usd": 0.5},
        {"t": 3, "stage": "instances", "done": 40, "kept": 61, "calls": 55, "cost_usd": 2.0},
    ]
    curve = curves.close_curve(curves.build_curve(events), {"calls": 55, "cost_usd": 2.0})
    assert [(p["calls"], p["kept"]) for p in curve["points"]] == [(3, 20), (5, 40), (55, 40)]
    assert curve["points"][-1]["cost_per_kept"] == pytest.approx(2.0 / 40)
    same = curves.build_curve(events[:2])
    assert curves.close_curve(same, {"calls": 5}) == same  # nothing after generation: unchanged


def test_compared_runs_plot_all_of_a_methods_calls(tmp_path: Path) -> None:
    from tests.generate.fakes import responder
    from tunesmith.generate.pipeline import run_generation
    from tunesmith.llm.factory import LLMConfig
    from tunesmith.llm.fake import FakeBackend
    from tunesmith.report.build import datasets_context

    run = run_generation("self-instruct", seeds=None, out=tmp_path / "si",
                         config=LLMConfig(backend="fake", cache_path=str(tmp_path / "c.sqlite")),
                         params={"num_instructions": 6, "prompts_per_batch": 3},
                         backend=FakeBackend(responses=responder))  # fmt: skip
    calls = rd.summarize_run(run.manifest, rd.read_ledger(run.path), n_kept=1, n_rejected=0)
    boot = [e["calls"] for e in run.read_events() if e.get("stage") == "bootstrap"]
    assert calls["calls"] > max(boot)  # classification and instances made calls too
    ctx = datasets_context([run.path], metrics="none")
    (row,) = ctx["runs"]
    assert row["calls"] == calls["calls"]
    assert f"at API calls {calls['calls']}<" in str(ctx["runs_svgs"][0])
