"""Self-Instruct on the scripted fake teacher: prompts, sampling, stages, run folder, resume."""

from __future__ import annotations

import json
import random
import re

from tests.generate.fakes import cheap_embed, responder
from tunesmith.generate.loop import LoopState
from tunesmith.generate.pipeline import run_generation
from tunesmith.generate.seeds import load_seeds
from tunesmith.generate.self_instruct import InstructionBootstrapper
from tunesmith.generate.self_instruct_instances import ClassificationIdentifier, InstanceGenerator
from tunesmith.llm.factory import LLMConfig
from tunesmith.llm.fake import FakeBackend
from tunesmith.records import Record

SEEDS = load_seeds()


def test_bootstrap_prompt_has_8_numbered_instructions_and_open_number():
    boot = InstructionBootstrapper()
    boot.seeds = SEEDS
    plan = boot.build_prompt(random.Random(0), LoopState())
    lines = plan.text.splitlines()
    assert lines[-1] == "9." and not plan.text.endswith("\n")
    assert [int(m.group(1)) for m in (re.match(r"(\d+)\. ", x) for x in lines[1:-1])] == list(
        range(1, 9)
    )
    assert len(plan.seed_ids) == 8 and plan.machine_ids == []


def test_two_machine_instructions_join_once_they_exist():
    boot = InstructionBootstrapper()
    boot.seeds = SEEDS
    machine = [
        Record(id=f"m{i}", instruction=f"Machine task number {i} for testing") for i in range(5)
    ]
    plan = boot.build_prompt(random.Random(1), LoopState(kept=machine))
    assert len(plan.seed_ids) == 6 and len(plan.machine_ids) == 2
    shown = [x.split(". ", 1)[1] for x in plan.text.splitlines()[1:-1]]
    assert sum(s.startswith("Machine task") for s in shown) == 2


def test_sampling_params_match_the_paper():
    p = InstructionBootstrapper().sampling_params(0, 0)
    assert (p.temperature, p.top_p, p.presence_penalty, p.max_tokens) == (0.7, 0.5, 2.0, 1024)
    assert p.stop == ("\n\n", "\n16", "16.", "16 .")
    clf = ClassificationIdentifier().format_input(Record(id="a", instruction="Is it spam?"))
    assert (clf.params.temperature, clf.params.max_tokens, clf.params.stop) == (
        0.0,
        3,
        ("\n", "Task"),
    )
    assert clf.prompt.endswith("Task: Is it spam?\nIs it classification?")
    rec = Record(id="a", instruction="Sort it.", meta={"is_classification": True})
    inst = InstanceGenerator().format_input(rec)
    assert (inst.params.max_tokens, inst.params.presence_penalty, inst.params.stop) == (
        300,
        1.5,
        ("Example 6", "Task:"),
    )
    assert "Class label:" in inst.prompt and inst.prompt.endswith("Task: Sort it.\n")
    assert (
        InstanceGenerator().format_input(rec.with_meta(is_classification=False)).params.max_tokens
        == 350
    )


def test_classifier_few_shot_has_about_30_lines():
    prompt = ClassificationIdentifier().format_input(Record(id="a", instruction="x")).prompt
    assert (
        prompt.count("Is it classification? Yes") + prompt.count("Is it classification? No") == 30
    )


def _run(tmp_path, name="run", n=12, backend=None, **params):
    backend = backend or FakeBackend(responses=responder)
    run = run_generation(
        "self-instruct",
        seeds=None,
        out=tmp_path / name,
        config=LLMConfig(backend="fake", cache_path=str(tmp_path / f"{name}.sqlite")),
        params={"num_instructions": n, "prompts_per_batch": 3, **params},
        backend=backend,
    )
    return run, backend


