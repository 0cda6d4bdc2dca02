"""IFD / reverse IFD (Cherry LLM; Selective Reflection-Tuning) against a direct computation."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.llm.logprob_helpers import FakeLogProb, direct_ppl, scorer
from tunesmith.filters.ifd import ifd_prefixes, score_ifd
from tunesmith.filters.ifd_stage import IFDStage
from tunesmith.records import Record

PAIRS = [
    ("Name three primary colors.", "Red, blue and yellow."),
    ("Write a haiku about rain.", "Soft rain on the roof\nwhispers to the sleeping town"),
    ("Translate 'cat' to French.\n\ncat", "chat"),
]


def forward_prompt(instruction: str) -> str:
    return (
        "The following is a task for an assistant. Read the instruction and write a response "
        f"that completes it.\n\n### Instruction:\n{instruction}\n\n### Response:\n"
    )


def reverse_prompt(response: str) -> str:
    return (
        "The following is a response written by an assistant. Work out the instruction it was "
        f"written for.\n\n### Response:\n{response}\n\n### Instruction:\n"
    )


class TablePPL(FakeLogProb):
    """Perplexities from a table (10 when absent; None = a missing score)."""

    def __init__(self, table: dict[tuple[str, str], float | None]) -> None:
        super().__init__()
        self.table = table

    def ppl(self, prompt: str, text: str) -> float | None:
        return self.table.get((prompt, text), 10.0)


def test_packaged_templates_render_the_documented_prompts() -> None:
    fwd, rev = ifd_prefixes(PAIRS)
    assert fwd == [forward_prompt(q) for q, _ in PAIRS]
    assert rev == [reverse_prompt(a) for _, a in PAIRS]


def test_ratios_and_a_missing_score_instead_of_zero() -> None:
    q, a = PAIRS[0]
    table = {(forward_prompt(q), a): 4.0, ("", a): 8.0, (reverse_prompt(a), q): None}
    (s,) = score_ifd([(q, a)], TablePPL(table))
    assert (s.ppl_answer_given_instruction, s.ppl_answer) == (
        pytest.approx(4.0),
        pytest.approx(8.0),
    )
    assert s.ifd == pytest.approx(0.5)
    assert s.ppl_instruction_given_answer is None and s.rifd is None  # never 0 ("the best")
    assert s.missing == {"rifd": "instruction after its prompt: nothing to score"}
    assert "missing" not in s.as_scores()
    (fwd_only,) = score_ifd([(q, a)], TablePPL(table), reverse=False)
    assert fwd_only.rifd is None and fwd_only.ifd == pytest.approx(0.5) and not fwd_only.missing


def test_stage_rejects_a_missing_score_with_its_reason() -> None:
    q, a = PAIRS[0]
    rec = Record("r", q, output=a)
    stage = IFDStage(scorer=TablePPL({(reverse_prompt(a), q): None}), key="rifd", max_value=1.0)
    (rej,) = stage.run([rec]).rejected
    assert rej.score is None and rej.record.scores["rifd"] is None
    assert rej.reason == "no rifd score (instruction after its prompt: nothing to score)"
    assert rej.record.meta["missing_scores"] == {
        "rifd": "instruction after its prompt: nothing to score"
    }
    # a top share never ranks a missing score first (as 0 it would be the lowest r-IFD)
    other = Record("o", "Name a fruit.", output="Apple.")
    top = IFDStage(scorer=TablePPL({(reverse_prompt(a), q): None}), key="rifd", top_share=0.5)
    assert [r.id for r in top.run([rec, other]).kept] == ["o"]


@pytest.mark.integration
def test_ifd_equals_direct_transformers_computation() -> None:
    got = score_ifd(PAIRS, scorer())
    for (q, a), s in zip(PAIRS, got, strict=True):
        cond, plain = direct_ppl(forward_prompt(q), a), direct_ppl("", a)
        rcond, rplain = direct_ppl(reverse_prompt(a), q), direct_ppl("", q)
        assert s.ppl_answer_given_instruction == pytest.approx(cond, rel=1e-4)
        assert s.ppl_answer == pytest.approx(plain, rel=1e-4)
        assert s.ifd == pytest.approx(cond / plain, abs=1e-4)
        assert s.ppl_instruction_given_answer == pytest.approx(rcond, rel=1e-4)
        assert s.ppl_instruction == pytest.approx(rplain, rel=1e-4)
        assert s.rifd == pytest.approx(rcond / rplain, abs=1e-4)


@pytest.mark.integration
def test_an_answer_longer_than_the_window_has_no_rifd_not_zero() -> None:
    """Regression: the reverse prompt holds the answer; past the window nothing is scored and
    r-IFD was 0 (the best score the selective rule knows). Now it is missing, with the reason."""
    lm = scorer(max_length=64)
    long_answer = "The river runs past the old mill and into the sea. " * 12  # ~150 tokens
    rec = Record("r", "Describe a river.", output=long_answer)
    (rej,) = IFDStage(scorer=lm, key="rifd", max_value=1.0).run([rec]).rejected
    assert rej.record.scores["rifd"] is None and rej.record.scores["ifd"] is not None
    assert "fills the 64-token window" in rej.record.meta["missing_scores"]["rifd"]
    assert rej.reason.startswith("no rifd score (instruction after its prompt: prompt of")


def test_stage_writes_scores_and_keeps_a_range() -> None:
    recs = [Record(f"r{i}", q, output=a) for i, (q, a) in enumerate(PAIRS[:2])]
    table = {
        (forward_prompt(PAIRS[0][0]), PAIRS[0][1]): 5.0,
        (forward_prompt(PAIRS[1][0]), PAIRS[1][1]): 20.0,
    }
    stage = IFDStage(scorer=TablePPL(table), max_value=1.0)
    result = stage.run(recs)
    assert [r.id for r in result.kept] == ["r0"]
    assert result.kept[0].scores["ifd"] == pytest.approx(0.5)
    assert result.kept[0].scores["rifd"] == pytest.approx(1.0)
    assert "missing_scores" not in result.kept[0].meta
    (rej,) = result.rejected
    assert rej.record.scores["ifd"] == pytest.approx(2.0) and rej.score == pytest.approx(2.0)
    assert "> max 1.0" in rej.reason


def test_stage_top_share_and_reuse_of_existing_scores() -> None:
    recs = [
        Record(f"r{i}", f"q{i}", output="a", scores={"ifd": v, "rifd": 1 - v})
        for i, v in enumerate([0.2, 0.8, 0.5, 0.9])
    ]
    table = TablePPL({})
    top = IFDStage(scorer=table, top_share=0.5).run(recs)
    assert [r.id for r in top.kept] == ["r1", "r3"] and table.calls == 0  # not rescored
    low_rifd = IFDStage(scorer=table, key="rifd", top_share=0.25).run(recs)
    assert [r.id for r in low_rifd.kept] == ["r3"]
    IFDStage(scorer=table, rescore=True).run(recs)
    assert table.calls == 1


def test_templates_are_user_replaceable(tmp_path: Path) -> None:
    (tmp_path / "ifd").mkdir()
    (tmp_path / "ifd" / "prompt.j2").write_text("Q: {{ instruction }}\nA:", encoding="utf-8")
    stage = IFDStage(
        scorer=TablePPL({("Q: hi\nA:", "yo"): 1.0, ("", "yo"): 4.0}), prompts_dir=tmp_path
    )
    (rec,) = stage.run([Record("r", "hi", output="yo")]).kept
    assert rec.scores["ifd"] == pytest.approx(0.25)
    assert set(stage.prompt_hashes) == {"ifd/prompt", "ifd/reverse"}


def test_per_record_only_without_top_share() -> None:
    assert IFDStage(scorer=TablePPL({}), max_value=1.0).per_record
    assert not IFDStage(scorer=TablePPL({}), top_share=0.1).per_record


def test_an_answer_over_1000_tokens_at_the_default_window_has_no_rifd() -> None:
    """The reported case at the default 1024-token window, with a one-token-per-character model
    (cheap): the reverse prompt holds the ~1,100-token answer, so r-IFD is missing, not 0."""
    from tests.llm.logprob_helpers import CharModel

    (s,) = score_ifd([("Describe a river.", "water " * 185)], CharModel(max_length=1024))
    assert s.ifd is not None and s.rifd is None
    assert "fills the 1024-token window" in s.missing["rifd"]
