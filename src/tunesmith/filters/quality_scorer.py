"""LLM quality scores (Humpback 1-5, AlpaGasus 0-5), with a keep threshold k.

Two rubrics ship as replaceable templates under ``prompts/judge_score/``:

- ``humpback``: instruction backtranslation's self-curation (Li et al. 2023, "Self-Alignment
  with Instruction Backtranslation"): the model rates how good an example of an AI-assistant
  answer each (instruction, output) pair is on a 5-point rubric (1 off target ... 5 perfect),
  reasoning first and ``Score: n`` on the last line; the paper keeps score >= k (k = 5 for A5).
- ``alpagasus``: an accuracy rating in the style of AlpaGasus (Chen et al. 2023, "AlpaGasus:
  Training a Better Alpaca with Fewer Data"): on the paper's 0-5 scale, rating first, then an
  explanation; the paper keeps ratings >= 4.5 (the default here; on whole numbers that is 5).

Each rubric is parsed the way its prompt asks: Humpback's LAST ``Score: n``
(:func:`parse_score_detail`), AlpaGasus' FIRST rating (:func:`parse_first_rating`: a bare value
on the first line counts, and so does 0). Anything else is a parse failure, rejected with a
reason starting ``parse failure`` so reports can count them.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import ClassVar

from tunesmith.errors import ConfigError
from tunesmith.llm.base import Completion, Request, SamplingParams
from tunesmith.prompts import PromptTemplate
from tunesmith.records import Record
from tunesmith.stages import LLMStage, Rejected

RUBRICS = ("humpback", "alpagasus")
DEFAULT_MIN_SCORE = {"humpback": 5.0, "alpagasus": 4.5}
SCALE = {"humpback": (1, 5), "alpagasus": (0, 5)}
PARSE_FAILURE = "parse failure"

_WORDS = {
    w: i
    for i, w in enumerate("zero one two three four five six seven eight nine ten".split())  # noqa: SIM905
}
# "Score: 4", "**Score:** 4/5", "score = 4 out of 5", "Final score: four", "Score: [4]"
_MARK_RE = re.compile(r"\bscore\b\s*[*_]*\s*[:=]", re.I)
# the first line: "Score: 4", "**Rating:** 4.5", or a bare "4", "4/5", "4 out of 5" alone on it
_LEAD_RE = re.compile(
    r"\s*[*_#>\s]*(?:(?:score|rating)\b\s*[*_]*\s*[:=]|"
    r"(?=[*_\[(\s]*-?\d+(?:\.\d+)?(?:\s*(?:/|out of)\s*\d+)?[\s*_.\])]*(?:\n|$)))",
    re.I,
)
_VALUE_RE = re.compile(
    r"\s*[*_\[(<\"']*\s*([A-Za-z]+|-?\d+(?:\.\d+)?)"
    r"(\s*[-\u2013]\s*\d)?(?:\s*(?:/|out of)\s*(\d+))?",
    re.I,
)


def _read_value(
    text: str, pos: int, low: int, high: int, fractional: bool, what: str
) -> tuple[float | None, str]:
    """The rating that starts at ``text[pos]`` (after a ``Score:`` mark), range-checked."""
    found = _VALUE_RE.match(text, pos)
    if found is None:
        return None, f"{what} has no number ({text[pos : pos + 20].strip()!r})"
    raw, is_range, scale = found.group(1), found.group(2), found.group(3)
    word = raw.lower()
    if word in _WORDS:
        value: float = _WORDS[word]
    else:
        try:
            value = float(raw)
        except ValueError:
            return None, f"{what} is not a number ({raw[:20]!r})"
    if is_range:
        return None, f"{what} is a range ({found.group(0).strip()[:30]!r})"
    if scale is not None and int(scale) != high:
        return None, f"score {raw}/{scale} is on another scale than {low}-{high}"
    if value != int(value) and not fractional:
        return None, f"score {raw} is not a whole number"
    if not low <= value <= high:
        return None, f"score {raw} outside {low}-{high}"
    return (value if fractional else int(value)), ""


def parse_score_detail(
    text: str, low: int = 1, high: int = 5, *, fractional: bool = False
) -> tuple[float | None, str]:
    """The last ``Score: n`` in ``text`` in [low, high] (an int unless ``fractional``), or None
    and why not (Humpback's rule: reasoning first, the score on the last line).

    Only the LAST ``Score:`` counts: if it carries no usable number the reply is a failure even
    when an earlier one had a number. A range ("Score: 1-5", the template's placeholder echoed
    back) and a score on another scale ("Score: 8/10") are failures, not scores.
    """
    marks = list(_MARK_RE.finditer(text or ""))
    if not marks:
        return None, "no 'Score: n' line"
    return _read_value(text, marks[-1].end(), low, high, fractional, "last 'Score:'")


def parse_first_rating(
    text: str, low: int = 0, high: int = 5, *, fractional: bool = False
) -> tuple[float | None, str]:
    """The rating a reply gives FIRST, or None and why not (AlpaGasus' rule).

    The AlpaGasus prompt asks for the rating on the first line, then an explanation, so the
    first line's rating counts: a bare value ("4", "4.5", "4/5") or ``Score: n`` /
    ``Rating: n``. Without one there, the first ``Score: n`` of the reply counts (a model that
    writes a preamble first); a later score the explanation mentions ("a Score: 2 would be
    unfair") never overrides it.
    """
    text = text or ""
    lead = _LEAD_RE.match(text)
    if lead is not None:
        return _read_value(text, lead.end(), low, high, fractional, "first line's rating")
    first = _MARK_RE.search(text)
    if first is None:
        return None, "no rating on the first line and no 'Score: n'"
    return _read_value(text, first.end(), low, high, fractional, "first 'Score:'")


def parse_score(text: str, low: int = 1, high: int = 5) -> int | None:
    """The LAST ``Score: n`` in a judge's reply, range-checked; None when there is none valid."""
    value = parse_score_detail(text, low, high)[0]
    return None if value is None else int(value)


class QualityScorer(LLMStage):
    """Rates each (instruction, input, output) with an LLM on a rubric; keeps score >= k.

    Writes ``scores[key]`` (the rating, None on a parse failure) and ``meta[key + "_rationale"]``
    (the judge's text, truncated).

    Args:
        rubric: "humpback" (self-curation, reasoning then score) or "alpagasus" (accuracy).
        min_score: k; keep score >= k (default 5 for Humpback, as A5; 4.5 for AlpaGasus as in
            the paper; 4.5 for both when ``fractional``).
        fractional: accept ratings such as 4.5 (AlpaGasus' judge gave them; the packaged
            templates then allow halves).
        key: the score name written on records.
        keep_unparsed: keep rows whose reply had no valid score (rejected by default).
        temperature, max_tokens: sampling (greedy by default; the reasoning needs room).
        prompts_dir: folder overriding ``judge_score/<rubric>.j2`` and ``<rubric>_system.j2``.
        rationale_chars: how much of the judge's text to keep in meta (0 = none).
    """

    name: ClassVar[str] = "quality"

    def __init__(
        self,
        *,
        rubric: str = "humpback",
        min_score: float | None = None,
        fractional: bool = False,
        key: str = "quality",
        keep_unparsed: bool = False,
        temperature: float = 0.0,
        max_tokens: int = 384,
        prompts_dir: str | Path | None = None,
        rationale_chars: int = 600,
    ) -> None:
        if rubric not in RUBRICS:
            raise ConfigError(f"unknown rubric '{rubric}' (choose from {', '.join(RUBRICS)})")
        self.rubric = rubric
        self.fractional = fractional
        default = 4.5 if fractional else DEFAULT_MIN_SCORE[rubric]
        self.min_score = default if min_score is None else min_score
        low, high = SCALE[rubric]
        if not low <= self.min_score <= high:
            raise ConfigError(f"min score must be {low}-{high}, got {self.min_score}")
        self.key = key
        self.keep_unparsed = keep_unparsed
        self.temperature = temperature
        self.max_tokens = max_tokens
        self.prompts_dir = str(prompts_dir) if prompts_dir else None
        self.rationale_chars = rationale_chars
        self._prompt = PromptTemplate("judge_score", rubric, prompts_dir)
        self._system = PromptTemplate("judge_score", f"{rubric}_system", prompts_dir)

    @property
    def prompt_hashes(self) -> dict[str, str]:
        return {t.key: t.sha256 for t in (self._prompt, self._system)}

    def format_input(self, record: Record) -> Request:
        user = self._prompt.render(
            instruction=record.instruction,
            input=record.input,
            output=record.output,
            fractional=self.fractional,
        )
        messages = []
        system = self._system.render().strip()
        if system:
            messages.append({"role": "system", "content": system})
        messages.append({"role": "user", "content": user})
        params = SamplingParams(temperature=self.temperature, max_tokens=self.max_tokens)
        return Request.chat(messages, params, tag=self.name)

    def format_output(self, completion: Completion, record: Record) -> Record | Rejected:
        low, high = SCALE[self.rubric]
        parse = parse_first_rating if self.rubric == "alpagasus" else parse_score_detail
        score, why = parse(completion.text, low, high, fractional=self.fractional)
        scored = record.with_scores(**{self.key: score})
        if self.rationale_chars:
            scored = scored.with_meta(
                **{f"{self.key}_rationale": completion.text.strip()[: self.rationale_chars]}
            )
        if score is None:
            if completion.finish_reason == "length":
                why += " (reply cut at max_tokens)"
            if self.keep_unparsed:
                return scored
            return Rejected(scored, score=None, reason=f"{PARSE_FAILURE}: {why}")
        if score < self.min_score:
            return Rejected(scored, score=score, reason=f"{self.key} {score} < {self.min_score}")
        return scored
