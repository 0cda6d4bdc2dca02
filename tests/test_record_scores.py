"""Scores follow the text they were computed on: ``Record.evolve`` drops stale ones."""

from __future__ import annotations

from tests.llm.logprob_helpers import FakeLogProb
from tunesmith.filters.ifd_stage import IFDStage
from tunesmith.records import Record, score_fields

SCORES = {"ifd": 0.4, "rifd": 0.3, "ppl": 12.0, "ppl_output": 8.0, "quality": 5, "rouge_l_max": 0.2}


def test_a_new_output_drops_the_scores_that_read_it() -> None:
    rec = Record("r", "Q?", output="old", scores=SCORES)
    new = rec.evolve(output="new")
    # instruction-only scores stay; everything computed on the output goes
    assert new.scores == {"ppl": 12.0, "rouge_l_max": 0.2}


def test_a_new_instruction_drops_instruction_scores_and_keeps_output_ones() -> None:
    rec = Record("r", "Q?", output="old", scores=SCORES)
    assert rec.evolve(instruction="Harder Q?", input="").scores == {"ppl_output": 8.0}


def test_no_text_change_keeps_scores_and_explicit_scores_win() -> None:
    rec = Record("r", "Q?", output="same", scores=SCORES)
    assert rec.evolve(output="same").scores == SCORES
    assert rec.evolve(meta={"a": 1}).scores == SCORES
    assert rec.evolve(output="new", scores={"ifd": 0.9}).scores == {"ifd": 0.9}
    assert score_fields("anything_new") == {"instruction", "input", "output"}


class CountingPPL(FakeLogProb):
    def ppl(self, prompt: str, text: str) -> float | None:
        return 5.0 if prompt else 10.0


def test_a_rewritten_row_is_scored_again_not_skipped() -> None:
    """Regression: after reflection rewrote a row, its old IFD stayed and the IFD stage skipped
    the row because a score was present."""
    scored = IFDStage(scorer=CountingPPL()).run([Record("r", "Q?", output="old")]).kept[0]
    assert scored.scores["ifd"] == 0.5
    rewritten = scored.evolve(output="a much better answer")
    assert "ifd" not in rewritten.scores
    fake = CountingPPL()
    again = IFDStage(scorer=fake).run([rewritten]).kept[0]
    assert fake.calls == 1 and ("", "a much better answer") in fake.seen
    assert again.scores["ifd"] == 0.5
