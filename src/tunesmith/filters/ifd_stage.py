"""The IFD / reverse-IFD filter stage (Cherry LLM, Li et al. 2023; Selective Reflection-Tuning).

Scores each record with :func:`tunesmith.filters.ifd.score_ifd` (the computation and its
tokenization rule live there) and keeps a range or the top share of the rows.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import ClassVar

from tunesmith.filters.ifd import score_ifd
from tunesmith.filters.score_decision import check_range, decide_by_score, note_missing
from tunesmith.llm.client import LLM
from tunesmith.llm.logprob import LogProbModel, UsesLogProbModel
from tunesmith.prompts import PromptTemplate
from tunesmith.records import Record
from tunesmith.stages import Stage, StageResult


class IFDStage(UsesLogProbModel, Stage):
    """Scores IFD / r-IFD on every record and keeps a range or the top share.

    Writes ``scores["ifd"]``, ``scores["rifd"]`` and the four perplexities. Records that already
    carry an ``ifd`` score are not rescored unless ``rescore`` (so a scored file can be filtered
    again instantly).

    Args:
        model: causal LM (HF folder/id; None = embedded SmolLM2). Ignored when ``scorer`` given.
        scorer: an existing scorer to share (e.g. with Reflection-Tuning's selection).
        batch_size, max_length, threads: scorer settings.
        reverse: compute r-IFD as well.
        key: the score the decision uses ("ifd" or "rifd").
        min_value, max_value: keep rows with key in [min, max] (inclusive). Cherry LLM first
            discards pairs with IFD > 1 (the instruction does not help): ``max_value=1.0``.
        top_share: keep the best share of the rows in each ``run`` call (highest IFD first for
            "ifd", lowest first for "rifd"); the CLI passes the whole set in one call.
        prompts_dir: folder overriding ``ifd/prompt.j2`` / ``ifd/reverse.j2``.
        rescore: score again even if the record already has the key.
    """

    name: ClassVar[str] = "ifd"

    def __init__(
        self,
        *,
        model: str | None = None,
        scorer: LogProbModel | None = None,
        batch_size: int = 8,
        max_length: int = 1024,
        threads: int | None = None,
        reverse: bool = True,
        key: str = "ifd",
        min_value: float | None = None,
        max_value: float | None = None,
        top_share: float | None = None,
        prompts_dir: str | Path | None = None,
        rescore: bool = False,
    ) -> None:
        check_range(min_value, max_value, top_share)
        self.model = model
        self.batch_size = batch_size
        self.max_length = max_length
        self.threads = threads
        self.reverse = reverse
        self.key = key
        self.min_value = min_value
        self.max_value = max_value
        self.top_share = top_share
        self.prompts_dir = str(prompts_dir) if prompts_dir else None
        self.rescore = rescore
        self._scorer = scorer
        self._prompt = PromptTemplate("ifd", "prompt", prompts_dir)
        self._reverse_prompt = PromptTemplate("ifd", "reverse", prompts_dir)

    @property
    def per_record(self) -> bool:  # type: ignore[override]  # depends on parameters
        """True when each row's decision depends only on that row (no top share): recipes may
        then run this stage in resumable batches."""
        return self.top_share is None

    @property
    def prompt_hashes(self) -> dict[str, str]:
        return {t.key: t.sha256 for t in (self._prompt, self._reverse_prompt)}

    def score(self, records: Sequence[Record]) -> list[Record]:
        """The records with IFD scores written (existing ones reused unless ``rescore``)."""
        todo = [i for i, r in enumerate(records) if self.rescore or self.key not in r.scores]
        if not todo:
            return list(records)
        self.setup()
        assert self._scorer is not None
        pairs = [(records[i].prompt_text(), records[i].output) for i in todo]
        scores = score_ifd(
            pairs,
            self._scorer,
            reverse=self.reverse,
            prompt=self._prompt,
            reverse_prompt=self._reverse_prompt,
        )
        out = list(records)
        for i, s in zip(todo, scores, strict=True):
            scored = records[i].with_scores(**s.as_scores())
            out[i] = note_missing(scored, {k: s.missing.get(k) for k in ("ifd", "rifd")})
        return out

    def run(self, records: Sequence[Record], llm: LLM | None = None) -> StageResult:
        return decide_by_score(
            self.score(records),
            self.key,
            min_value=self.min_value,
            max_value=self.max_value,
            top_share=self.top_share,
            largest=self.key != "rifd",
        )
