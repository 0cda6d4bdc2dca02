"""Named parsers that turn a judge's reply into a vote.

A vote is about the two outputs *as shown* (first, second): ``pref`` is AlpacaEval's preference
in [1, 2] for the second output (1: the first is better, 2: the second, 1.5: a tie), and
``scores`` holds any numbers the judge gave. A reply that cannot be read gives ``pref=None`` and
a ``reason`` starting with "parse failure"; it is counted, never guessed.

- ``verdict``: MT-bench's pairwise format (Zheng et al. 2023): a final ``[[A]]``/``[[B]]``/
  ``[[tie]]``; brackets may be missing ("Verdict: B", "**A**", "Assistant A is better").
- ``score_pair``: two scores, one per output (the Vicuna/SeDi-Instruct protocol: "8 7" on the
  first line, or labelled "Assistant 1: 8"), decimals allowed, range-checked.
- ``grade``: one score for one output (MT-bench single-answer grading, ``Rating: [[7]]``).
- ``first_token_preference``: AlpacaEval 2: the judge answers with one identifier token; the
  preference is ``2 - P(first) / (P(first) + P(second))`` from the first token's top log-probs.
"""

from __future__ import annotations

import dataclasses
import math
import re
from collections.abc import Callable

from tunesmith.judge.spec import JudgeSpec
from tunesmith.llm.base import Completion
from tunesmith.registry import Registry

FAILURE = "parse failure"


@dataclasses.dataclass(frozen=True)
class Vote:
    """One reply read: preference for the second shown output, scores, or why not."""

    pref: float | None = None
    scores: tuple[float, ...] = ()
    reason: str = ""

    @property
    def ok(self) -> bool:
        return self.pref is not None or bool(self.scores)


Parser = Callable[[Completion, JudgeSpec], Vote]
PARSERS: Registry[Parser] = Registry("judge parser")
_TIE = {"tie", "c", "draw", "equal", "same"}


def _fail(why: str) -> Vote:
    return Vote(reason=f"{FAILURE}: {why}")


def _pref_from(winner: str, spec: JudgeSpec) -> float:
    first, second = spec.identifiers
    if winner == first or (winner.lower() == first.lower() != second.lower()):
        return 1.0
    if winner == second or (winner.lower() == second.lower() != first.lower()):
        return 2.0
    return 1.5


def parse_verdict(completion: Completion, spec: JudgeSpec) -> Vote:
    """The last ``[[X]]`` verdict, else a verdict stated in prose on the last three lines.

    In prose the identifiers must keep their case ("a longer answer" names nothing), and a
    line naming both outputs ("A or B") is a failure, not a guess.
    """
    text = completion.text or ""
    a, b = (re.escape(i) for i in spec.identifiers)
    bracketed = re.findall(rf"\[\[\s*({a}|{b}|(?i:tie|c|draw))\s*\]\]", text)
    if not bracketed and spec.identifiers[0].lower() != spec.identifiers[1].lower():
        bracketed = re.findall(rf"\[\[\s*({a}|{b})\s*\]\]", text, re.I)
    if bracketed:
        return Vote(pref=_pref_from(bracketed[-1], spec))
    names = rf"({a}|{b}|C|(?i:tie|draw))"
    lines = [ln for ln in text.strip().splitlines() if ln.strip()]
    for line in reversed(lines[-3:]):
        found = _prose_verdicts(line.strip(), names)
        if len(found) > 1:
            return _fail(f"both outputs named in the verdict line {line.strip()[:60]!r}")
        if found:
            return Vote(pref=_pref_from(found.pop(), spec))
    return _fail("no [[verdict]] found")


def _prose_verdicts(line: str, names: str) -> set[str]:
    """Winners a line states: "Verdict: [B]", "**A**", "Assistant A is better", "I choose B"."""
    patterns = (
        rf"(?i:verdict|winner|choice|answer|better)\s*(?:is)?\s*[:\-]?\s*[*_\[(\"']*\s*{names}\b",
        rf"^\W*{names}\W*$",
        rf"\b(?i:assistant|output|answer|response|reply)\s*\(?{names}\)?\s+(?i:is\s+(?:better|the\s+winner))",
        rf"\b(?i:chose|choose|pick|prefer|select)\w*\b[^.\n]*?\b{names}\b",
    )
    found: set[str] = set()
    for pat in patterns:
        found.update(re.findall(pat, line))
    if re.search(r"\b(?:it'?s|is)\s+a\s+(?:tie|draw)\b|\bequally good\b", line, re.I):
        found.add("tie")
    both = re.search(rf"\b{names}\s*(?i:or|and|/|vs\.?)\s*{names}\b", line)
    if both:  # "A or B": a hedge, not a verdict
        found.update(both.groups())
    return {"tie" if f.lower() in _TIE else f for f in found}


