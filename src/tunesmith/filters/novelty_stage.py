"""The ROUGE-L novelty filter as a pipeline stage (``dedup``, ``novelty`` in recipes).

Self-Instruct (Wang et al., ACL 2023) keeps an instruction only if its ROUGE-L against every
instruction kept so far is at most 0.7; SeDi-Instruct (Kim et al. 2025) relaxes it to 0.85. The
filter itself (exact, fast) lives in :mod:`tunesmith.filters.novelty`.
"""

from __future__ import annotations

from collections.abc import Sequence

from tunesmith.filters.novelty import FIELDS, Decider, check_mode, make_filter, screen_records
from tunesmith.llm.client import LLM
from tunesmith.records import Record, check_field
from tunesmith.stages import Stage, StageResult


class NoveltyStage(Stage):
    """Pipeline stage: the ROUGE-L novelty filter (Self-Instruct 0.7, SeDi-Instruct 0.85).

    Unlike most stages it is stateful across batches: the pool keeps every record kept so far,
    so batches must run in order in one process. ``mode: minhash`` swaps in the approximate
    filter of :mod:`tunesmith.filters.minhash_novelty` (default ``exact``).
    """

    name = "novelty"

    def __init__(
        self,
        *,
        threshold: float = 0.7,
        field: str = "instruction",
        top_k: int = 0,
        pool: Sequence[str] = (),
        mode: str = "exact",
    ) -> None:
        check_mode(mode, top_k, threshold)  # here, so a recipe's error names its file:line
        self.threshold = threshold
        self.field = field
        self.top_k = top_k
        self.pool = tuple(pool)
        self.mode = mode
        self._filter: Decider | None = None
        self._names: list[str] = []

    def setup(self) -> None:
        check_field(self.field, FIELDS)
        if self._filter is None:
            self._filter = make_filter(
                self.threshold, pool=self.pool, top_k=self.top_k, mode=self.mode
            )
            self._names = [f"pool[{i}]" for i in range(len(self.pool))]

    def run(self, records: Sequence[Record], llm: LLM | None = None) -> StageResult:
        self.setup()
        assert self._filter is not None
        return screen_records(self._filter, self._names, records, self.field)