def test_end_to_end_writes_records_events_rejections_and_summary(tmp_path):
    run, backend = _run(tmp_path)
    kept = run.read_kept()
    assert kept and all(r.output and r.meta["method"] == "self_instruct" for r in kept)
    assert all(len(r.meta["seed_ids"]) + len(r.meta["machine_ids"]) == 8 for r in kept)
    assert {"is_classification", "instruction_id", "prompts"} <= set(kept[0].meta)
    assert "self_instruct/bootstrap" in run.manifest["prompts"]
    events = run.read_events()
    boot = [e for e in events if e["stage"] == "bootstrap"]
    assert boot and all(
        k in boot[-1]
        for k in ("generated", "kept", "calls", "prompt_tokens", "completion_tokens", "cost_usd")
    )
    assert [e["kept"] for e in boot] == sorted(e["kept"] for e in boot)
    summary = run.manifest["summary"]
    assert summary["kept_instructions"] >= 12 and summary["calls"] == backend.calls
    assert summary["calls_per_kept"] == backend.calls / summary["kept_instructions"]
    # kept = instructions with at least one instance, as the console and compare count them
    assert summary["kept_instructions"] == len({r.meta["instruction_id"] for r in kept})
    assert summary["instructions_bootstrapped"] >= summary["kept_instructions"]
    assert run.manifest["status"] == "done"
    stages = {r["rejected_by"] for r in run.read_rejected()}
    assert "rouge_l" in stages or "length" in stages or "parse" in stages


def test_rerun_into_the_same_folder_makes_no_calls_and_no_duplicates(tmp_path):
    run, first = _run(tmp_path)
    rows = run.kept_path.read_text().splitlines()
    rejected = run.rejected_path.read_text().splitlines()
    n_events = len(run.read_events())
    again, second = _run(tmp_path)
    assert second.calls == 0
    assert again.kept_path.read_text().splitlines() == rows
    assert again.rejected_path.read_text().splitlines() == rejected
    assert len(again.read_events()) == n_events
    assert again.manifest["summary"]["calls"] == first.calls and again.manifest["resumed"] == 1


def test_rouge_filter_rejects_repeats_and_records_score(tmp_path):
    # the teacher always proposes the same two instructions: only the first round keeps them
    text = " Describe the climate of a desert region in detail.\n10. Describe the climate of a desert region in depth."
    run, _ = _run(tmp_path, backend=FakeBackend(responses=[text]), n=5, instances=False)
    rows = [r for r in run.read_rejected() if r["rejected_by"] == "rouge_l"]
    assert rows and all(r["score"] > 0.7 for r in rows)
    (kept,) = [json.loads(x) for x in run.kept_path.read_text().splitlines()]
    assert kept["scores"]["rouge_l_max"] <= 0.7 and kept["output"] == ""


def test_resume_with_other_options_is_refused_but_a_larger_target_extends(tmp_path):
    import pytest

    from tunesmith.errors import ConfigError

    run, first = _run(tmp_path, n=6)
    with pytest.raises(ConfigError, match=r"different 'params.max_tokens' \(None there, 100 now\)"):
        _run(tmp_path, n=6, max_tokens=100)
    kept_before = run.kept_path.read_text().splitlines()
    bigger, second = _run(tmp_path, n=15)
    after = bigger.kept_path.read_text().splitlines()
    assert after[: len(kept_before)] == kept_before and len(after) > len(kept_before)
    assert second.calls > 0 and bigger.manifest["summary"]["calls"] == first.calls + second.calls


def test_top_k_neighbours_and_mean_are_stored_like_the_paper(tmp_path):
    run, _ = _run(tmp_path, n=4, instances=False, top_k=10)
    row = run.read_kept()[0]
    top = row.scores["rouge_l_top"]
    assert len(top) == 10 and all(isinstance(t, str) and 0 <= f <= 1 for t, f in top)
    assert top[0][1] == row.scores["rouge_l_max"] and top[0][0] == row.scores["rouge_l_nearest"]
    assert 0 <= row.scores["rouge_l_mean"] <= row.scores["rouge_l_max"]


def test_budget_stop_then_resume_with_a_larger_budget(tmp_path):
    import pytest

    from tunesmith.errors import BudgetExceeded

    def go(max_calls):
        backend = FakeBackend(responses=responder)
        config = LLMConfig(
            backend="fake", cache_path=str(tmp_path / "c.sqlite"), max_calls=max_calls
        )
        run = run_generation(
            "sedi",
            seeds=None,
            out=tmp_path / "run",
            config=config,
            params={"num_instructions": 12, "max_tokens": 500, "embedder": cheap_embed},
            backend=backend,
        )
        return run, backend

    with pytest.raises(BudgetExceeded):
        go(3)
    manifest = json.loads((tmp_path / "run" / "manifest.json").read_text())
    assert manifest["status"] == "stopped (budget)"
    run, backend = go(None)
    assert (
        run.manifest["status"] == "done" and run.manifest["summary"]["calls"] == 3 + backend.calls
    )
    ids = [r.id for r in run.read_kept()]
    assert len(ids) == len(set(ids)) >= 12


