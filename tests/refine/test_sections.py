"""Section parsing on hand-made edge cases (real model outputs: test_fixtures.py)."""

from __future__ import annotations

import pytest

from tunesmith.refine.sections import extract_section, is_placeholder

NAMES = ("New Instruction", "New Answer")


def ins(text: str, finish: str = "stop") -> object:
    return extract_section(text, "New Instruction", others=NAMES[1:], finish_reason=finish)


def ans(text: str, finish: str = "stop") -> object:
    return extract_section(text, "New Answer", others=NAMES[:1], finish_reason=finish)


def test_well_formed() -> None:
    text = "Analysis...\n[New Instruction] Explain X. [End]\n[New Answer] X is Y. [End]"
    assert ins(text).text == "Explain X."
    assert ans(text).text == "X is Y."


@pytest.mark.parametrize(
    "text",
    [
        "**[New Instruction]**: Explain X.\n**[End]**\n**[New Answer]**: X is Y.",
        "### New Instruction:\nExplain X.\n\n### New Answer:\nX is Y.",
        "2. New Instruction: Explain X.\n3. New Answer: X is Y.",
        "[NEW INSTRUCTION]\nExplain X.\n[NEW ANSWER]\nX is Y.\n[END]",
        "[ New Instruction ] `Explain X.` [New Answer] X is Y.",
    ],
)
def test_markdown_and_missing_end_markers(text: str) -> None:
    assert ins(text).text == "Explain X."
    assert ans(text).text == "X is Y."


def test_first_placeholder_echo_is_skipped() -> None:
    text = (
        "I will use the format [New Instruction] your instruction [End].\n"
        "[New Instruction] Compare two sorting algorithms. [End]\n[New Answer] ... [End]"
    )
    assert ins(text).text == "Compare two sorting algorithms."
    res = ans(text)
    assert res.text is None and "placeholder" in str(res.failure)


def test_missing_and_empty_sections() -> None:
    assert "no [New Instruction]" in str(ins("Just prose, no markers.").failure)
    assert ins("[New Instruction] [End] [New Answer] fine [End]").text is None
    assert ans("[New Instruction] q [End] [New Answer]").text is None


def test_unclosed_section_cut_by_max_tokens_is_a_failure() -> None:
    text = "[New Instruction] Explain X. [End]\n[New Answer] X is a long story about"
    res = ans(text, finish="length")
    assert res.text is None and "max_tokens" in str(res.failure)
    assert ans(text).text == "X is a long story about"  # finished normally: accepted
    assert ins(text, finish="length").text == "Explain X."  # closed: truncation elsewhere


def test_prose_mentioning_the_words_is_not_a_marker() -> None:
    text = "The new instruction should be harder.\n[New Instruction] Derive Y. [End]"
    assert ins(text).text == "Derive Y."


@pytest.mark.parametrize("text", ["", "N/A", "...", "[your answer]", "<your instruction here>"])
def test_placeholders(text: str) -> None:
    assert is_placeholder(text)


def test_real_content_is_not_a_placeholder() -> None:
    assert not is_placeholder("Explain what your answer to the riddle would be and why.")
    assert not is_placeholder("No")  # a real one-word answer


@pytest.mark.parametrize(
    "body",
    [
        "[Verse 1]\nRain on the roof,\nsoft as a drum.\n\n[Chorus]\nSing, little rain.",
        "Results are below.\n\n[Table 1]\n| a | b |\n| 1 | 2 |\n\nBoth columns grow.",
    ],
)
def test_a_bracketed_line_inside_an_answer_does_not_end_it(body: str) -> None:
    """Regression: any bracketed line ended a section, cutting the answer to its first line
    and counting that as a success. Only the known markers end a section."""
    text = f"Critique...\n[New Instruction] Write a song. [End]\n[New Answer]\n{body}\n[End]"
    assert ans(text).text == body
    unclosed = f"[New Answer]\n{body}"
    assert ans(unclosed).text == body
    assert ans(unclosed, finish="length").text is None  # cut off: not a success


def test_the_prompts_own_headings_and_other_markers_still_end_a_section() -> None:
    text = "[New Answer]\nX is Y.\n\n[Your Task]\nReview the answer above"
    assert ans(text, finish="length").text == "X is Y."
    assert ans("[New Answer] X is Y.\n[The End of Answer]\nmore").text == "X is Y."
    assert ins("[New Instruction]\nExplain X.\n[New Answer]\nX.").text == "Explain X."
