"""Instruction backtranslation (Humpback): segmenting, the backward model, self-curation and its
iterations, the run folder, on the fake backend (the embedded model: test_backtranslation_e2e)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import shared_file
from tunesmith.errors import ConfigError, DataError
from tunesmith.generate.backtranslation_run import run_backtranslation
from tunesmith.generate.instruction_predictor import (
    InstructionPredictor,
    parse_instruction,
    reverse_pairs,
)
from tunesmith.generate.segments import SegmentRules, read_documents, segment, segment_records
from tunesmith.llm.base import Completion, Request
from tunesmith.llm.factory import LLMConfig
from tunesmith.llm.fake import FakeBackend
from tunesmith.prompts import PromptTemplate
from tunesmith.records import Record

PARA = "Compost improves soil structure and feeds the organisms that keep it healthy. "


def doc(n: int) -> str:
    return (PARA * 40)[:n].rsplit(" ", 1)[0] + "."


# -- segmenting ----------------------------------------------------------------------------------
def test_reference_bounds_keep_1000_to_2200_characters() -> None:
    rules = SegmentRules()
    assert segment(doc(1500), rules) == ([doc(1500)], "")
    assert segment(doc(900), rules)[1].endswith("< 1000")
    assert segment(doc(2400), rules)[1].endswith("> 2200")


def test_a_short_line_rejects_the_document_or_is_dropped() -> None:
    text = doc(1200) + "\n\nMenu\n\n" + doc(300)
    pieces, why = segment(text, SegmentRules())
    assert pieces == [] and "line under 5 characters ('Menu')" in why
    pieces, why = segment(text, SegmentRules(short_lines="drop"))
    assert why == "" and "Menu" not in pieces[0] and pieces[0].startswith(doc(1200))
    assert segment(text, SegmentRules(min_line_chars=0))[0] == [text]


def test_split_long_packs_paragraphs_within_the_bounds() -> None:
    text = "\n\n".join(doc(700) for _ in range(6))
    pieces, why = segment(text, SegmentRules(split_long=True))
    assert why == "" and len(pieces) == 2
    assert all(1000 <= len(p) <= 2200 for p in pieces)
    # nothing is invented or lost: the pieces are the paragraphs, in order
    assert "\n\n".join(pieces) == text


def test_segment_records_have_stable_ids_and_keep_rejected_documents() -> None:
    from tunesmith.generate.segments import Document

    docs = [Document(doc(1500), "web", 0), Document("too short", "web", 1),
            Document(doc(1500) + "\n", "web", 2)]  # fmt: skip
    kept, rejected = segment_records(docs, SegmentRules())
    again, _ = segment_records(docs, SegmentRules())
    assert [r.id for r in kept] == [r.id for r in again] and len(kept) == 1
    assert kept[0].instruction == "" and kept[0].output == doc(1500)
    assert kept[0].meta == {"source": "web", "row": 0, "method": "backtranslation", "segment": 0}
    assert [why for _, why in rejected] == [
        "9 characters < 1000",
        f"duplicate of segment {kept[0].id}",
    ]


def test_documents_from_jsonl_text_files_and_folders(tmp_path: Path) -> None:
    (tmp_path / "a.jsonl").write_text(json.dumps({"content": "first doc"}) + "\n")
    (tmp_path / "b.txt").write_text("second doc\n")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "c.json").write_text(json.dumps([{"text": "third"}, {"text": " "}]))
    docs = read_documents(tmp_path)
    assert [(d.text.strip(), d.source, d.row) for d in docs] == [
        ("first doc", "a", 0), ("second doc", "b", 0), ("third", "c", 0)]  # fmt: skip
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"body": "x"}) + "\n" + json.dumps({"title": "y"}) + "\n")
    with pytest.raises(DataError, match=r"bad.jsonl:2: no text column"):
        read_documents(bad)
    with pytest.raises(DataError, match=r"bad.jsonl:2: no text column \('body'\)"):
        read_documents(bad, text_field="body")
    with pytest.raises(DataError, match="no such file"):
        read_documents(tmp_path / "nope")


def test_documents_from_parquet(tmp_path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.table({"text": ["one", "two"]}), tmp_path / "d.parquet")
    assert [d.text for d in read_documents(tmp_path / "d.parquet")] == ["one", "two"]


# -- the backward model ------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("reply", "expected"),
    [
        ("Instruction: Explain how compost helps soil.", "Explain how compost helps soil."),
        ('"Explain how compost helps soil."', "Explain how compost helps soil."),
        ("### Instruction\nList three uses of compost.\n\nResponse: Compost ...",
         "List three uses of compost."),
        ("Task: Instruction writing is hard.", "Instruction writing is hard."),
        ("Write a guide to composting.\nAnswer: First, ...", "Write a guide to composting."),
    ],
)  # fmt: skip
def test_parse_instruction_on_messy_replies(reply: str, expected: str) -> None:
    assert parse_instruction(reply, doc(1200))[0] == expected


def test_parse_instruction_rejects_empty_cut_long_and_copied() -> None:
    assert parse_instruction("  ", doc(1200)) == (None, "empty instruction")
    assert (
        parse_instruction("Explain", doc(1200), truncated=True)[1]
        == "instruction cut at max_tokens"
    )
    assert "> 10" in parse_instruction("x" * 11, doc(1200), max_chars=10)[1]
    assert parse_instruction(doc(1200)[:300], doc(1200))[1] == "the instruction copies the text"


SEEDS = [
    Record(id=f"s{i}", instruction=f"Question {i}?", output=f"Answer number {i}.") for i in range(6)
] + [Record(id="s_in", instruction="Sum these.", input="2 3", output="5")]


def test_few_shot_prompt_shows_seed_pairs_as_earlier_turns() -> None:
    stage = InstructionPredictor(num_examples=3)
    stage.use_examples(SEEDS)
    target = Record(id="t1", instruction="", output=doc(1100))
    req = stage.format_input(target)
    roles = [m["role"] for m in req.messages or ()]
    assert roles == [
        "system",
        "user",
        "assistant",
        "user",
        "assistant",
        "user",
        "assistant",
        "user",
    ]
    shown = stage.examples_for(target)
    assert [m["content"] for m in (req.messages or ())[2:7:2]] == [e.instruction for e in shown]
    assert "s_in" not in {e.id for e in shown}  # seeds without an input are preferred
    assert (req.messages or ())[-1]["content"].endswith(doc(1100))
    # the choice depends on the row id and the seed only (resume-safe, order-free)
    assert shown == stage.examples_for(target)
    assert req.params.temperature == 0.0 and req.tag == "backtranslate"


def test_finetuned_mode_sends_the_text_alone_as_reverse_sft_trains_it() -> None:
    stage = InstructionPredictor(mode="finetuned")
    req = stage.format_input(Record(id="t", instruction="", output="Some text."))
    assert req.messages == ({"role": "user", "content": "Some text."},)
    rev = reverse_pairs(SEEDS)
    assert rev[0].instruction == "Answer number 0." and rev[0].output == "Question 0?"
    assert rev[-1].instruction == "5" and rev[-1].output == "Sum these.\n\n2 3"
    with pytest.raises(ConfigError):
        InstructionPredictor(mode="guess")


def test_format_output_keeps_the_original_instruction_and_the_examples() -> None:
    stage = InstructionPredictor(num_examples=2)
    stage.use_examples(SEEDS)
    rec = Record(id="t", instruction="Old one", output=doc(1000), scores={"x": 1})
    out = stage.format_output(Completion(text="Instruction: New one"), rec)
    assert isinstance(out, Record) and out.instruction == "New one" and out.scores == {}
    assert out.meta["original_instruction"] == "Old one"
    assert out.meta["backtranslation"]["examples"] == [e.id for e in stage.examples_for(rec)]


def test_prompts_render_without_leftovers() -> None:
    for name, variables in [("backward_system", {}), ("backward_user", {"response": "T"}),
                            ("system_seed", {}), ("system_augmented", {})]:  # fmt: skip
        text = PromptTemplate("backtranslation", name).render(**variables)
        assert text.strip() and "{{" not in text and "{%" not in text
    with pytest.raises(ConfigError):
        PromptTemplate("backtranslation", "backward_user").render()


# -- the whole method --------------------------------------------------------------------------------
def humpback_fake(scores: dict[str, int]) -> FakeBackend:
    """Backward requests get an instruction naming the segment; M0 rates by that name."""

    def respond(request: Request, sample: int) -> str:
        last = (request.messages or ())[-1]["content"]
        if request.tag == "backtranslate":
            return f"Instruction: Explain topic {last.split('topic ')[1].split(':')[0]}."
        topic = last.split("Explain topic ")[1].split(".")[0]
        return f"The answer is on target.\nScore: {scores.get(topic, 3)}"

    return FakeBackend(responses=respond)


def write_docs(path: Path, n: int) -> Path:
    rows = [{"text": f"About topic t{i}: " + doc(1200)} for i in range(n)]
    rows.append({"text": "too short"})
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_backtranslation_run_keeps_a5_and_reports_every_phase(tmp_path: Path) -> None:
    seeds = shared_file("dolly_3k_alpagasus", "dolly_3k.json")
    fake = humpback_fake({"t0": 5, "t1": 4, "t2": 5})
    run = run_backtranslation(write_docs(tmp_path / "docs.jsonl", 4), seeds=seeds,
                              out=tmp_path / "run", config=LLMConfig(backend="fake"),
                              backend=fake)  # fmt: skip
    kept = run.read_kept()
    assert sorted(r.instruction for r in kept) == ["Explain topic t0.", "Explain topic t2."]
    assert all(r.scores["humpback_m0"] == 5 and r.meta["humpback_tag"] == "augmented" for r in kept)
    assert (
        kept[0].meta["system"]
        == PromptTemplate("backtranslation", "system_augmented").render().strip()
    )
    rejected = {r["reason"] for r in run.read_rejected()}
    assert rejected == {"9 characters < 1000", "humpback_m0 4 < 5", "humpback_m0 3 < 5"}
    assert fake.calls == 8  # one backward request and one rating per segment
    summary = json.loads((run.path / "backtranslation.json").read_text())
    assert (summary["documents"], summary["segments"], summary["augmented_kept"]) == (5, 4, 2)
    phases = {p["phase"]: p for p in summary["phases"]}
    assert phases["backtranslate"]["calls"] == 4 and phases["curate_m0"]["calls"] == 4
    assert phases["curate_m0"]["kept"] == 2 and phases["curate_m0"]["rejected"] == 2
    assert len((run.path / "augment" / "kept.jsonl").read_text().splitlines()) == 4
    assert run.manifest["status"] == "done"
    assert "backtranslation/backward_user" in run.manifest["prompts"]


def test_two_iterations_recurate_every_candidate_with_m1(tmp_path: Path) -> None:
    seeds = shared_file("dolly_3k_alpagasus", "dolly_3k.json")
    m1 = LLMConfig(backend="fake", model="m1", options={"responses": ["Fine.\nScore: 5"]})
    run = run_backtranslation(
        write_docs(tmp_path / "docs.jsonl", 3), seeds=seeds, out=tmp_path / "run",
        config=LLMConfig(backend="fake"), backend=humpback_fake({"t0": 5}),
        params={"iterations": 2, "include_seeds": True}, curators=[m1],
    )  # fmt: skip
    first = [json.loads(x) for x in (run.path / "iterations/1/kept.jsonl").read_text().splitlines()]
    assert [r["instruction"] for r in first] == ["Explain topic t0."]
    kept = run.read_kept()
    augmented = [r for r in kept if r.meta["humpback_tag"] == "augmented"]
    seeded = [r for r in kept if r.meta["humpback_tag"] == "seed"]
    assert len(augmented) == 3 and len(seeded) == 2996  # M1 rates every candidate 5
    # scores of both rounds stay on the rows; the run's rejections are the last round's only
    assert {r.scores["humpback_m1"] for r in augmented} == {5}
    assert sorted(r.scores["humpback_m0"] for r in augmented) == [3, 3, 5]
    assert {r["rejected_by"] for r in run.read_rejected()} == {"segment"}
    assert seeded[0].meta["system"] != augmented[0].meta["system"]
    summary = json.loads((run.path / "backtranslation.json").read_text())
    assert [p["phase"] for p in summary["phases"]] == ["backtranslate", "curate_m0", "curate_m1"]
    assert summary["phases"][2]["calls"] == 3


def test_iteration_two_without_m1_or_trainer_is_refused(tmp_path: Path) -> None:
    seeds = shared_file("dolly_3k_alpagasus", "dolly_3k.json")
    with pytest.raises(ConfigError, match="iteration 2 needs M1"):
        run_backtranslation(write_docs(tmp_path / "d.jsonl", 1), seeds=seeds,
                            out=tmp_path / "run", config=LLMConfig(backend="fake"),
                            backend=humpback_fake({}), params={"iterations": 2})  # fmt: skip


def test_trainer_hook_gets_seed_plus_curated_tagged(tmp_path: Path) -> None:
    seeds = shared_file("dolly_3k_alpagasus", "dolly_3k.json")
    seen: list[tuple[int, int, set[str]]] = []

    def trainer(mix: list[Record], i: int) -> LLMConfig:
        seen.append((i, len(mix), {r.meta["humpback_tag"] for r in mix}))
        return LLMConfig(backend="fake", model=f"m{i}", options={"responses": ["Score: 5"]})

    run_backtranslation(write_docs(tmp_path / "d.jsonl", 2), seeds=seeds, out=tmp_path / "run",
                        config=LLMConfig(backend="fake"), backend=humpback_fake({"t1": 5}),
                        params={"iterations": 2}, trainer=trainer)  # fmt: skip
    assert seen == [(1, 2996 + 1, {"seed", "augmented"})]


def test_resume_refuses_other_settings_and_repeats_no_call(tmp_path: Path) -> None:
    seeds = shared_file("dolly_3k_alpagasus", "dolly_3k.json")
    docs = write_docs(tmp_path / "d.jsonl", 2)
    args = {"seeds": seeds, "out": tmp_path / "run", "config": LLMConfig(backend="fake")}
    run_backtranslation(docs, backend=humpback_fake({}), **args)
    again = humpback_fake({})
    run_backtranslation(docs, backend=again, **args)
    assert again.calls == 0
    with pytest.raises(ConfigError, match="min_score"):
        run_backtranslation(docs, backend=again, params={"min_score": 4}, **args)


def test_training_rows_keep_their_seed_or_augmented_system_prompt() -> None:
    """The tags reach SFT: the chat prompt of a tagged row opens with its system prompt."""
    transformers = pytest.importorskip("transformers")
    from tunesmith.generate.backtranslation import Backtranslation
    from tunesmith.llm.models import resolve_hf_model
    from tunesmith.train.data import prompt_and_response

    tok = transformers.AutoTokenizer.from_pretrained(resolve_hf_model(None))
    gen = Backtranslation()
    seed, augmented = gen.tag([SEEDS[0]], "seed")[0], gen.tag([SEEDS[1]], "augmented")[0]
    seed_prompt, response, _ = prompt_and_response(seed, tok, "chat")
    aug_prompt, _, _ = prompt_and_response(augmented, tok, "chat")
    assert seed.meta["system"] in seed_prompt and augmented.meta["system"] in aug_prompt
    assert seed.meta["system"] not in aug_prompt and response.startswith("Answer number 0.")
    plain, _, _ = prompt_and_response(SEEDS[0], tok, "chat")
    assert seed.meta["system"] not in plain
