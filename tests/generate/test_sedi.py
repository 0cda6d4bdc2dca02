"""SeDi-Instruct: seed score arithmetic, eviction, Alpaca-style prompts, end-to-end on the fake."""

from __future__ import annotations

import json
import random

import pytest

from tests.generate.fakes import cheap_embed, responder
from tunesmith.generate.alpaca import Alpaca
from tunesmith.generate.loop import LoopState
from tunesmith.generate.pipeline import run_generation
from tunesmith.generate.sedi import Sedi, SeedScoreTable
from tunesmith.generate.seeds import SeedTask, load_seeds
from tunesmith.llm.factory import LLMConfig
from tunesmith.llm.fake import FakeBackend

SEEDS = load_seeds()


def tasks(*ids):
    return [SeedTask(id=i, instruction=f"task {i}") for i in ids]


def test_seed_score_arithmetic_from_the_paper():
    table = SeedScoreTable(tasks("a", "b", "c", "d"))
    table.update(["a", "b", "c"], 25, 21)
    assert table.score("a") == pytest.approx(21 / 25)
    table.update(["a", "b", "d"], 5, 4)
    assert (table.rows["a"].seed_gen, table.rows["a"].seed_kept) == (30, 25)
    assert table.score("a") == pytest.approx(25 / 30) and round(table.score("a"), 2) == 0.83
    assert table.score("c") == pytest.approx(21 / 25) and table.score("d") == pytest.approx(4 / 5)
    with pytest.raises(ValueError):
        table.update(["a"], 2, 3)


def test_eviction_replaces_lowest_scoring_seeds_and_skips_unscored():
    table = SeedScoreTable(tasks("a", "b", "c", "d"))
    table.update(["a"], 10, 9)
    table.update(["b"], 10, 2)
    table.update(["c"], 10, 5)
    assert table.lowest(2) == ["b", "c"]  # d has no score yet: never evicted first
    table.evict(table.lowest(1))
    table.add(tasks("new"))
    assert [t.id for t in table.live()] == ["a", "c", "d", "new"]
    assert table.to_rows()[-1] == {
        "id": "new",
        "instruction": "task new",
        "seed_gen": 0,
        "seed_kept": 0,
        "score": None,
    }


def test_alpaca_prompt_shows_three_seed_tasks_and_opens_the_fourth():
    gen = Alpaca()
    gen.setup_seeds(SEEDS)
    plan = gen.build_prompt(random.Random(0), LoopState())
    assert plan.text.count("###") == 4 and plan.text.endswith("###\n4. Instruction:")
    assert "List of 20 tasks" in plan.text and len(plan.seed_ids) == 3
    p = gen.sampling_params(0, 0)
    assert (p.temperature, p.top_p, p.max_tokens, p.stop) == (
        1.0,
        1.0,
        3072,
        ("\n20", "20.", "20 ."),
    )
    assert Sedi().threshold == 0.85 and Alpaca().threshold == 0.7


def test_sedi_run_writes_scores_batches_and_curve(tmp_path):
    run = run_generation(
        "sedi",
        seeds=None,
        out=tmp_path / "run",
        config=LLMConfig(backend="fake"),
        params={
            "num_instructions": 20,
            "max_tokens": 600,
            "train_batch_size": 4,
            "embedder": cheap_embed,
        },
        backend=FakeBackend(responses=responder),
    )
    kept = run.read_kept()
    assert len(kept) >= 20 and all(
        r.meta["method"] == "sedi" and len(r.meta["seed_ids"]) == 3 for r in kept
    )
    scores = json.loads((run.path / "seed_scores.json").read_text())
    assert {row["id"] for row in scores} == {s.id for s in SEEDS}
    used = [row for row in scores if row["seed_gen"]]
    assert used and all(row["score"] == row["seed_kept"] / row["seed_gen"] for row in used)
    # every kept row came from a prompt whose 3 seeds were all credited with it
    total_kept = sum(row["seed_kept"] for row in scores)
    assert total_kept == 3 * len(kept)
    order = json.loads((run.path / "batches.json").read_text())
    assert sorted(i for b in order["batches"] for i in b) == sorted(r.id for r in kept)
    assert order["dims"] == 2 and set(order["clusters"].values()) <= {0, 1, 2, 3}
    events = [e for e in run.read_events() if e["stage"] == "generate"]
    assert events[-1]["kept"] == len(kept) and events[-1]["generated"] >= len(kept)


def test_replace_seeds_evicts_and_feeds_the_novelty_pool(tmp_path):
    gen = Sedi(num_instructions=3, max_tokens=400, embedder=cheap_embed)
    from tunesmith.driver import RunDriver
    from tunesmith.llm.client import LLM

    run = RunDriver.open(tmp_path / "r", method="sedi", config={})
    gen.run(SEEDS, LLM(FakeBackend(responses=responder)), run)
    worst = gen.table.lowest(1)
    new = SeedTask(
        id="fresh", instruction="Invent a board game that teaches fractions to children."
    )
    assert gen.replace_seeds([new]) == worst
    assert "fresh" in gen.table.rows and worst[0] not in gen.table.rows
    assert new.instruction in gen.novelty.pool_texts
    assert json.loads((run.path / "seed_scores.json").read_text())[-1]["id"] == "fresh"


