"""Perplexity filter (DiffTune 2.3): scores on every row, drop above the threshold."""

from __future__ import annotations

import pytest

from tests.llm.logprob_helpers import FakeLogProb, direct_ppl, scorer
from tunesmith.errors import ConfigError
from tunesmith.filters.perplexity_filter import PerplexityFilter
from tunesmith.records import Record, field_text


class LengthPPL(FakeLogProb):
    """Fake model: ppl = 10 x number of words, missing for an empty text (as the real rule)."""

    def ppl(self, prompt: str, text: str) -> float | None:
        return 10.0 * len(text.split()) if text else None

    @property
    def texts(self) -> list[str]:
        return [t for _, t in self.seen]


def test_drops_above_threshold_and_keeps_scores_on_every_row() -> None:
    recs = [Record("a", "one two"), Record("b", " ".join(["w"] * 16)), Record("c", "x " * 15)]
    result = PerplexityFilter(scorer=LengthPPL()).run(recs)  # default threshold 150
    assert [r.id for r in result.kept] == ["a", "c"]
    assert result.kept[1].scores["ppl"] == 150.0  # at the threshold: kept
    (rej,) = result.rejected
    assert rej.score == 160.0 and rej.record.scores["ppl"] == 160.0 and "> max 150" in rej.reason


def test_field_selection_score_key_and_no_threshold() -> None:
    fake = LengthPPL()
    rec = Record("a", "instr", input="some input", output="an output here")
    (kept,) = PerplexityFilter(scorer=fake, field="output", threshold=None).run([rec]).kept
    assert kept.scores == {"ppl_output": 30.0} and fake.texts == ["an output here"]
    assert field_text(rec, "prompt") == "instr\n\nsome input"
    assert field_text(rec, "text") == "instr\n\nsome input\n\nan output here"
    with pytest.raises(ConfigError):
        PerplexityFilter(field="title")


def test_min_ppl_and_reuse() -> None:
    fake = LengthPPL()
    recs = [Record("a", "x", scores={"ppl": 2.0}), Record("b", "y y y")]
    result = PerplexityFilter(scorer=fake, min_ppl=5.0).run(recs)
    assert [r.id for r in result.kept] == ["b"] and fake.texts == ["y y y"]


def test_an_empty_text_has_no_perplexity_and_does_not_pass() -> None:
    """Regression: an empty instruction scored ppl 0 and passed the threshold."""
    result = PerplexityFilter(scorer=LengthPPL()).run([Record("e", "", output="x")])
    (rej,) = result.rejected
    assert not result.kept and rej.record.scores["ppl"] is None
    assert rej.reason == "no ppl score (nothing to score)"


@pytest.mark.integration
def test_empty_instruction_is_rejected_with_the_real_model() -> None:
    result = PerplexityFilter(scorer=scorer(), threshold=1e9).run([Record("e", "", output="x")])
    (rej,) = result.rejected
    assert rej.record.scores["ppl"] is None and rej.reason == "no ppl score (empty text)"
    assert rej.record.meta["missing_scores"] == {"ppl": "empty text"}


@pytest.mark.integration
def test_ppl_equals_direct_transformers_computation() -> None:
    recs = [
        Record("a", "Give three tips for staying healthy."),
        Record("b", "colorless green ideas sleep furiously purple"),
    ]
    result = PerplexityFilter(scorer=scorer(), threshold=None).run(recs)
    for rec in result.kept:
        assert rec.scores["ppl"] == pytest.approx(direct_ppl("", rec.instruction), rel=1e-4)
