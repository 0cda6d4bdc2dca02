"""Decontamination: drop training rows that overlap an evaluation set.

Two tests, as in common practice: a shared word n-gram (13-grams, as in GPT-3's contamination
analysis, Brown et al. 2020), and optionally ROUGE-L F above a threshold (the Self-Instruct
similarity measure, via :class:`tunesmith.filters.novelty.NoveltyFilter`, exact ``rouge-score``
decisions). Evaluation items shorter than n words are matched as a whole word sequence when
they have at least ``min_short_words`` words, so short benchmark prompts are caught too.

The evaluation files are the user's (any format :func:`tunesmith.io.read_records` reads); they
are loaded in :meth:`Decontaminator.setup`, never inside ``run``.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

from tunesmith.errors import ConfigError
from tunesmith.llm.client import LLM
from tunesmith.records import Record, check_field
from tunesmith.stages import Rejected, Stage, StageResult

_WORD = re.compile(r"[a-z0-9]+")
FIELDS = ("instruction", "prompt", "output", "text")


def words(text: str) -> list[str]:
    """Lower-cased alphanumeric words (punctuation and case never hide an overlap)."""
    return _WORD.findall(text.lower())


def ngrams(tokens: Sequence[str], n: int) -> set[tuple[str, ...]]:
    return {tuple(tokens[i : i + n]) for i in range(len(tokens) - n + 1)}


def _text(record: Record, field: str) -> str:
    if field == "instruction":
        return record.instruction
    if field == "prompt":
        return record.prompt_text()
    if field == "output":
        return record.output
    return f"{record.prompt_text()}\n{record.output}"


class Decontaminator(Stage):
    """Drops rows sharing an n-gram with (or too ROUGE-L-similar to) an evaluation set.

    Writes ``scores["decontam_ngrams"]`` (shared n-grams) and, when ``rouge_threshold`` is set,
    ``scores["decontam_rouge_l"]`` (max ROUGE-L F against the eval items).

    Args:
        eval_files: evaluation datasets (jsonl/json/parquet/datasets folder).
        eval_texts: evaluation texts given directly (added to those from the files).
        eval_field: what to take from each eval record: prompt (instruction+input, default),
            instruction, output or text.
        field: what to check on each training row (same choices; default prompt).
        n: n-gram size in words (13 default).
        min_short_words: eval items shorter than n but at least this long match as a whole.
        rouge_threshold: also drop when max ROUGE-L F > threshold (None = off).
    """

    name: ClassVar[str] = "decontam"
    per_record: ClassVar[bool] = True

    def __init__(
        self,
        *,
        eval_files: Sequence[str | Path] = (),
        eval_texts: Sequence[str] = (),
        eval_field: str = "prompt",
        field: str = "prompt",
        n: int = 13,
        min_short_words: int = 8,
        rouge_threshold: float | None = None,
    ) -> None:
        for f in (eval_field, field):
            check_field(f, FIELDS)
        if n < 1:
            raise ConfigError(f"n-gram size must be >= 1, got {n}")
        if rouge_threshold is not None and not 0.0 <= rouge_threshold <= 1.0:
            raise ConfigError(f"ROUGE-L threshold must be in [0, 1], got {rouge_threshold}")
        self.eval_files = [str(p) for p in eval_files]
        self.eval_texts = list(eval_texts)
        self.eval_field = eval_field
        self.field = field
        self.n = n
        self.min_short_words = min_short_words
        self.rouge_threshold = rouge_threshold
        self._items: list[tuple[str, str]] | None = None  # (source label, text)
        self._grams: dict[tuple[str, ...], int] = {}  # n-gram -> first eval item index
        self._short: dict[int, dict[tuple[str, ...], int]] = {}  # length -> whole short items
        self._rouge: Any = None

    def setup(self) -> None:
        """Read the evaluation files and index their n-grams (and ROUGE-L pool)."""
        if self._items is not None:
            return
        from tunesmith.io import read_records

        items = [(f"eval_texts[{i}]", t) for i, t in enumerate(self.eval_texts)]
        for path in self.eval_files:
            for j, rec in enumerate(read_records(path)):
                items.append((f"{Path(path).name}#{j}", _text(rec, self.eval_field)))
        if not items:
            raise ConfigError("decontamination needs eval files or eval texts")
        for idx, (_, text) in enumerate(items):
            toks = words(text)
            if len(toks) >= self.n:
                for g in ngrams(toks, self.n):
                    self._grams.setdefault(g, idx)
            elif len(toks) >= self.min_short_words:
                self._short.setdefault(len(toks), {}).setdefault(tuple(toks), idx)
        if self.rouge_threshold is not None:
            from tunesmith.filters.novelty import NoveltyFilter

            self._rouge = NoveltyFilter(self.rouge_threshold, pool=[t for _, t in items])
        self._items = items

    def check(self, text: str) -> tuple[int, int | None, float | None, int | None]:
        """(shared n-grams, first eval item hit, max ROUGE-L F or None, its eval item)."""
        self.setup()
        toks = words(text)
        shared, first = 0, None
        for g in ngrams(toks, self.n):
            if g in self._grams:
                shared += 1
                first = self._grams[g] if first is None else first
        for length, table in self._short.items():
            for g in ngrams(toks, length):
                if g in table:
                    shared += 1
                    first = table[g] if first is None else first
        if self._rouge is None:
            return shared, first, None, None
        decision = self._rouge.check([text], commit=False)[0]
        return shared, first, decision.max_score, decision.nearest

    def run(self, records: Sequence[Record], llm: LLM | None = None) -> StageResult:
        self.setup()
        assert self._items is not None
        result = StageResult()
        for record in records:
            shared, first, rouge, nearest = self.check(_text(record, self.field))
            scores: dict[str, Any] = {"decontam_ngrams": shared}
            if rouge is not None:
                scores["decontam_rouge_l"] = rouge
            scored = record.with_scores(**scores)
            if shared and first is not None:
                where = self._items[first][0]
                reason = f"shares {shared} word n-gram(s) (n={self.n}) with {where}"
                result.rejected.append(Rejected(scored, score=shared, reason=reason))
            elif (
                rouge is not None
                and self.rouge_threshold is not None
                and rouge > self.rouge_threshold
            ):
                where = self._items[nearest][0] if nearest is not None else "eval set"
                reason = f"ROUGE-L {rouge:.3f} > {self.rouge_threshold} with {where}"
                result.rejected.append(Rejected(scored, score=rouge, reason=reason))
            else:
                result.kept.append(scored)
        return result
