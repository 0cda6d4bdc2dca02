"""Parsers on real SmolLM2-135M completions of tunesmith's own prompts (fixtures/smollm2_outputs.json,
captured with fixtures/capture_smollm2.py): repeated items, wrong numbering inside Alpaca blocks,
duplicated field labels, truncation at max_tokens, conflicting classification instances."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tunesmith.generate.instruction_rules import check_instruction
from tunesmith.generate.parsing import (
    clean_instances,
    parse_alpaca_tasks,
    parse_input_first,
    parse_numbered_instructions,
    parse_output_first,
    parse_yes_no,
)

ROWS = json.loads((Path(__file__).parent / "fixtures" / "smollm2_outputs.json").read_text())


def row(i: int) -> tuple[str, str]:
    return ROWS[i]["text"], ROWS[i]["finish_reason"]


def test_fixture_kinds():
    assert [r["kind"] for r in ROWS[:7]] == ["bootstrap"] * 4 + ["alpaca"] * 3


def test_bootstrap_list_continuation_splits_into_seven_items():
    items = parse_numbered_instructions(*row(0))
    assert len(items) == 7 and not any(i.reason for i in items)
    assert (
        items[0].instruction
        == "Write a Python function that takes an integer and returns the opposite of it."
    )
    assert items[1].instruction == items[4].instruction  # the model repeated itself: ROUGE-L's job


def test_bootstrap_blacklist_catches_visual_tasks_in_real_output():
    rules = [check_instruction(i.instruction).rule for i in parse_numbered_instructions(*row(2))]
    assert rules == ["", "blacklist", "", "blacklist", "", "", ""]


def test_bootstrap_truncated_at_max_tokens_drops_the_response_or_its_last_item():
    text, finish = row(3)
    assert finish == "length"
    items = parse_numbered_instructions(text, finish, truncation="drop_last")
    assert [i.reason for i in items] == ["", "", "", "truncated"]
    assert [i.reason for i in parse_numbered_instructions(text, finish)] == [
        "truncated response"
    ] * 4


def test_alpaca_wrong_field_number_is_tolerated():
    items = parse_alpaca_tasks(row(4)[0], 4, row(4)[1])
    assert [i.reason for i in items] == ["", "", ""]
    assert (items[0].input, items[0].output) == ("You must be extra late tomorrow tomorrow.", "No")


def test_alpaca_truncated_with_extra_pairs_and_malformed_blocks():
    text, finish = row(5)
    items = parse_alpaca_tasks(text, 4, finish)
    good = [i for i in items if not i.reason]
    assert len(good) == 8 and sum(i.reason == "malformed block" for i in items) == 1
    assert (
        good[2].instruction == "Tell me about your favorite animal."
        and good[2].input == "A kangaroo"
    )
    # the reference code discards blocks that run on with extra Input/Output pairs
    strict = parse_alpaca_tasks(text, 4, finish, strict=True)
    assert sum(not i.reason for i in strict) == 6


def test_alpaca_block_with_two_instances_keeps_the_first_triple():
    items = parse_alpaca_tasks(row(6)[0], 4, row(6)[1])
    assert [i.reason for i in items] == ["", "truncated"]
    first = items[0]
    assert first.input == "The new employee will do a job that you cannot do."
    assert first.output == "You can’t do that job."
    assert parse_alpaca_tasks(row(6)[0], 4, row(6)[1], strict=True)[0].reason == "malformed block"


@pytest.mark.parametrize("i", [7, 9, 11, 13, 15])
def test_classifier_answers_parse(i):
    assert ROWS[i]["kind"] == "is_classification"
    assert parse_yes_no(ROWS[i]["text"]) is True


def test_output_first_same_input_two_labels_drops_the_task():
    pairs = parse_output_first(*row(8))
    assert len(pairs) == 2
    assert clean_instances(pairs) == ([], "same input with different outputs")


def test_output_first_real_labels():
    assert clean_instances(parse_output_first(*row(12)))[0] == [
        ("Number: 3", "Even"),
        ("Number: 15", "Odd"),
    ]


def test_input_first_bare_output_and_example_block():
    assert parse_input_first(*row(14)) == [
        ("", "1. Buy in bulk, 2. Use coupons, 3. Shop at the local market.")
    ]
    (pair,) = parse_input_first(*row(16))
    assert pair == (
        "Sentence: I am going to the sea,\nI will go to the sea.",
        "I am going to the sea.",
    )