def test_instance_generator_expands_and_rejects_with_scores():
    from tunesmith.llm.base import Completion
    from tunesmith.stages import Rejected

    gen = InstanceGenerator()
    clf = Record(id="t1", instruction="Label it.", meta={"is_classification": True})
    out = gen.expand(Completion("Class label: A\nX: same\nClass label: B\nX: same\n"), clf)
    assert isinstance(out, Rejected) and out.score == 2
    assert out.reason == "same input with different outputs"
    plain = Record(id="t2", instruction="Double it.", meta={"is_classification": False})
    recs = gen.expand(Completion("Example 1\nN: 2\nOutput: 4\nExample 2\nN: 5\nOutput: 10"), plain)
    assert not isinstance(recs, Rejected)
    assert [(r.input, r.output) for r in recs] == [("N: 2", "4"), ("N: 5", "10")]
    assert len({r.id for r in recs}) == 2 and all(r.meta["instruction_id"] == "t2" for r in recs)
    assert recs == gen.expand(
        Completion("Example 1\nN: 2\nOutput: 4\nExample 2\nN: 5\nOutput: 10"), plain
    )


# -- defaults that follow the reference code (issue 9.6) ---------------------------------------
def _rejected_by(run):
    return {r["instruction"]: (r["rejected_by"], r["reason"]) for r in run.read_rejected()}


def test_a_response_cut_at_max_tokens_is_dropped_whole(tmp_path):
    text = " Describe the climate of a desert region in detail.\n10. Name three rivers in Asia and their sources."
    backend = FakeBackend(responses=[text], finish_reason="length")
    run, _ = _run(tmp_path, backend=backend, n=5, instances=False, max_rounds=1)
    assert run.read_kept() == []
    rows = _rejected_by(run)
    assert rows["Describe the climate of a desert region in detail."][1] == "truncated response"
    # drop_last (the paper's intent) stays available as an opt-in
    opt, _ = _run(tmp_path, "opt", backend=FakeBackend(responses=[text], finish_reason="length"),
                  n=5, instances=False, max_rounds=1, truncation="drop_last")  # fmt: skip
    assert [r.instruction for r in opt.read_kept()] == [
        "Describe the climate of a desert region in detail."
    ]


def test_lower_case_write_a_program_is_capitalised_then_caught(tmp_path):
    text = " write a program that prints the first ten prime numbers.\n10. list three ways to save water at home every day."
    run, _ = _run(tmp_path, backend=FakeBackend(responses=[text]), n=5, instances=False, max_rounds=1)  # fmt: skip
    rows = _rejected_by(run)
    assert rows["Write a program that prints the first ten prime numbers."][0] == "write_program"
    assert [r.instruction for r in run.read_kept()] == [
        "List three ways to save water at home every day."
    ]


def test_classification_only_compares_with_the_classification_seeds_only(tmp_path):
    clf = [s for s in SEEDS if s.is_classification]
    other = next(s for s in SEEDS if s.instruction.startswith("Summarize the paragraph"))
    # a copy of a non-classification seed is new to the classification pool; a copy of a
    # classification seed is not
    text = f" {other.instruction}\n10. {clf[0].instruction}"
    run, backend = _run(tmp_path, backend=FakeBackend(responses=[text]), n=5, instances=False,
                        max_rounds=1, classification_only=True)  # fmt: skip
    (kept,) = run.read_kept()
    assert kept.instruction == other.instruction
    assert kept.scores["rouge_l_nearest"] in {s.instruction for s in clf}
    assert _rejected_by(run)[clf[0].instruction][0] == "rouge_l"
    shown = {s.instruction for s in SEEDS if s.instruction in backend.requests[0].prompt}
    assert shown and shown <= {s.instruction for s in clf}
