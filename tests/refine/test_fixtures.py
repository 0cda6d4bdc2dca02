"""Parsers on REAL outputs of the embedded SmolLM2 (captured by fixtures/capture.py).

Rows 0-15 are the stage's own chat requests (the 135M model ignores the markers, repeats
itself, echoes the format line, runs into max_tokens); rows 16-23 are primed with the start
marker, so they hold real marker-led sections with mangled or missing end markers.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from tunesmith.llm.base import Completion
from tunesmith.records import Record
from tunesmith.refine.reflection_stage import (
    Reflected,
    parse_instruction_reflection,
    parse_response_reflection,
)

FIXTURES = json.loads((Path(__file__).parent / "fixtures" / "embedded_outputs.json").read_text())

#: index -> failure substring (str) or (start of new instruction/answer, end of the answer).
EXPECTED: dict[int, str | tuple[str, str]] = {
    **{i: "no [New Instruction] section" for i in (0, 2, 3, 4, 5, 12, 13)},
    1: "placeholder",  # echoes "[New Instruction] the new instruction [End]" from the prompt
    **{i: "no [Better Answer] section" for i in (6, 7, 8, 9, 10, 11, 14, 15)},
    # "[New End]" closes the answer; the prose after it is not part of the answer
    16: ("The top 5 most populous states", "which is not provided in this new instruction."),
    17: "[New Answer] section cut off at max_tokens",  # "[The New Answer]" then truncation
    18: "no [New Answer] section",
    19: "[New Instruction] section cut off at max_tokens",
    20: "[Better Answer] section cut off at max_tokens",
    21: "repeats the original",  # "[The End of Answer]" closes a copy of the original answer
    22: (
        "Generate a list of chemical elements.",
        "a good chemical element.",
    ),  # ends at [Your Task]
    23: ("Explain what a serverless", "charged only for running a function."),
}


def parse(row: dict) -> Reflected:
    completion = Completion(row["text"], row["finish_reason"])
    record = Record(**row["record"])
    if row["kind"] == "instruction":
        return parse_instruction_reflection(completion, record)
    return parse_response_reflection(completion, record)


def test_every_fixture_has_an_expectation() -> None:
    assert len(FIXTURES) == len(EXPECTED) == 24
    assert sum(r["finish_reason"] == "length" for r in FIXTURES) >= 15  # really messy


@pytest.mark.parametrize("index", sorted(EXPECTED))
def test_real_output(index: int) -> None:
    res = parse(FIXTURES[index])
    expected = EXPECTED[index]
    if isinstance(expected, str):
        assert not res.ok and expected in str(res.failure)
        assert res.instruction is None and res.output is None  # nothing half-parsed
        return
    assert res.ok, res.failure
    assert res.instruction is not None and res.output is not None
    assert res.instruction.startswith(expected[0]) and res.output.endswith(expected[1])
    for text in (res.instruction, res.output):
        assert not re.search(r"\[(?:the )?(?:new|better|end)", text, re.IGNORECASE)
