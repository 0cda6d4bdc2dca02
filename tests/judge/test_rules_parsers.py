"""The verdict rules on hand-made verdicts and every parser on messy real-looking replies."""

from __future__ import annotations

import math

import pytest

from tunesmith.errors import ConfigError
from tunesmith.judge import rules
from tunesmith.judge.parsers import (
    FAILURE,
    parse_first_token_preference,
    parse_grade,
    parse_score_pair,
    parse_verdict,
)
from tunesmith.judge.spec import load_judge, packaged_judges
from tunesmith.llm.base import Completion

PAIRWISE = load_judge("pairwise_both_orders")
SCORES = load_judge("score_pair_both_orders")
GRADE = load_judge("single_grade")
LOGPROB = load_judge("preference_logprob")


def c(text: str, top: list[dict[str, float]] | None = None) -> Completion:
    return Completion(text=text, top_logprobs=top)


# -- rules ---------------------------------------------------------------------------------------
# Preferences are from the model's side: 2 = model wins, 1 = baseline wins, 1.5 = tie.
@pytest.mark.parametrize(
    ("order_1", "order_2", "expected"),
    [
        (2.0, 2.0, 2.0),  # agree: win
        (1.0, 1.0, 1.0),  # agree: lose
        (1.5, 1.5, 1.5),  # agree: tie
        (2.0, 1.0, 1.5),  # disagree -> tie
        (2.0, 1.5, 1.5),  # win vs tie also disagrees -> tie (MT-bench)
        (1.0, 1.5, 1.5),
    ],
)
def test_mt_bench_rule(order_1: float, order_2: float, expected: float) -> None:
    assert rules.mt_bench([order_1, order_2]) == expected


@pytest.mark.parametrize(
    ("order_1", "order_2", "expected"),
    [
        (2.0, 2.0, 2.0),  # wins both: Win
        (2.0, 1.5, 2.0),  # wins one, ties the other: Win
        (1.5, 1.5, 1.5),  # ties both: Tie
        (2.0, 1.0, 1.5),  # wins one, loses one: Tie
        (1.5, 1.0, 1.0),  # ties one, loses one: Lose
        (1.0, 1.0, 1.0),
    ],
)
def test_sedi_rule(order_1: float, order_2: float, expected: float) -> None:
    assert rules.sedi([order_1, order_2]) == expected
    assert rules.sedi([order_2, order_1]) == expected


def test_for_model_maps_swapped_orders_back() -> None:
    assert rules.for_model(2.0, model_is_second=True) == 2.0
    assert rules.for_model(2.0, model_is_second=False) == 1.0
    assert rules.for_model(1.2, model_is_second=False) == pytest.approx(1.8)


# -- verdict parser --------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("text", "pref"),
    [
        ("Reply B is more thorough.\n\n[[B]]", 2.0),
        ("I prefer A. [[A]]", 1.0),
        ("Both are fine.\n[[tie]]", 1.5),
        ("[[C]]", 1.5),
        ("At first [[A]] seemed right but on reflection\n[[B]]", 2.0),  # the last one counts
        ("Reply A answers the question.\nVerdict: A", 1.0),  # missing brackets
        ("The answer is clear.\nFinal verdict: [B]", 2.0),
        ("...\n**A**", 1.0),
        ("Assistant B is better overall.", 2.0),
        ("They are equally good, so it's a tie.", 1.5),
        # SmolLM2-135M's real replies to a judge prompt
        ("The sky is a (B)\n\nThe answer is (B)", 2.0),
        ('You chose to answer the question better with the answer "B" as your choice', 2.0),
        ("You chose to answer the question better with B.", 2.0),
        ("I prefer A over B.", 1.0),
    ],
)
def test_verdict_parser_on_messy_replies(text: str, pref: float) -> None:
    assert parse_verdict(c(text), PAIRWISE).pref == pref


@pytest.mark.parametrize(
    "text",
    [
        "Both have merits.",  # prose, no verdict
        "Verdict: A or B, hard to say",  # both identifiers
        "",
        "[[D]]",
        "Reply A: Hello!\n\nReply B: Hi there, how",  # SmolLM2 echoing the prompt
        "The fruit I mentioned is the Banana.",
        "The better answer is a matter of taste.",  # lowercase 'a' names no output
    ],
)
def test_verdict_parser_failures_are_reported(text: str) -> None:
    vote = parse_verdict(c(text), PAIRWISE)
    assert vote.pref is None and vote.reason.startswith(FAILURE)


# -- score pair ------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("text", "scores"),
    [
        ("8 7\nAssistant 1 is more precise.", (8.0, 7.0)),
        ("7.5 9\nbecause", (7.5, 9.0)),
        ("Scores: 8/10, 6/10", (8.0, 6.0)),
        ("Assistant 1: 6\nAssistant 2: 6\nBoth ok.", (6.0, 6.0)),
        ("Here is my evaluation.\nAssistant 2 score: 9\nAssistant 1 score: 4", (4.0, 9.0)),
        ("Assistant 1 received a score of 8, while Assistant 2 received 6.", (8.0, 6.0)),
    ],
)
def test_score_pair_parser(text: str, scores: tuple[float, float]) -> None:
    vote = parse_score_pair(c(text), SCORES)
    assert vote.scores == scores
    s1, s2 = scores
    assert vote.pref == (1.5 if s1 == s2 else 2.0 if s2 > s1 else 1.0)


