"""Extract marked sections (``[New Instruction] ... [End]``) from real, messy model output.

Reflection-Tuning (Li et al. 2023) asks the oracle model to put its new instruction and answer
between markers. Real models wrap markers in markdown (``**[New Answer]**:``, ``### New
Answer``), drop the brackets, forget the end marker, repeat the prompt's placeholder ("your
instruction"), or stop at ``max_tokens`` mid-section. This module turns such text into either a
clean section or a failure with a reason; it never returns half a section silently.

The public reference post-processing falls back to the original row when a section is empty or
a placeholder; callers here do the same, but record the failure instead of hiding it.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Sequence

#: Section contents that only echo the prompt's format description.
PLACEHOLDERS = frozenset(
    {
        "",
        "n/a",
        "na",
        "none",
        "null",
        "...",
        "tbd",
        "todo",
        "your instruction",
        "your new instruction",
        "your answer",
        "your new answer",
        "your better answer",
        "your improved answer",
        "new instruction",
        "new answer",
        "better answer",
        "instruction",
        "answer",
    }
)
_PLACEHOLDER_HINT = re.compile(
    r"\b(?:your|the|a|new|better|improved|detailed|insert|put|write|goes|here|instruction|answer)\b"
)
_WRAP = r"[ \t>#*_`~\"']*"  # markdown/quote characters models put around markers


@dataclasses.dataclass(frozen=True)
class Section:
    """A parsed section: ``text`` when usable, else ``failure`` says why.

    ``closed`` is False when the section ran to the end of the output without an end marker (or
    the next section's marker), which is fine unless the model was cut off by ``max_tokens``.
    """

    text: str | None
    failure: str | None = None
    closed: bool = True

    @property
    def ok(self) -> bool:
        return self.text is not None


def marker_pattern(name: str) -> re.Pattern[str]:
    """A tolerant pattern for a start marker named ``name`` (e.g. "New Instruction").

    Matches ``[New Instruction]`` anywhere (case-insensitive, with or without a colon, a leading
    "The" and markdown around it) and an unbracketed ``New Instruction:`` heading at a line start.
    """
    words = r"\s+".join(re.escape(w) for w in name.split())
    bracketed = rf"{_WRAP}\[\s*(?:the\s+)?{words}\s*\]{_WRAP}:?{_WRAP}"
    heading = rf"(?:^|\n){_WRAP}(?:\d+[.)]\s*)?{_WRAP}{words}{_WRAP}:{_WRAP}"
    heading_bare = rf"(?:^|\n)[ \t]*#+[ \t]*{words}[ \t]*:?[ \t]*(?=\n)"
    return re.compile(rf"{bracketed}|{heading}|{heading_bare}", re.IGNORECASE)


#: The packaged reflection prompts' own bracketed headings: a model that writes one on a line of
#: its own has moved on from the section (it echoes the prompt). Change with a custom template.
PROMPT_HEADINGS = ("Instruction", "Input", "The Start of Answer", "Your Task")


def end_pattern(name: str = "End", headings: Sequence[str] = PROMPT_HEADINGS) -> re.Pattern[str]:
    """Where a section stops: the end marker, or one of the prompt's ``headings`` on its own line.

    Besides ``[End]`` / ``**[END]**`` this accepts the variants small models write, such as
    ``[New End]`` or ``[The End of Answer]`` (a bracketed tag containing the end word). Only
    known markers stop a section: other bracketed lines (``[Verse 1]``, ``[Table 1]``) are
    content of the answer.
    """
    words = r"\s+".join(re.escape(w) for w in name.split())
    tagged = rf"{_WRAP}\[[^\]\n]{{0,30}}\b{words}\b[^\]\n]{{0,30}}\]{_WRAP}"
    known = "|".join(r"\s+".join(re.escape(w) for w in h.split()) for h in headings)
    if not known:
        return re.compile(tagged, re.IGNORECASE)
    heading = rf"(?:^|\n)[ \t>#*_]*\[\s*(?:{known})\s*\][ \t*_:]*(?=\n|$)"
    return re.compile(rf"{tagged}|{heading}", re.IGNORECASE)


def is_placeholder(text: str) -> bool:
    """True for empty sections and ones that only repeat the format's placeholder."""
    norm = re.sub(r"[\s\[\]<>{}()*_`\"'.:]+", " ", text).strip().lower()
    if norm in PLACEHOLDERS or not re.search(r"\w", norm):
        return True
    # "<your new instruction here>", "the detailed answer": only format words, no content.
    return (
        norm.startswith(("your ", "the ", "insert "))
        and not _PLACEHOLDER_HINT.sub("", norm).strip()
    )


def clean_section(text: str) -> str:
    """Strip whitespace, stray markdown emphasis and wrapping quotes around a section."""
    text = text.strip()
    text = re.sub(r"^(?:[*_]{1,3}|`{1,3})\s*", "", text)
    text = re.sub(r"\s*(?:[*_]{1,3}|`{1,3}|-{3,})$", "", text)
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "\"'":
        text = text[1:-1]
    return text.strip()


def extract_section(
    text: str,
    name: str,
    *,
    others: Sequence[str] = (),
    end: str = "End",
    finish_reason: str = "stop",
    headings: Sequence[str] = PROMPT_HEADINGS,
) -> Section:
    """The content of section ``name`` in ``text``.

    The section ends at the end marker, at the start marker of any section in ``others``, at one
    of the prompt's ``headings`` on a line of its own, or at the end of the text; no other
    bracketed line ends it. Every occurrence of the marker is tried in order and the first with
    real content wins (models sometimes echo the format line, placeholder and all, first).

    Args:
        text: the model's output.
        name: the start marker's words, e.g. "New Instruction".
        others: names of the other sections (they also end this one).
        end: the end marker's words.
        headings: the prompt's own bracketed headings (see :data:`PROMPT_HEADINGS`).
        finish_reason: the completion's finish reason; an unclosed section in a "length"
            completion is reported as truncated instead of returned.
    """
    starts = list(marker_pattern(name).finditer(text))
    if not starts:
        return Section(None, f"no [{name}] section")
    stops = [end_pattern(end, headings)] + [marker_pattern(o) for o in others]
    failure = f"[{name}] section is empty or a placeholder"
    for match in starts:
        rest = text[match.end() :]
        cut = min((m.start() for p in stops if (m := p.search(rest))), default=None)
        body = clean_section(rest if cut is None else rest[:cut])
        closed = cut is not None
        if is_placeholder(body):
            continue
        if not closed and finish_reason == "length":
            return Section(None, f"[{name}] section cut off at max_tokens", closed=False)
        return Section(body, None, closed=closed)
    return Section(None, failure)
