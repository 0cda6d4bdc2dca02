"""Keep/drop decisions on stored scores: ranges and top share."""

from __future__ import annotations

import pytest

from tunesmith.errors import ConfigError
from tunesmith.filters.score_decision import ScoreDecision, decide_by_score
from tunesmith.records import Record


def rows(values: list[float | None]) -> list[Record]:
    return [
        Record(f"r{i}", f"q{i}", scores={} if v is None else {"ifd": v})
        for i, v in enumerate(values)
    ]


def test_range_is_inclusive_and_reasons_name_the_bound() -> None:
    result = decide_by_score(rows([0.2, 0.5, 1.0, 1.3, None]), "ifd", min_value=0.5, max_value=1.0)
    assert [r.id for r in result.kept] == ["r1", "r2"]
    reasons = {rej.record.id: (rej.score, rej.reason) for rej in result.rejected}
    assert reasons["r0"][0] == 0.2 and "< min 0.5" in reasons["r0"][1]
    assert reasons["r3"][0] == 1.3 and "> max 1.0" in reasons["r3"][1]
    assert reasons["r4"] == (None, "no ifd score")


def test_top_share_largest_and_smallest_keep_input_order() -> None:
    data = rows([0.1, 0.9, 0.5, 0.7, 0.3])
    top = decide_by_score(data, "ifd", top_share=0.4)
    assert [r.id for r in top.kept] == ["r1", "r3"]
    low = decide_by_score(data, "ifd", top_share=0.4, largest=False)
    assert [r.id for r in low.kept] == ["r0", "r4"]
    assert len(top.rejected) == 3 and all("cutoff" in r.reason for r in top.rejected)


def test_top_share_applies_after_the_range_and_rounds_up() -> None:
    result = decide_by_score(rows([0.1, 0.9, 0.5, 1.5]), "ifd", max_value=1.0, top_share=0.5)
    assert [r.id for r in result.kept] == ["r1", "r2"]


def test_bad_parameters_are_config_errors() -> None:
    with pytest.raises(ConfigError):
        ScoreDecision(key="ifd", min_value=2, max_value=1)
    with pytest.raises(ConfigError):
        ScoreDecision(key="ifd", top_share=0)
    stage = ScoreDecision(key="ifd", top_share=1.0)
    assert len(stage.run(rows([0.3, 0.1])).kept) == 2


def test_per_record_only_for_ranges() -> None:
    assert ScoreDecision(key="ifd", max_value=1.0).per_record
    assert not ScoreDecision(key="ifd", top_share=0.5).per_record


def test_a_missing_score_is_rejected_with_its_noted_reason_and_never_best() -> None:
    from tunesmith.filters.score_decision import note_missing

    rows = [
        note_missing(Record("m", "q", scores={"rifd": None}), {"rifd": "prompt fills the window"}),
        Record("n", "q", scores={"rifd": float("nan")}),
        Record("a", "q", scores={"rifd": 0.9}),
    ]
    result = decide_by_score(rows, "rifd", top_share=1.0, largest=False)
    assert [r.id for r in result.kept] == ["a"]
    reasons = {r.record.id: r.reason for r in result.rejected}
    assert reasons == {"m": "no rifd score (prompt fills the window)", "n": "no rifd score"}
    cleared = note_missing(rows[0].with_scores(rifd=0.5), {"rifd": None})
    assert cleared.meta["missing_scores"] == {}