_NUM = r"(-?\d+(?:\.\d+)?)"


def _in_scale(values: list[float], spec: JudgeSpec) -> str:
    low, high = spec.scale
    bad = [v for v in values if not low <= v <= high]
    return f"score {bad[0]:g} outside {low:g}-{high:g}" if bad else ""


def parse_score_pair(completion: Completion, spec: JudgeSpec) -> Vote:
    """Two scores: labelled ("Assistant 1: 8", "Output (b): 7.5") or the first line's two
    numbers ("8 7", "8/10, 7/10"); the preference compares them."""
    text = completion.text or ""
    ids = "|".join(re.escape(i) for i in (*spec.identifiers, "1", "2"))
    labelled = re.findall(
        rf"(?:assistant|output|answer|response)\s*\(?({ids})\)?\W{{0,4}}?(?:score)?\W{{0,3}}{_NUM}",
        text,
        re.I,
    )
    values: list[float] = []
    if len(labelled) >= 2:
        by_label = {lab.lower(): float(v) for lab, v in labelled}
        first = by_label.get(spec.identifiers[0].lower(), by_label.get("1"))
        second = by_label.get(spec.identifiers[1].lower(), by_label.get("2"))
        if first is not None and second is not None:
            values = [first, second]
    if not values:
        for line in text.strip().splitlines()[:3]:
            # "Assistant 1 received 8": the label's digit is a name, not a score
            line = re.sub(rf"(?i:assistant|output|answer|response)\s*\(?(?:{ids})\)?", " ", line)
            nums = re.findall(rf"{_NUM}(?:\s*/\s*\d+)?", line)
            if len(nums) >= 2:
                values = [float(nums[0]), float(nums[1])]
                break
    if len(values) != 2:
        return _fail("no pair of scores found")
    if why := _in_scale(values, spec):
        return _fail(why)
    s1, s2 = values
    return Vote(pref=1.5 if s1 == s2 else (2.0 if s2 > s1 else 1.0), scores=(s1, s2))


def parse_grade(completion: Completion, spec: JudgeSpec) -> Vote:
    """One score: the last ``[[n]]``, else the last "Rating:/Score: n" or "n/10"."""
    text = completion.text or ""
    found = re.findall(rf"\[\[\s*{_NUM}\s*(?:/\s*\d+)?\s*\]\]", text)
    if not found:
        found = re.findall(rf"(?:rating|score|grade)\W{{0,4}}{_NUM}", text, re.I)
    if not found:
        found = re.findall(rf"{_NUM}\s*/\s*{_num_re(spec.scale[1])}\b", text)
    if not found:
        return _fail("no rating found")
    value = float(found[-1])
    if why := _in_scale([value], spec):
        return _fail(why)
    return Vote(scores=(value,))


def _num_re(x: float) -> str:
    return re.escape(f"{x:g}")


def parse_first_token_preference(completion: Completion, spec: JudgeSpec) -> Vote:
    """AlpacaEval 2's continuous preference from the first generated token's top log-probs.

    Tokens are compared after stripping spaces, quotes, brackets and markdown, case kept
    (AlpacaEval's identifiers "m"/"M" differ only by case). Without log-probs (a backend that
    returns none) the first word of the text decides, as a hard 1 or 2.
    """
    first, second = spec.identifiers
    tops = completion.top_logprobs or []
    if tops:
        p1 = p2 = 0.0
        for token, lp in tops[0].items():
            t = _clean_token(token)
            if t == first:
                p1 += math.exp(lp)
            elif t == second:
                p2 += math.exp(lp)
        if p1 + p2 > 0:
            return Vote(pref=2.0 - p1 / (p1 + p2), scores=(p1, p2))
    words = [_clean_token(w) for w in (completion.text or "").split()]
    named = {w for w in words if w in (first, second)}
    if len(named) == 2:
        return _fail("both identifiers in the reply")
    if words and words[0] in (first, second):
        return Vote(pref=1.0 if words[0] == first else 2.0, reason="from text (no log-probs)")
    return _fail(f"reply does not start with {first!r} or {second!r}")


def _clean_token(token: str) -> str:
    return token.strip().strip("\"'`*_()[]{}<>:.,").strip()


PARSERS.register("verdict", parse_verdict)
PARSERS.register("score_pair", parse_score_pair)
PARSERS.register("grade", parse_grade)
PARSERS.register("first_token_preference", parse_first_token_preference)
