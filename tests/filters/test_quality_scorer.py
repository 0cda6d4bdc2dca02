"""LLM quality scores: parsing real and hand-made judge replies, the stage end to end."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tunesmith.errors import ConfigError
from tunesmith.filters.quality_scorer import (
    QualityScorer,
    parse_first_rating,
    parse_score,
    parse_score_detail,
)
from tunesmith.llm.client import LLM
from tunesmith.llm.fake import FakeBackend
from tunesmith.records import Record

CAPTURED = Path(__file__).parent / "fixtures" / "judge_outputs"


def captured(name: str) -> str:
    return (CAPTURED / name).read_text(encoding="utf-8")


def sampled() -> dict[tuple[str, str, int], str]:
    rows = [json.loads(line) for line in (CAPTURED / "sampled_with_score.jsonl").open()]
    return {(r["rubric"], r["id"], r["seed"]): r["text"] for r in rows}


# Real replies of the embedded SmolLM2 to the packaged prompts (capture_judge_outputs.py).
def test_real_replies_without_a_score_line_are_parse_failures() -> None:
    for name in sorted(p.name for p in CAPTURED.glob("*.txt")):
        value, why = parse_score_detail(captured(name))
        assert value is None, name
        assert why == "no 'Score: n' line", name
    # "The rating is: 5-5", "The answer is 5.": no Score line, so no score, even if a digit shows
    assert "The rating is: 5-5" in captured("humpback_r1_t0.txt")
    assert "The answer is 5." in captured("humpback_r3_t0.txt")


def test_real_sampled_replies_mentioning_scores() -> None:
    rows = sampled()
    # "**\"Score: 5-15\"** ... **\"Score: 4-15\"**": the last Score is a range, not a 4
    assert parse_score_detail(rows[("alpagasus", "r3", 1)])[1].startswith(
        "last 'Score:' is a range"
    )
    # the model echoes the template's placeholder "Score: 1-5"
    value, why = parse_score_detail(rows[("alpagasus", "r3", 10)])
    assert value is None and "range" in why
    # "You will only get a score of 5 out of 5." has no "Score:" line
    assert parse_score(rows[("alpagasus", "r1", 9)]) is None
    # "with a score of 4.2 on a scale of 1-5 ... The score is a 5 out of 9": no "Score:" line
    assert parse_score(rows[("alpagasus", "r3", 6)]) is None
    assert all(parse_score(text) is None for text in rows.values())


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("The answer is relevant and complete.\nScore: 4", 4),
        ("Reasoning...\n\n**Score:** 5", 5),
        ("Score: 3/5 because it is vague", 3),
        ("score = 2 out of 5", 2),
        ("Final score: four.", 4),
        ("Score: [1]", 1),
        ("First I thought Score: 2. On reflection,\nScore: 5", 5),  # the LAST one counts
        ("Score: 4.0", 4),
        ("Score: 4\nScore: <1-5>", None),  # last Score is the placeholder
        ("Score: 6", None),
        ("Score: 0", None),
        ("Score: 4.5", None),
        ("Score: 8/10", None),
        ("Score: N/A", None),
        ("I would rate this answer a 5.", None),
        ("", None),
        ("Score: 5 ... (truncated", 5),
    ],
)
def test_hand_made_messy_cases(text: str, expected: int | None) -> None:
    assert parse_score(text) == expected


def test_custom_range() -> None:
    assert parse_score("Score: 9", low=0, high=10) == 9
    assert parse_score("Score: 9/10", low=0, high=10) == 9


def judge_replies(request, sample):  # type: ignore[no-untyped-def]
    user = request.messages[-1]["content"]
    if "Paris" in user:
        return "Accurate and focused on the request.\nScore: 5"
    if "Berlin" in user:
        return "The answer is wrong.\nScore: 1"
    return "I cannot decide how to rate this."


def test_quality_scorer_end_to_end_on_the_fake_backend() -> None:
    rows = [
        Record("a", "Capital of France?", output="Paris."),
        Record("b", "Capital of France?", output="Berlin."),
        Record("c", "Capital of Spain?", output="Madrid."),
    ]
    backend = FakeBackend(responses=judge_replies)
    stage = QualityScorer(rubric="humpback", min_score=4)
    result = stage.run(rows, LLM(backend))
    assert [r.id for r in result.kept] == ["a"]
    assert result.kept[0].scores["quality"] == 5
    assert result.kept[0].meta["quality_rationale"].endswith("Score: 5")
    rej = {r.record.id: r for r in result.rejected}
    assert rej["b"].score == 1 and rej["b"].reason == "quality 1 < 4"
    assert rej["c"].score is None and rej["c"].reason == "parse failure: no 'Score: n' line"
    assert rej["c"].record.scores["quality"] is None
    # the prompt carries the rubric and the row; greedy decoding
    req = backend.requests[0]
    assert "5-point scale" in req.messages[-1]["content"]
    assert "Paris." in req.messages[-1]["content"]
    assert req.messages[0]["role"] == "system" and req.params.temperature == 0.0


def test_alpagasus_rubric_keep_unparsed_and_bad_options() -> None:
    stage = QualityScorer(rubric="alpagasus", keep_unparsed=True)
    assert stage.min_score == 4.5  # the paper's threshold
    req = stage.format_input(Record("x", "Add 2 and 3.", input="numbers", output="5"))
    text = req.messages[-1]["content"]
    assert (
        "accuracy" in text
        and "Input:\nnumbers" in text
        and "Score: <0-5>" in text
        and "from 0" in text
    )
    result = stage.run([Record("x", "Add", output="5")], LLM(FakeBackend(responses=["hmm"])))
    assert len(result.kept) == 1 and result.kept[0].scores["quality"] is None
    with pytest.raises(ConfigError):
        QualityScorer(rubric="gpt4")
    with pytest.raises(ConfigError):
        QualityScorer(min_score=7)


def test_truncated_reply_is_named_in_the_reason() -> None:
    backend = FakeBackend(responses=["Long reasoning that never ends"], finish_reason="length")
    (rej,) = QualityScorer().run([Record("x", "Q", output="A")], LLM(backend)).rejected
    assert rej.reason.endswith("(reply cut at max_tokens)")


def test_templates_render_without_leftovers_and_are_replaceable(tmp_path: Path) -> None:
    for rubric in ("humpback", "alpagasus"):
        req = QualityScorer(rubric=rubric).format_input(Record("x", "Q?", output="A."))
        assert "{{" not in req.messages[-1]["content"] and "{%" not in req.messages[-1]["content"]
        assert "Input:" not in req.messages[-1]["content"]  # empty input section left out
    (tmp_path / "judge_score").mkdir()
    (tmp_path / "judge_score" / "humpback.j2").write_text("Rate {{ output }}", encoding="utf-8")
    (tmp_path / "judge_score" / "humpback_system.j2").write_text("", encoding="utf-8")
    req = QualityScorer(prompts_dir=tmp_path).format_input(Record("x", "Q?", output="A."))
    assert req.messages == ({"role": "user", "content": "Rate A."},)


@pytest.mark.integration
def test_quality_scorer_on_the_embedded_model(tmp_path: Path) -> None:
    """Every branch on real replies: a template makes the greedy model repeat a rating line, so
    the kept row, the two rejections by score (0 is a valid AlpaGasus rating) and the parse
    failure are each known in advance and checked."""
    pytest.importorskip("llama_cpp")
    from tunesmith.llm.embedded import EmbeddedBackend

    (tmp_path / "judge_score").mkdir()
    (tmp_path / "judge_score" / "alpagasus.j2").write_text('Repeat after me: "{{ instruction }}"\n')
    (tmp_path / "judge_score" / "alpagasus_system.j2").write_text("")
    llm = LLM(EmbeddedBackend(threads=1))
    rows = [Record(t, t, output="x") for t in ("Score: 5", "Score: 4", "Score: 0", "Good morning")]
    stage = QualityScorer(rubric="alpagasus", max_tokens=24, prompts_dir=tmp_path)
    result = stage.run(rows, llm)
    llm.close()
    assert [(r.id, r.scores["quality"]) for r in result.kept] == [("Score: 5", 5)]
    rej = {r.record.id: r for r in result.rejected}
    assert rej["Score: 4"].reason == "quality 4 < 4.5" and rej["Score: 4"].score == 4
    assert rej["Score: 0"].reason == "quality 0 < 4.5" and rej["Score: 0"].score == 0
    assert rej["Good morning"].reason.startswith("parse failure: no rating on the first line")
    assert rej["Good morning"].record.meta["quality_rationale"].startswith("Good morning")


def test_fractional_ratings_as_in_alpagasus() -> None:
    assert parse_score_detail("Score: 4.5", fractional=True) == (4.5, "")
    assert parse_score_detail("Score: 4.5") == (None, "score 4.5 is not a whole number")
    assert parse_score("Score: 4.5") is None
    stage = QualityScorer(rubric="alpagasus", fractional=True)
    assert stage.min_score == 4.5
    assert "halves" in stage.format_input(Record("x", "Q", output="A")).messages[-1]["content"]
    assert (
        "halves"
        not in QualityScorer(rubric="alpagasus")
        .format_input(Record("x", "Q", output="A"))
        .messages[-1]["content"]
    )
    rows = [Record("a", "Q", output="A"), Record("b", "Q", output="B")]
    replies = FakeBackend(
        responses=lambda req, i: (
            "Score: 4.5" if "Response:\nA\n" in req.messages[-1]["content"] else "Score: 4"
        )
    )
    result = stage.run(rows, LLM(replies))
    assert [r.id for r in result.kept] == ["a"] and result.kept[0].scores["quality"] == 4.5
    assert result.rejected[0].reason == "quality 4.0 < 4.5"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # what the AlpaGasus prompt asks for: the rating first; a later mention never overrides
        ("Score: 4\nThe answer is right; a Score: 2 would be unfair.", 4),
        ("4", 4),  # a bare rating on the first line
        ("4/5\nAccurate.", 4),
        ("**Rating:** 3\nPartly right.", 3),
        ("0\nThe response is wrong.", 0),  # 0 is on the paper's scale
        ("Score: 0", 0),
        ("Here is my rating.\nScore: 3\nbecause a Score: 1 is too low", 3),  # first Score:
        ("1. The answer is accurate.\n2. It is short.", None),  # a list, not a rating
        ("Score: 6", None),
        ("Score: 1-5", None),
        ("The response is accurate.", None),
        ("", None),
    ],
)
def test_alpagasus_parses_the_first_rating_on_its_0_to_5_scale(
    text: str, expected: int | None
) -> None:
    assert parse_first_rating(text)[0] == expected


def test_each_rubric_parses_what_its_prompt_asks_for() -> None:
    reply = "Score: 4\nThe answer is right; a Score: 2 would be unfair."
    rows = [Record("a", "Q", output="A")]
    alpagasus = QualityScorer(rubric="alpagasus", min_score=4)
    (kept,) = alpagasus.run(rows, LLM(FakeBackend(responses=[reply]))).kept
    assert kept.scores["quality"] == 4
    # Humpback asks for the score last: its own rule reads the last one
    humpback = QualityScorer(rubric="humpback", min_score=1)
    (kept,) = humpback.run(rows, LLM(FakeBackend(responses=[reply]))).kept
    assert kept.scores["quality"] == 2
    zero = QualityScorer(rubric="alpagasus").run(rows, LLM(FakeBackend(responses=["0"])))
    assert zero.rejected[0].reason == "quality 0 < 4.5"  # a score, not a parse failure
    with pytest.raises(ConfigError):
        QualityScorer(rubric="humpback", min_score=0)
    assert QualityScorer(rubric="alpagasus", min_score=0).min_score == 0
