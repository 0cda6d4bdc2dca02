"""Reflection-Tuning end to end on the fake backend: modes, failures kept, selective choice."""

from __future__ import annotations

import pytest

from tests.llm.logprob_helpers import FakeLogProb
from tunesmith.jobs import run_record_job
from tunesmith.llm.base import Request
from tunesmith.llm.client import LLM
from tunesmith.llm.factory import LLMConfig
from tunesmith.llm.fake import FakeBackend
from tunesmith.prompts import PromptTemplate
from tunesmith.records import Record
from tunesmith.refine.reflection_stage import ReflectionStage, select_variant

ROWS = [
    Record(id="a", instruction="Name a color.", output="Red."),
    Record(id="b", instruction="Add 2 and 2.", input="numbers", output="4"),
    Record(id="c", instruction="Say hi.", output="Hi."),
]


def responder(request: Request, sample: int) -> str:
    user = request.messages[-1]["content"]  # type: ignore[index]
    if "Say hi." in user:  # the model ignores the format for this row
        return "Sure! Hi there, I think the answer is fine."
    if "[New Instruction]" in user:
        topic = "colors" if "color" in user else "arithmetic"
        return (
            f"1. The instruction is too simple.\n[New Instruction] Explain {topic} in depth. [End]"
            f"\n[New Answer] A detailed answer about {topic}. [End]"
        )
    return "The answer lacks detail.\n**[Better Answer]**: A much better answer.\n[End]"


def test_templates_render_without_leftovers() -> None:
    for name in ("system", "instruction", "response"):
        text = PromptTemplate("reflection", name).render(
            instruction="I",
            input="X",
            output="O",
            instruction_marker="New Instruction",
            answer_marker="New Answer",
            response_marker="Better Answer",
            end_marker="End",
        )
        assert "{{" not in text and "{%" not in text


def test_request_shape_is_picky_checker_at_temperature_zero() -> None:
    req = ReflectionStage().format_input(ROWS[1], "instruction")
    assert req.params.temperature == 0.0
    assert req.messages is not None and req.messages[0]["role"] == "system"
    user = req.messages[1]["content"]
    for word in ("complexity", "ambiguous", "knowledge", "reasoning", "helpfulness", "accuracy"):
        assert word in user.lower()
    assert "numbers" in user and "[New Instruction]" in user and "[New Answer]" in user


def test_instruction_mode_new_pair_and_failed_row_kept() -> None:
    backend = FakeBackend(responses=responder)
    res = ReflectionStage(mode="instruction").run(ROWS, LLM(backend))
    assert not res.rejected and [r.id for r in res.kept] == ["a", "b", "c"]
    a, b, c = res.kept
    assert a.instruction == "Explain colors in depth." and a.output.startswith("A detailed")
    assert b.input == "" and b.meta["reflection"]["original"]["input"] == "numbers"
    assert a.scores["reflected"] == 1.0 and a.meta["reflection"]["status"] == "reflected"
    # the failed row keeps its original text, with the reason on the record
    assert (c.instruction, c.output) == ("Say hi.", "Hi.")
    assert c.meta["reflection"]["status"] == "failed" and c.scores["reflected"] == 0.0
    assert "no [New Instruction]" in c.meta["reflection"]["failure"]
    assert backend.calls == 3


def test_response_and_both_modes() -> None:
    res = ReflectionStage(mode="response").run(ROWS, LLM(FakeBackend(responses=responder)))
    assert (
        res.kept[0].output == "A much better answer." and res.kept[0].instruction == "Name a color."
    )
    assert res.kept[1].input == "numbers"
    backend = FakeBackend(responses=responder)
    res = ReflectionStage(mode="both").run(ROWS, LLM(backend))
    a = res.kept[0]
    assert a.instruction == "Explain colors in depth." and a.output == "A much better answer."
    assert a.meta["reflection"]["variant"] == "both"
    assert backend.calls == 3 + 2  # only the two parsed pairs get a second call
    assert res.kept[2].meta["reflection"]["status"] == "failed"


class TableScorer(FakeLogProb):
    """Unconditioned ppl 10; conditioned ppl chosen so IFD / r-IFD are known per variant.

    IFD by instruction: "colors" 0.8 (harder), "arithmetic" 0.4 (easier), originals 0.5.
    r-IFD by answer: better answer 0.3, new detailed answer 0.6, original answers 0.7.
    """

    def ppl(self, prompt: str, text: str) -> float | None:
        if not prompt:
            return 10.0
        if text in ("Red.", "4", "Hi.") or text.startswith("A "):  # forward: text = answer
            return 10 * (0.8 if "colors" in prompt else 0.4 if "arithmetic" in prompt else 0.5)
        # reverse: text = instruction, the prompt holds the answer
        return 10 * (0.3 if "better" in prompt else 0.6 if "detailed" in prompt else 0.7)


def selective(fallback: bool) -> tuple[dict[str, Record], list[str]]:
    stage = ReflectionStage(selective=True, fallback=fallback, scorer=TableScorer())  # type: ignore[arg-type]
    res = stage.run(ROWS, LLM(FakeBackend(responses=responder)))
    rows = {r.id: r for r in [*res.kept, *(x.record for x in res.rejected)]}
    return rows, [r.id for r in res.kept]


