"""Parsers on messy model output: truncated lists, prose around lists, wrong numbering, missing markers."""

from __future__ import annotations

import pytest

from tunesmith.generate.parsing import (
    clean_instances,
    clean_instruction,
    parse_alpaca_tasks,
    parse_input_first,
    parse_numbered_instructions,
    parse_output_first,
    parse_yes_no,
    split_input_output,
)


def texts(items):
    return [i.instruction for i in items if not i.reason]


# -- numbered continuation (Self-Instruct bootstrapping) -------------------------------------
def test_numbered_continuation_splits_on_numbers_and_cleans_whitespace():
    raw = " Plan a  surprise party\n for a friend.\n10. Explain gravity to a child:\n11 . Name three rivers in Asia."
    assert texts(parse_numbered_instructions(raw)) == [
        "Plan a surprise party for a friend.",
        "Explain gravity to a child",
        "Name three rivers in Asia.",
    ]


def test_truncated_response_is_dropped_whole_by_default_as_the_reference_code_does():
    raw = " Write a limerick about cats.\n10. Describe the water cycle.\n11. Give tips for a job interv"
    whole = parse_numbered_instructions(raw, "length")
    assert texts(whole) == [] and len(whole) == 3
    assert {i.reason for i in whole} == {"truncated response"}
    items = parse_numbered_instructions(raw, "length", truncation="drop_last")
    assert texts(items) == ["Write a limerick about cats.", "Describe the water cycle."]
    assert items[-1].reason == "truncated"


def test_not_truncated_keeps_last_item():
    raw = " Write a limerick about cats.\n10. Describe the water cycle."
    assert len(texts(parse_numbered_instructions(raw, "stop"))) == 2


def reference_split(text: str) -> list[str]:
    """The reference bootstrap script's post-processing, written out from its published rules:
    re.split on ``\\n\\d+\\s?\\. ``, collapse whitespace, capitalise, drop empty items."""
    import re

    pieces = [re.sub(r"\s+", " ", p).strip() for p in re.split(r"\n\d+\s?\. ", text)]
    return [p[:1].upper() + p[1:] for p in pieces if p]


@pytest.mark.parametrize(
    "raw",
    [
        " Sort the list of words.\n3. Translate hello into Spanish.\n9) Count the vowels.",
        " Plan a trip with these steps:\n 1) book a flight\n 2) pack\n10. Name three rivers.",
        " Name a color.\n10 . Name a fruit.\n11.  Name a city.\n12.Name a dog breed.",
        "\n10. Explain tides.\n11. Explain wind.",
    ],
)
def test_list_split_is_the_reference_split(raw):
    # "9)" and indented " 1)" do not start an item in the reference: the sub-list stays whole
    assert texts(parse_numbered_instructions(raw, capitalize="first")) == reference_split(raw)


def test_lenient_split_also_cuts_paren_numbers():
    raw = (
        " Sort the list of words.\n3. Translate hello into Spanish.\n9) Count the vowels in a word."
    )
    assert texts(parse_numbered_instructions(raw, split="lenient")) == [
        "Sort the list of words.",
        "Translate hello into Spanish.",
        "Count the vowels in a word.",
    ]
    assert len(texts(parse_numbered_instructions(raw))) == 2  # reference: "9)" is not a split


def test_prose_after_the_list_stays_with_its_item_for_the_filters_to_judge():
    raw = " Name a famous bridge.\nThese tasks are designed to be diverse and fun to do for everybody."
    items = texts(parse_numbered_instructions(raw))
    assert items == [
        "Name a famous bridge. These tasks are designed to be diverse and fun to do for everybody."
    ]


def test_empty_and_blank_responses_give_nothing():
    assert parse_numbered_instructions("") == []
    assert parse_numbered_instructions("   \n  ") == []


def test_items_are_capitalised_before_the_filters_and_the_quirk_is_optional():
    (item,) = parse_numbered_instructions(" write a program that sorts SQL rows.")
    assert item.instruction == "Write a program that sorts SQL rows."
    (quirk,) = parse_numbered_instructions(" name the CAPITAL of France", capitalize="python")
    assert quirk.instruction == "Name the capital of france"
    (kept,) = parse_numbered_instructions(" name the CAPITAL of France", capitalize="none")
    assert kept.instruction == "name the CAPITAL of France"
    assert clean_instruction("name the CAPITAL of France:") == "name the CAPITAL of France"
    assert clean_instruction("name it", capitalize=True) == "Name it"  # the old boolean option


def test_bad_truncation_mode_is_rejected():
    with pytest.raises(ValueError):
        parse_numbered_instructions("x", truncation="maybe")