@pytest.mark.parametrize(
    "text",
    [
        "Both answers are good.",
        "8\nonly one",
        "11 7\n",
        "0 5",
        # SmolLM2-135M echoing the prompt instead of scoring
        "[Question]\nA fruit\n[Assistant 1's answer]\nA fruit\n[Assistant 2's answer]\nA fruit",
    ],
)
def test_score_pair_failures(text: str) -> None:
    vote = parse_score_pair(c(text), SCORES)
    assert vote.pref is None and vote.reason.startswith(FAILURE)


# -- grade -----------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("text", "score"),
    [
        ("Good answer.\nRating: [[7]]", 7.0),
        ("Rating: [[7.5]]", 7.5),
        ("Rating: 6", 6.0),  # missing brackets
        ("I would give it 8/10.", 8.0),
        ("Rating: [[3]] ... on second thought Rating: [[4]]", 4.0),
    ],
)
def test_grade_parser(text: str, score: float) -> None:
    assert parse_grade(c(text), GRADE).scores == (score,)


@pytest.mark.parametrize(
    "text",
    ["A fine answer.", "Rating: [[12]]", "Rating: [[0]]", "The assistant's answer is 5."],
)
def test_grade_failures(text: str) -> None:
    vote = parse_grade(c(text), GRADE)
    assert not vote.ok and vote.reason.startswith(FAILURE)


# -- first-token preference ------------------------------------------------------------------------
def test_logprob_preference_is_two_minus_p_first() -> None:
    top = [{"m": math.log(0.6), " M": math.log(0.2), "The": math.log(0.1)}]
    vote = parse_first_token_preference(c("m", top), LOGPROB)
    # P(first) renormalized over the two identifiers: 0.6 / 0.8 = 0.75 -> 2 - 0.75
    assert vote.pref == pytest.approx(1.25)


def test_logprob_preference_sums_token_variants_and_keeps_case() -> None:
    top = [{"M": math.log(0.5), " M": math.log(0.2), "**m": math.log(0.1), "x": -1.0}]
    vote = parse_first_token_preference(c("M", top), LOGPROB)
    assert vote.pref == pytest.approx(2 - 0.1 / 0.8)


@pytest.mark.parametrize(("text", "pref"), [("M", 2.0), (" m\n", 1.0), ("**M** is better", 2.0)])
def test_logprob_preference_falls_back_to_text(text: str, pref: float) -> None:
    assert parse_first_token_preference(c(text), LOGPROB).pref == pref


@pytest.mark.parametrize("text", ["m or M", "Model M is better", ""])
def test_logprob_preference_failures(text: str) -> None:
    vote = parse_first_token_preference(c(text, [{"The": -0.1}]), LOGPROB)
    assert vote.pref is None and vote.reason.startswith(FAILURE)


# -- the judge files -------------------------------------------------------------------------------
@pytest.mark.parametrize("name", packaged_judges())
def test_every_packaged_judge_renders_without_leftovers(name: str) -> None:
    spec = load_judge(name)
    req = spec.request(
        instruction="INSTR", input="INP", output_1="OUT1", output_2="OUT2", output="OUT",
        reference="REF",
    )  # fmt: skip
    text = "\n".join(m["content"] for m in req.messages or ())
    assert "INSTR" in text and "INP" in text
    assert "{{" not in text and "{%" not in text
    if spec.is_pairwise:
        assert "OUT1" in text and "OUT2" in text
    else:
        assert "OUT" in text and "REF" in text


def test_user_judge_is_two_files(tmp_path) -> None:
    (tmp_path / "mine.j2").write_text(
        "Which is better, {{ id_1 }} or {{ id_2 }}?\n{{ output_1 }}\n{{ output_2 }}\n{{ instruction }}"
    )
    (tmp_path / "mine.yaml").write_text(
        "prompt: mine.j2\nparser: verdict\nrule: mt_bench\nboth_orders: true\n"
    )
    spec = load_judge(tmp_path / "mine.yaml")
    assert spec.both_orders and spec.system is None
    assert (
        "Which is better, A or B?"
        in spec.request(instruction="i", input="", output_1="x", output_2="y").messages[0][
            "content"
        ]
    )


def test_bad_judge_files_are_one_line_errors(tmp_path) -> None:
    with pytest.raises(ConfigError, match="did you mean 'pairwise_both_orders'"):
        load_judge("pairwise_both_order")
    (tmp_path / "j.yaml").write_text("prompt: x.j2\nparser: verdikt\nrule: mt_bench\n")
    with pytest.raises(ConfigError, match="did you mean 'verdict'"):
        load_judge(tmp_path / "j.yaml")
    (tmp_path / "k.yaml").write_text(
        "prompt: x.j2\nparser: verdict\nrule: mt_bench\ntemprature: 1\n"
    )
    with pytest.raises(ConfigError, match="unknown key 'temprature'"):
        load_judge(tmp_path / "k.yaml")
    (tmp_path / "l.yaml").write_text("prompt: missing.j2\nparser: verdict\nrule: mt_bench\n")
    with pytest.raises(ConfigError, match=r"missing\.j2"):
        load_judge(tmp_path / "l.yaml")
