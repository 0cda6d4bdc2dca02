"""Perplexity filter: drop texts a causal LM finds implausible (DiffTune, Wang & Liu 2023, §2.3).

DiffTune scores each generated instruction with GPT2-Large and drops those with perplexity
above 150, resampling until enough remain. Offline there is no GPT-2, so the default scorer is
the embedded SmolLM2 (any causal LM can be named); the threshold stays 150 by default, but
perplexities differ between models, so check the distribution with ``tunesmith score ppl``.

Each text is scored whole after the model's start token (:mod:`tunesmith.llm.logprob`), cut to
``max_length`` tokens. An empty text has no perplexity: its score is None (reason in
``meta["missing_scores"]``) and the filter rejects it, never keeps it as "ppl 0".
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

from tunesmith.filters.score_decision import decide_by_score, note_missing
from tunesmith.llm.client import LLM
from tunesmith.llm.logprob import LogProbModel, UsesLogProbModel
from tunesmith.records import Record, check_field, field_text
from tunesmith.stages import Stage, StageResult

FIELDS = ("instruction", "input", "output", "prompt", "text")
DEFAULT_THRESHOLD = 150.0


def score_key(field: str) -> str:
    """``ppl`` for the instruction (DiffTune's use), ``ppl_<field>`` otherwise."""
    return "ppl" if field == "instruction" else f"ppl_{field}"


class PerplexityFilter(UsesLogProbModel, Stage):
    """Writes ``scores["ppl"]`` (``ppl_<field>`` for other fields) and drops ppl > threshold.

    Args:
        model: causal LM (HF folder/id; None = embedded SmolLM2). Ignored when ``scorer`` given.
        scorer: an existing scorer to share.
        field: instruction (default, as in DiffTune), input, output, prompt or text.
        threshold: maximum perplexity kept (None = score only, keep all).
        min_ppl: optional lower bound (very low ppl flags degenerate, repetitive text).
        batch_size, max_length, threads: scorer settings.
        rescore: score again even if the record already has the key.
    """

    name: ClassVar[str] = "ppl"
    per_record: ClassVar[bool] = True

    def __init__(
        self,
        *,
        model: str | None = None,
        scorer: LogProbModel | None = None,
        field: str = "instruction",
        threshold: float | None = DEFAULT_THRESHOLD,
        min_ppl: float | None = None,
        batch_size: int = 8,
        max_length: int = 1024,
        threads: int | None = None,
        rescore: bool = False,
    ) -> None:
        check_field(field, FIELDS)
        self.model = model
        self.field = field
        self.threshold = threshold
        self.min_ppl = min_ppl
        self.batch_size = batch_size
        self.max_length = max_length
        self.threads = threads
        self.rescore = rescore
        self._scorer = scorer

    @property
    def key(self) -> str:
        return score_key(self.field)

    def score(self, records: Sequence[Record]) -> list[Record]:
        """The records with their perplexity written (existing scores reused unless rescore)."""
        todo = [i for i, r in enumerate(records) if self.rescore or self.key not in r.scores]
        if not todo:
            return list(records)
        self.setup()
        assert self._scorer is not None
        scores = self._scorer.score_continuation(
            None, [field_text(records[i], self.field) for i in todo]
        )
        out = list(records)
        for i, s in zip(todo, scores, strict=True):
            scored = records[i].with_scores(**{self.key: s.ppl})
            out[i] = note_missing(scored, {self.key: s.reason})
        return out

    def run(self, records: Sequence[Record], llm: LLM | None = None) -> StageResult:
        return decide_by_score(
            self.score(records), self.key, min_value=self.min_ppl, max_value=self.threshold
        )