def test_feedback_loop_replaces_seeds_then_extends_the_same_run(tmp_path):
    from tunesmith.driver import RunDriver
    from tunesmith.llm.client import LLM

    gen = Sedi(num_instructions=6, max_tokens=400, embedder=cheap_embed)
    run = RunDriver.open(tmp_path / "r", method="sedi", config={})
    llm = LLM(FakeBackend(responses=responder))
    first = gen.run(SEEDS, llm, run)
    new = SeedTask(
        id="fresh", instruction="Invent a board game that teaches fractions to children."
    )
    (evicted,) = gen.replace_seeds([new])
    replaced_at = gen.state.rounds
    summary = gen.extend(6, llm, run)
    assert summary["kept_instructions"] >= first["kept_instructions"] + 6
    assert len(run.read_kept()) == summary["kept_instructions"]
    rounds = [r.meta["round"] for r in run.read_kept()]
    assert rounds == sorted(rounds) and max(rounds) > 0
    later = [r for r in run.read_kept() if r.meta["round"] >= replaced_at]
    assert later and all(evicted not in r.meta["seed_ids"] for r in later)
    events = run.read_events()
    assert any(e["stage"] == "seed_replacement" and e["added"] == ["fresh"] for e in events)
    order = json.loads((run.path / "batches.json").read_text())
    assert sum(len(b) for b in order["batches"]) == summary["kept_instructions"]


def test_replace_seeds_screens_candidates_at_rouge_l_07_against_the_current_seeds(tmp_path):
    from tunesmith.driver import RunDriver
    from tunesmith.filters.rouge import rouge_l_f, rouge_tokenize
    from tunesmith.llm.client import LLM

    gen = Sedi(num_instructions=3, max_tokens=400, embedder=cheap_embed)
    run = RunDriver.open(tmp_path / "r", method="sedi", config={})
    gen.run(SEEDS, LLM(FakeBackend(responses=responder)), run)
    seed = SEEDS[9].instruction  # "Summarize the paragraph in one sentence."
    near = SeedTask(id="near", instruction=seed.replace("one sentence", "a single sentence"))
    fresh = SeedTask(id="fresh", instruction="Invent a board game that teaches fractions.")
    twin = SeedTask(id="twin", instruction="Invent a board game that teaches fractions!")
    score = rouge_l_f(rouge_tokenize(near.instruction), rouge_tokenize(seed))
    assert score > 0.7  # the reference value the screen must act on
    before = set(gen.table.rows)
    evicted = gen.replace_seeds([near, fresh, twin])
    assert set(gen.table.rows) == (before - set(evicted)) | {"fresh"} and len(evicted) == 1
    refused = {r["id"]: r for r in gen.last_refused}
    assert set(refused) == {"near", "twin"}  # twin: too close to the accepted "fresh"
    assert refused["near"]["rouge_l"] == pytest.approx(score) and refused["near"]["nearest"] == seed
    event = [e for e in run.read_events() if e["stage"] == "seed_replacement"][-1]
    assert event["added"] == ["fresh"] and {r["id"] for r in event["refused"]} == {"near", "twin"}


def test_replace_seeds_before_the_first_round_survives_into_the_run(tmp_path):
    from tunesmith.driver import RunDriver
    from tunesmith.llm.client import LLM

    gen = Sedi(num_instructions=3, max_tokens=400, embedder=cheap_embed)
    gen.setup_seeds(SEEDS)
    new = SeedTask(id="fresh", instruction="Invent a board game that teaches fractions.")
    assert gen.replace_seeds([new]) == []  # nothing has a score yet: nothing to evict
    run = RunDriver.open(tmp_path / "r", method="sedi", config={})
    gen.run(SEEDS, LLM(FakeBackend(responses=responder)), run)
    assert "fresh" in gen.table.rows and len(gen.table.rows) == len(SEEDS) + 1
    assert new.instruction in gen.novelty.pool_texts
    rows = json.loads((run.path / "seed_scores.json").read_text())
    assert "fresh" in {r["id"] for r in rows}
    assert any(e["stage"] == "seed_replacement" for e in run.read_events())
    with pytest.raises(Exception, match="setup_seeds"):
        Sedi().replace_seeds([new])


def test_a_replacement_with_the_sink_detached_logs_nothing_later(tmp_path):
    # the training feedback loop replays journaled replacements on resume with the sink detached
    from tunesmith.driver import RunDriver
    from tunesmith.llm.client import LLM

    gen = Sedi(num_instructions=3, max_tokens=400, embedder=cheap_embed)
    run = RunDriver.open(tmp_path / "r", method="sedi", config={})
    gen.run(SEEDS, LLM(FakeBackend(responses=responder)), run)
    sink, gen._sink = gen._sink, None
    gen.replace_seeds([SeedTask(id="replayed", instruction="Invent a board game for fractions.")])
    gen._sink = sink
    gen.replace_seeds([SeedTask(id="live", instruction="Plan a picnic for twelve people.")])
    added = [e["added"] for e in run.read_events() if e["stage"] == "seed_replacement"]
    assert added == [["live"]]
