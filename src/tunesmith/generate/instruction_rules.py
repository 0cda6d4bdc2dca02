"""The Self-Instruct / Alpaca heuristic instruction filters, applied in the published order.

Wang et al. 2023 (Self-Instruct, Sec. 2.3) and the stanford_alpaca script: drop instructions with
<= 3 or > 150 words, with a blacklisted word (whole word, case-insensitive), starting with
"Write a program", starting with punctuation, or starting with a non-ASCII character. Each rule
returns a score (what it measured) so a rejected row says why.

The rules read the text as given: Self-Instruct capitalises each parsed instruction first
(:func:`tunesmith.generate.parsing.parse_numbered_instructions`), so "write a program ..." meets
the "Write a program" rule, as in the reference code; Alpaca's reference does not capitalise.
"""

from __future__ import annotations

import dataclasses
import re
import string

#: Self-Instruct's keyword blacklist: tasks a text-only model cannot do.
SELF_INSTRUCT_BLACKLIST: tuple[str, ...] = (
    "image",
    "images",
    "graph",
    "graphs",
    "picture",
    "pictures",
    "file",
    "files",
    "map",
    "maps",
    "draw",
    "plot",
    "go to",
)
#: The words Alpaca adds to it.
ALPACA_EXTRA_BLACKLIST: tuple[str, ...] = ("video", "audio", "music", "flowchart", "diagram")


@dataclasses.dataclass(frozen=True)
class RuleDecision:
    """``rule`` is empty when the instruction passed every rule."""

    rule: str = ""
    score: object = None
    reason: str = ""

    @property
    def kept(self) -> bool:
        return not self.rule


def find_blacklisted(text: str, words: tuple[str, ...]) -> str | None:
    """The first blacklisted word found in ``text`` as a whole word (case-insensitive)."""
    for word in words:
        if re.search(r"\b" + re.escape(word) + r"\b", text, flags=re.IGNORECASE):
            return word
    return None


def check_instruction(
    text: str,
    *,
    min_words: int = 3,
    max_words: int = 150,
    blacklist: tuple[str, ...] = SELF_INSTRUCT_BLACKLIST,
) -> RuleDecision:
    """Apply the heuristic rules in order; the first one that fails decides.

    Args:
        text: a cleaned instruction.
        min_words: instructions with this many words or fewer are dropped (3 in the paper).
        max_words: instructions with more words are dropped (150).
        blacklist: whole words that disqualify an instruction.
    """
    n_words = len(text.split())
    if n_words <= min_words or n_words > max_words:
        return RuleDecision(
            "length", n_words, f"{n_words} words (needs {min_words} < n <= {max_words})"
        )
    word = find_blacklisted(text, blacklist)
    if word is not None:
        return RuleDecision("blacklist", word, f"contains '{word}'")
    if text.startswith("Write a program"):
        return RuleDecision("write_program", None, "starts with 'Write a program'")
    if text[0] in string.punctuation:
        return RuleDecision("punctuation", text[0], "starts with punctuation")
    if not text[0].isascii():
        return RuleDecision("non_ascii", text[0], "starts with a non-ASCII character")
    return RuleDecision()