def test_selective_keeps_rule_choice_and_logs_scores() -> None:
    rows, kept = selective(fallback=False)
    assert kept == ["a", "b"]
    a, b, c = rows["a"], rows["b"], rows["c"]
    assert a.meta["reflection"]["variant"] == "both"
    assert (a.instruction, a.output) == ("Explain colors in depth.", "A much better answer.")
    assert a.scores["ifd"] == 0.8 and abs(a.scores["rifd"] - 0.3) < 1e-12
    assert b.meta["reflection"]["variant"] == "response" and b.instruction == "Add 2 and 2."
    assert b.output == "A much better answer." and b.input == "numbers"
    assert set(a.scores["reflection_ifd"]) == {"original", "instruction", "response", "both"}
    assert a.meta["reflection"]["variants"]["instruction"]["instruction"].startswith("Explain")
    # row c: every reflection failed -> only the original scored, rule drops it (as the script)
    assert set(c.scores["reflection_ifd"]) == {"original"}
    assert c.meta["reflection"]["status"] == "dropped" and c.instruction == "Say hi."
    assert c.meta["reflection"]["failures"]["instruction"].startswith("no [New Instruction]")


def test_selective_fallback_keeps_the_original() -> None:
    rows, kept = selective(fallback=True)
    assert kept == ["a", "b", "c"] and rows["c"].meta["reflection"]["variant"] == "original"
    assert rows["c"].scores["reflected"] == 0.0


def test_run_record_job_resume_makes_no_new_calls(tmp_path) -> None:
    backend = FakeBackend(responses=responder)
    cfg = LLMConfig(backend="fake", cache_path=str(tmp_path / "c.sqlite"))
    run = run_record_job(ReflectionStage(mode="response"), ROWS, out=tmp_path / "r", config=cfg,
                         backend=backend, batch_size=2)  # fmt: skip
    assert len(run.kept_ids()) == 3 and backend.calls == 3
    again = FakeBackend(responses=responder)
    run_record_job(ReflectionStage(mode="response"), ROWS, out=tmp_path / "r", config=cfg,
                   backend=again)  # fmt: skip
    assert again.calls == 0


@pytest.mark.integration
def test_selective_with_real_scorer_matches_direct_ifd() -> None:
    """The stored IFD table equals score_ifd on the same pairs with the real SmolLM2 scorer."""
    from tunesmith.filters.ifd import score_ifd
    from tunesmith.llm.logprob import make_logprob_model

    scorer = make_logprob_model("transformers", batch_size=8, threads=1)
    stage = ReflectionStage(selective=True, fallback=True)
    stage._scorer = scorer
    res = stage.run(ROWS[:2], LLM(FakeBackend(responses=responder)))
    rows = [*res.kept, *(x.record for x in res.rejected)]
    assert len(rows) == 2
    for rec in rows:
        table = rec.scores["reflection_ifd"]
        assert set(table) == {"original", "instruction", "response", "both"}
        variants = {
            "original": rec.meta["reflection"]["original"],
            **rec.meta["reflection"]["variants"],
        }
        for name, pair in variants.items():
            prompt = pair["instruction"] + (f"\n\n{pair['input']}" if pair["input"] else "")
            direct = score_ifd([(prompt, pair["output"])], scorer)[0]
            assert abs(table[name]["ifd"] - direct.ifd) < 1e-4
            assert abs(table[name]["rifd"] - direct.rifd) < 1e-4
        choice, _ = select_variant(
            {k: (v["ifd"], v["rifd"]) for k, v in table.items()}, fallback=True
        )
        assert rec.meta["reflection"]["variant"] == choice


LONG_ANSWER = "The river runs past the old mill, under the bridge and into the sea. " * 10


def long_answer_responder(request: Request, sample: int) -> str:
    if "[New Instruction]" in request.messages[-1]["content"]:  # type: ignore[index]
        return "I have no new instruction."  # instruction reflection fails
    return f"The answer is short.\n[Better Answer] {LONG_ANSWER.strip()} [End]"


@pytest.mark.integration
@pytest.mark.parametrize("runtime", ["transformers", "llama-cpp"])
def test_an_answer_too_long_to_score_is_not_picked_as_best(runtime: str) -> None:
    """Regression: the reverse prompt of a ~170-token answer fills a 64-token window, nothing is
    scored, and r-IFD came out 0, which the rule read as the best: the long answer won."""
    if runtime == "llama-cpp":
        pytest.importorskip("llama_cpp")
    from tunesmith.llm.logprob import make_logprob_model

    scorer = make_logprob_model(runtime, max_length=64, threads=1)
    stage = ReflectionStage(selective=True, scorer=scorer)
    rows = [Record("a", "Describe a river.", output="A river is water that flows.")]
    result = stage.run(rows, LLM(FakeBackend(responses=long_answer_responder)))
    (rej,) = result.rejected
    table = rej.record.scores["reflection_ifd"]
    assert table["response"]["rifd"] is None and table["original"]["rifd"] is not None
    why = rej.record.meta["reflection"]["missing_scores"]["response"]["rifd"]
    assert "fills the 64-token window" in why
    assert rej.reason == "no reflection improves the pair" and not result.kept


def test_a_bracketed_heading_inside_the_better_answer_is_kept_whole() -> None:
    """Regression: "[Verse 1]" ended the section, the answer became its first line and the row
    counted as reflected."""
    song = "[Verse 1]\nRain on the roof,\nsoft as a drum.\n\n[Chorus]\nSing, little rain."

    def songwriter(request: Request, sample: int) -> str:
        return f"The song is too short.\n[Better Answer]\n{song}\n[End]"

    stage = ReflectionStage(mode="response")
    rows = [Record("s", "Write a short song about rain.", output="Rain.")]
    (rec,) = stage.run(rows, LLM(FakeBackend(responses=songwriter))).kept
    assert rec.output == song and rec.meta["reflection"]["status"] == "reflected"