# -- Alpaca blocks -----------------------------------------------------------------------------
ALPACA = """ Name the largest planet in the solar system.
4. Input:
<noinput>
4. Output:
Jupiter.
###
5. Instruction: Correct the spelling in the sentence.
5. Input:
I recieved the pakage.
5. Output:
I received the package.
###
6. Instruction: Give a synonym for fast.
6. Input:
<noinput>
6. Output:
Qui"""


def test_alpaca_blocks_parse_with_noinput_and_truncation():
    items = parse_alpaca_tasks(ALPACA, 4, "length")
    good = [i for i in items if not i.reason]
    assert [(i.instruction, i.input, i.output) for i in good] == [
        ("Name the largest planet in the solar system.", "", "Jupiter."),
        (
            "Correct the spelling in the sentence.",
            "I recieved the pakage.",
            "I received the package.",
        ),
    ]
    assert items[-1].reason == "truncated"
    assert len([i for i in parse_alpaca_tasks(ALPACA, 4, "stop") if not i.reason]) == 3


def test_alpaca_block_missing_a_field_is_malformed():
    raw = " Say hi.\n4. Output:\nHi!\n###\n5. Instruction: Count to three.\n5. Input:\n<noinput>\n5. Output:\n1, 2, 3"
    items = parse_alpaca_tasks(raw, 4)
    assert items[0].reason == "malformed block"
    assert (items[1].instruction, items[1].output, items[1].reason) == (
        "Count to three.",
        "1, 2, 3",
        "",
    )


def test_alpaca_renumbered_blocks_are_accepted():
    raw = " Add the numbers.\n1. Input:\n2 and 3\n1. Output:\n5"
    (item,) = parse_alpaca_tasks(raw, 4)
    assert (item.instruction, item.input, item.output, item.reason) == (
        "Add the numbers.",
        "2 and 3",
        "5",
        "",
    )


def test_alpaca_prose_only_answer_is_malformed():
    items = parse_alpaca_tasks(" Sure! Here are some great tasks for you to try.", 4)
    assert len(items) == 1 and items[0].reason == "malformed block"


# -- Self-Instruct instances ------------------------------------------------------------------
def test_input_first_examples():
    raw = "Example 1\nList: 1, 5, 3\nOutput: 5\nExample 2\nInput: List: 2, 2\nOutput: 2\n"
    assert parse_input_first(raw) == [("List: 1, 5, 3", "5"), ("List: 2, 2", "2")]


def test_input_first_without_example_header_is_one_pair_and_no_output_marker_is_nothing():
    assert parse_input_first("Text: hello\nOutput: HELLO") == [("Text: hello", "HELLO")]
    assert parse_input_first("I think this task is about greetings.") == []


def test_input_first_no_input_task_gives_output_only():
    raw = "Example 1\nA walk in the park is a great way to relax.\nExample 2\nTry reading a book."
    assert parse_input_first(raw) == [
        ("", "A walk in the park is a great way to relax."),
        ("", "Try reading a book."),
    ]


def test_input_first_truncated_drops_last_instance():
    raw = "Example 1\nX: a\nOutput: b\nExample 2\nX: c\nOutput: d"
    assert parse_input_first(raw, "length") == [("X: a", "b")]


def test_output_cut_at_a_second_input():
    assert split_input_output("Input: a\nOutput: b\nInput: c") == ("a", "b")
    assert split_input_output("Output 2: yes") == ("", "yes")


def test_output_first_labels_then_inputs():
    raw = "Class label: Positive\nReview: Lovely.\nClass label: Negative\nReview: Awful.\nClass label: Neutral"
    assert parse_output_first(raw) == [
        ("Review: Lovely.", "Positive"),
        ("Review: Awful.", "Negative"),
        ("", "Neutral"),
    ]
    assert parse_output_first(raw, "length") == [
        ("Review: Lovely.", "Positive"),
        ("Review: Awful.", "Negative"),
    ]
    assert parse_output_first("Positive and negative are the labels.") == []


def test_clean_instances_rules():
    assert clean_instances([]) == ([], "no parseable instance")
    assert clean_instances([("a", "a"), ("b", ""), ("c:", "d"), ("e", "f:")]) == (
        [],
        "no valid instance",
    )
    assert clean_instances([("a", "1"), ("a", "2"), ("b", "3")]) == (
        [],
        "same input with different outputs",
    )
    kept, why = clean_instances(
        [("a", "1"), ("a", "1"), ("", "x"), ("", "y")] + [(str(i), "z") for i in range(9)]
    )
    assert why == "" and kept[:3] == [("a", "1"), ("", "x"), ("", "y")] and len(kept) == 5


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        (" Yes", True),
        ("yes", True),
        ("YES.", True),
        (" No", False),
        ("Yesterday", False),
        ("", False),
        (" yes it is", True),
    ],
)
def test_yes_no(answer, expected):
    assert parse_yes_no(answer) is expected
