"""The selective rule (Selective Reflection-Tuning, get_select_data.py) on hand-made score tuples:
every case checks the variant AND the branch the rule says it took."""

from __future__ import annotations

import pytest

from tunesmith.refine.reflection_stage import select_variant

ORI = (0.5, 0.6)  # (ifd, rifd)
HARDER_QA = "harder instruction; reflected answer lowers r-IFD"
HARDER_QA_INFEASIBLE = "harder instruction; both-reflected pair has IFD or r-IFD >= 1"
HARDER_NO_GAIN = "harder instruction; reflected answer does not lower r-IFD"
A_LOWERS = "instruction not harder; reflected answer lowers r-IFD"
A_INFEASIBLE = "instruction not harder; response-reflected pair has IFD or r-IFD >= 1"
NOTHING = "no reflection improves the pair"


@pytest.mark.parametrize(
    ("scores", "fallback", "expected", "branch"),
    [
        # harder Q; QA r-IFD below Q's; QA feasible -> both
        ({"instruction": (0.7, 0.5), "both": (0.8, 0.4), "response": (0.1, 0.1)}, False, "both",
         HARDER_QA),
        # harder Q; QA r-IFD below Q's but QA IFD >= 1 -> dropped
        ({"instruction": (0.7, 0.5), "both": (1.2, 0.4)}, False, None, HARDER_QA_INFEASIBLE),
        # harder Q; QA r-IFD below Q's but QA r-IFD >= 1 (Q's is even higher) -> dropped
        ({"instruction": (0.7, 1.5), "both": (0.8, 1.1)}, False, None, HARDER_QA_INFEASIBLE),
        # harder Q; QA does not lower r-IFD -> the script keeps nothing ...
        ({"instruction": (0.7, 0.5), "both": (0.8, 0.5)}, False, None, HARDER_NO_GAIN),
        # ... unless fallback, which keeps Q when feasible
        ({"instruction": (0.7, 0.5), "both": (0.8, 0.5)}, True, "instruction", HARDER_NO_GAIN),
        ({"instruction": (0.7, 1.0), "both": (0.8, 1.2)}, True, None, HARDER_NO_GAIN),
        # harder Q but QA reflection failed -> treated as "does not lower"
        ({"instruction": (0.7, 0.5), "both": None}, True, "instruction", HARDER_NO_GAIN),
        # Q not harder (equal IFD is not harder) -> response branch; A lowers r-IFD, feasible
        ({"instruction": (0.5, 0.1), "both": (0.1, 0.1), "response": (0.4, 0.3)}, False,
         "response", A_LOWERS),
        # Q failed entirely -> response branch
        ({"instruction": None, "both": None, "response": (0.4, 0.3)}, False, "response",
         A_LOWERS),
        # A lowers r-IFD but its IFD >= 1 -> dropped
        ({"instruction": (0.2, 0.1), "response": (1.0, 0.3)}, False, None, A_INFEASIBLE),
        # A does not lower r-IFD -> nothing, or the original with fallback
        ({"instruction": (0.2, 0.1), "response": (0.4, 0.6)}, False, None, NOTHING),
        ({"instruction": (0.2, 0.1), "response": (0.4, 0.6)}, True, "original", NOTHING),
        # every reflection failed -> the original with fallback (it is feasible)
        ({"instruction": None, "response": None, "both": None}, True, "original", NOTHING),
        ({"instruction": None, "response": None, "both": None}, False, None, NOTHING),
    ],
)  # fmt: skip
def test_select_variant_branches(
    scores: dict, fallback: bool, expected: str | None, branch: str
) -> None:
    assert select_variant({"original": ORI, **scores}, fallback=fallback) == (expected, branch)


@pytest.mark.parametrize(
    ("scores", "fallback", "expected", "branch"),
    [
        # an answer too long to score: its r-IFD is missing, not 0, so it never "lowers" r-IFD
        ({"instruction": (0.2, 0.1), "response": (0.4, None)}, False, None, NOTHING),
        ({"instruction": (0.7, 0.5), "both": (0.8, None)}, True, "instruction", HARDER_NO_GAIN),
        # a missing IFD is never "harder" either, and a pair with a missing score never feasible
        ({"instruction": (None, 0.1), "response": (0.4, 0.3)}, False, "response", A_LOWERS),
        ({"instruction": (0.7, None), "both": (0.8, 0.4)}, False, None, HARDER_NO_GAIN),
    ],
)  # fmt: skip
def test_a_missing_score_is_never_better(
    scores: dict, fallback: bool, expected: str | None, branch: str
) -> None:
    assert select_variant({"original": ORI, **scores}, fallback=fallback) == (expected, branch)


def test_an_original_without_a_score_is_kept_by_no_comparison() -> None:
    assert select_variant({"original": (0.5, None), "response": (0.4, 0.3)}) == (None, NOTHING)
    assert select_variant({"original": (None, None)}, fallback=True) == (None, NOTHING)


def test_original_without_scores_is_an_error() -> None:
    with pytest.raises(ValueError):
        select_variant({"original": None})


def test_infeasible_original_with_fallback_drops() -> None:
    choice, _ = select_variant({"original": (1.3, 0.2), "response": (0.9, 0.5)}, fallback=True)
    assert choice is None
