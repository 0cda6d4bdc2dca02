"""Cheap rule-based filters: length bounds, keyword blacklists, identity strings, empty or
duplicated outputs, non-English text.

The usual first pass of instruction-data cleaning: Self-Instruct (Wang et al. 2023) drops
instructions by length and by keywords a text-only model cannot serve (image, graph, file...);
Alpaca-style cleanups drop "As an AI language model" refusals and answers naming another
assistant; duplicated and empty outputs are removed everywhere. Every rule's outcome is written
on the record (``scores["heuristics"]``: the list of rules hit), and the first rule hit is the
rejection reason.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import ClassVar

from tunesmith.errors import ConfigError
from tunesmith.llm.client import LLM
from tunesmith.records import Record
from tunesmith.stages import Rejected, Stage, StageResult

#: Phrases that reveal a model talking about itself (lower-case, matched on word boundaries).
IDENTITY_STRINGS = (
    "as an ai language model",
    "as a language model",
    "as an ai assistant",
    "as an ai model",
    "i am an ai language model",
    "i'm an ai language model",
    "i am a large language model",
    "i'm a large language model",
    "my knowledge cutoff",
)
#: Names of other assistants / their makers (matched case-insensitively on word boundaries).
ASSISTANT_NAMES = ("ChatGPT", "GPT-3", "GPT-3.5", "GPT-4", "OpenAI", "Bard", "Claude", "Anthropic")
#: Self-Instruct's keywords for tasks a text-only model cannot do (opt in with that preset).
SELF_INSTRUCT_BLACKLIST = (
    "image", "images", "graph", "graphs", "picture", "pictures", "file", "files", "map", "maps",
    "draw", "plot", "go to", "video", "audio", "music", "flowchart", "diagram",
)  # fmt: skip
_STOPWORD_TEXT = (
    "a an the and or but if of to in on at by for with from as is are was were be been it its"
    " this that these those i you he she we they me him her us them my your our their what"
    " which who how why when where not no do does did can could should would will shall may"
    " might have has had there here all any some each more most than then so such into about"
    " over"
)
_STOPWORDS = frozenset(_STOPWORD_TEXT.split())
#: Outputs that stand for "no output" (Alpaca's generator wrote ``<nooutput>``).
EMPTY_OUTPUTS = frozenset({"<nooutput>", "<no output>", "<no_output>", "nooutput", "no output"})
_WORD = re.compile(r"[^\W\d_]+(?:'[^\W\d_]+)?")


def phrase_pattern(phrases: Sequence[str]) -> re.Pattern[str] | None:
    """One case-insensitive regex matching any phrase on word boundaries (None if no phrases)."""
    if not phrases:
        return None
    alts = "|".join(re.escape(p) for p in sorted(phrases, key=len, reverse=True))
    return re.compile(rf"(?<!\w)(?:{alts})(?!\w)", re.I)


def self_reference_pattern(names: Sequence[str]) -> re.Pattern[str] | None:
    """A model naming itself or its maker: "I am ChatGPT", "I'm Claude", "my name is Bard",
    "trained by OpenAI", "developed by Anthropic" (a plain mention such as "Claude Monet" or
    "GPT-3 is a language model" is not one)."""
    if not names:
        return None
    alts = "|".join(re.escape(n) for n in sorted(names, key=len, reverse=True))
    return re.compile(
        rf"(?:\bI am|\bI'm|\bI’m|\bmy name is|\bas|\b(?:trained|developed|created|built|made)"
        rf" by)\s+(?:an?\s+)?(?:{alts})(?!\w)",
        re.I,
    )


def english_score(text: str) -> tuple[float, float]:
    """(share of letters that are ASCII, share of words that are English stopwords)."""
    letters = [c for c in text if c.isalpha()]
    ascii_share = sum(c.isascii() for c in letters) / len(letters) if letters else 1.0
    words = [w.lower() for w in _WORD.findall(text)]
    stop_share = sum(w in _STOPWORDS for w in words) / len(words) if words else 1.0
    return ascii_share, stop_share


def is_english(
    text: str, *, min_ascii: float = 0.8, min_stopwords: float = 0.05, min_words: int = 12
) -> bool:
    """A cheap detector: mostly ASCII letters and, for longer texts, some English stopwords.

    Texts with fewer than ``min_words`` words are judged by the ASCII share alone (short
    instructions and code have few stopwords).
    """
    ascii_share, stop_share = english_score(text)
    if ascii_share < min_ascii:
        return False
    return len(_WORD.findall(text)) < min_words or stop_share >= min_stopwords


def _normalize(text: str) -> str:
    return " ".join(text.lower().split())


class HeuristicFilter(Stage):
    """Rule-based filter; writes ``scores["heuristics"]`` (rules hit) and drops on any hit.

    Args:
        min_instruction_words, max_instruction_words: bounds on instruction+input words.
        min_output_words, max_output_words: bounds on output words (when an output exists).
        blacklist: words/phrases that drop a row when found in its instruction or input
            (``SELF_INSTRUCT_BLACKLIST`` is Self-Instruct's list).
        output_blacklist: words/phrases that drop a row when found in its output.
        identity_strings: "As an AI language model"-style phrases looked for in outputs.
        assistant_names: other assistants' names (and makers): an output where the model names
            itself or its maker with one ("I am ChatGPT", "trained by OpenAI") is dropped.
        drop_name_mentions: drop any mention of those names in outputs (stricter; also hits
            "Claude Monet" or an answer about GPT-3).
        require_output: drop rows with an empty output (off for instruction-only sets).
        drop_duplicate_outputs: drop a row whose output repeats an earlier row's output (within
            the rows given to one ``run`` call; the CLI passes the whole set) or its own
            instruction.
        duplicate_min_words: outputs shorter than this may repeat (class labels such as
            "Positive" or "3" are legitimately shared by many rows).
        english_only: drop rows whose ``language_field`` fails :func:`is_english`.
        language_field: "prompt" (instruction+input, default: translation outputs stay) or
            "text" (prompt and output).
        min_ascii, min_stopwords: the detector's thresholds.
    """

    name: ClassVar[str] = "heuristics"

    def __init__(
        self,
        *,
        min_instruction_words: int = 1,
        max_instruction_words: int | None = 512,
        min_output_words: int = 1,
        max_output_words: int | None = None,
        blacklist: Sequence[str] = (),
        output_blacklist: Sequence[str] = (),
        identity_strings: Sequence[str] = IDENTITY_STRINGS,
        assistant_names: Sequence[str] = ASSISTANT_NAMES,
        drop_name_mentions: bool = False,
        require_output: bool = True,
        drop_duplicate_outputs: bool = True,
        duplicate_min_words: int = 5,
        english_only: bool = True,
        language_field: str = "prompt",
        min_ascii: float = 0.8,
        min_stopwords: float = 0.05,
    ) -> None:
        self.min_instruction_words = min_instruction_words
        self.max_instruction_words = max_instruction_words
        self.min_output_words = min_output_words
        self.max_output_words = max_output_words
        self.blacklist = list(blacklist)
        self.output_blacklist = list(output_blacklist)
        self.identity_strings = list(identity_strings)
        self.assistant_names = list(assistant_names)
        self.drop_name_mentions = drop_name_mentions
        self.require_output = require_output
        self.drop_duplicate_outputs = drop_duplicate_outputs
        self.duplicate_min_words = duplicate_min_words
        self.english_only = english_only
        if language_field not in ("prompt", "text"):
            raise ConfigError(f"language field must be 'prompt' or 'text', got '{language_field}'")
        self.language_field = language_field
        self.min_ascii = min_ascii
        self.min_stopwords = min_stopwords
        self._blacklist = phrase_pattern(self.blacklist)
        self._output_blacklist = phrase_pattern(self.output_blacklist)
        self._identity = phrase_pattern(self.identity_strings)
        self._names = (
            phrase_pattern(self.assistant_names)
            if drop_name_mentions
            else self_reference_pattern(self.assistant_names)
        )

    @property
    def per_record(self) -> bool:  # type: ignore[override]  # depends on parameters
        """Without the duplicate-output rule every decision is per row (resumable batches)."""
        return not self.drop_duplicate_outputs

    def check(self, record: Record) -> list[str]:
        """The rules a record breaks, each as ``rule: detail`` (empty list = clean)."""
        hits: list[str] = []
        prompt, output = record.prompt_text(), record.output.strip()
        n_words = len(prompt.split())
        if n_words < self.min_instruction_words:
            hits.append(f"instruction_too_short: {n_words} words")
        if self.max_instruction_words is not None and n_words > self.max_instruction_words:
            hits.append(f"instruction_too_long: {n_words} words")
        if self._blacklist and (m := self._blacklist.search(prompt)):
            hits.append(f"blacklisted_keyword: {m.group(0)!r}")
        hits += self._check_output(output)
        if self.english_only:
            text = f"{prompt}\n{output}" if self.language_field == "text" else prompt
            if not is_english(text, min_ascii=self.min_ascii, min_stopwords=self.min_stopwords):
                ascii_share, stop_share = english_score(text)
                hits.append(f"non_english: ascii {ascii_share:.2f}, stopwords {stop_share:.2f}")
        return hits

    def _check_output(self, output: str) -> list[str]:
        if not output or output.lower() in EMPTY_OUTPUTS:
            return ["empty_output"] if self.require_output else []
        hits = []
        n_words = len(output.split())
        if n_words < self.min_output_words:
            hits.append(f"output_too_short: {n_words} words")
        if self.max_output_words is not None and n_words > self.max_output_words:
            hits.append(f"output_too_long: {n_words} words")
        if self._output_blacklist and (m := self._output_blacklist.search(output)):
            hits.append(f"blacklisted_output_keyword: {m.group(0)!r}")
        if self._identity and (m := self._identity.search(output)):
            hits.append(f"identity_string: {m.group(0)!r}")
        if self._names and (m := self._names.search(output)):
            hits.append(f"assistant_name: {m.group(0)!r}")
        return hits

    def run(self, records: Sequence[Record], llm: LLM | None = None) -> StageResult:
        result = StageResult()
        seen_outputs: dict[str, str] = {}
        for record in records:
            hits = self.check(record)
            out = _normalize(record.output)
            if self.drop_duplicate_outputs and len(out.split()) >= self.duplicate_min_words:
                if out == _normalize(record.instruction):
                    hits.append("output_repeats_instruction")
                elif out in seen_outputs:
                    hits.append(f"duplicate_output: same as {seen_outputs[out]}")
                else:
                    seen_outputs[out] = record.id
            scored = record.with_scores(heuristics=[h.split(":")[0] for h in hits])
            if hits:
                result.rejected.append(Rejected(scored, score=len(hits), reason="; ".join(hits)))
            else:
                result.kept.append(scored)
        return result
