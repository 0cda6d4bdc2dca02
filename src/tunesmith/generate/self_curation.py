"""Humpback self-curation as a stage (Li et al. 2023, "Self-Alignment with Instruction Backtranslation").

In iteration i the model M_{i-1} rates every (instruction, segment) pair on the paper's 5-point
rubric (reasoning first, ``Score: n`` last) and pairs scoring >= k are kept (A_5 for k = 5). The
whole method is :class:`tunesmith.generate.backtranslation.Backtranslation`.
"""

from __future__ import annotations

import dataclasses

from tunesmith.filters.quality_scorer import QualityScorer
from tunesmith.llm.base import Request
from tunesmith.records import Record


class SelfCuration(QualityScorer):
    """Humpback self-curation by M_{i-1} in iteration i: the ``humpback`` rubric, keep >= k.

    Scores go to ``scores["humpback_m<i-1>"]``; requests are tagged ``curate_m<i-1>`` so the
    ledger holds each iteration's calls and cost separately. Also a recipe stage
    (``self_curation: {min_score: 5}``).

    Args:
        iteration: i (the judge is M_{i-1}).
        min_score: k (5: A_5).
        max_tokens: room for the reasoning before ``Score: n``.
        prompts_dir: folder overriding ``judge_score/humpback*.j2``.
    """

    def __init__(
        self,
        *,
        iteration: int = 1,
        min_score: int = 5,
        max_tokens: int = 384,
        prompts_dir: str | None = None,
    ) -> None:
        super().__init__(rubric="humpback", key=f"humpback_m{iteration - 1}",
                         min_score=min_score, max_tokens=max_tokens, prompts_dir=prompts_dir)  # fmt: skip
        self.iteration = iteration

    @property
    def tag(self) -> str:
        return f"curate_m{self.iteration - 1}"

    def format_input(self, record: Record) -> Request:
        return dataclasses.replace(super().format_input(record), tag=self.tag)
