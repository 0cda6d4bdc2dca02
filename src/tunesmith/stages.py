"""The stage contract and the batch runner.

A stage takes records and returns a :class:`StageResult` (kept records, rejected ones with the
score and reason that removed them, and failed ones whose request failed for good). Stages are
pure per batch — no I/O, no global state — so a batch can run as a Ray Data task later; the run
driver (:mod:`tunesmith.driver`) owns run folders, checkpoints and resume.

An LLM stage implements ``format_input(record) -> Request`` and
``format_output(completion, record) -> Record | list[Record] | Rejected`` (one record in, zero or
more out: Self-Instruct's instance stage returns one record per instance) and never imports a
provider SDK. A completion that carries a per-request ``error`` becomes a :class:`Failed` row.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from typing import Any, ClassVar

from tunesmith.llm.base import Completion, Request
from tunesmith.llm.client import LLM
from tunesmith.records import Record


@dataclasses.dataclass(frozen=True)
class Rejected:
    """A record a stage removed, with the score that decided it and a human-readable reason."""

    record: Record
    score: Any = None
    reason: str = ""
    #: the rule that removed it when it is not the reporting stage (generation: parse, rouge_l)
    stage: str | None = None


@dataclasses.dataclass(frozen=True)
class Failed:
    """A record whose request failed for good (HTTP 400/404/413/422, content filter ...)."""

    record: Record
    status: int | None = None
    message: str = ""


@dataclasses.dataclass
class StageResult:
    kept: list[Record] = dataclasses.field(default_factory=list)
    rejected: list[Rejected] = dataclasses.field(default_factory=list)
    failed: list[Failed] = dataclasses.field(default_factory=list)

    def extend(self, other: StageResult) -> None:
        self.kept.extend(other.kept)
        self.rejected.extend(other.rejected)
        self.failed.extend(other.failed)


class Stage:
    """Base class: explicit keyword parameters in ``__init__``, heavy loading in ``setup``."""

    name: ClassVar[str] = "stage"
    uses_llm: ClassVar[bool] = False
    #: True when the decision on a row depends on that row alone, so the stage runs in resumable
    #: batches; False when it must see the whole set at once (dedup, selection, top shares).
    per_record: ClassVar[bool] = False

    def setup(self) -> None:
        """Load models or other heavy resources (called once before the first batch)."""

    def run(self, records: Sequence[Record], llm: LLM | None = None) -> StageResult:
        raise NotImplementedError


class LLMStage(Stage):
    """A stage that makes one LLM request per record and parses the answer."""

    uses_llm = True
    per_record = True

    def format_input(self, record: Record) -> Request:
        raise NotImplementedError

    def format_output(
        self, completion: Completion, record: Record
    ) -> Record | list[Record] | Rejected:
        raise NotImplementedError

    def run(self, records: Sequence[Record], llm: LLM | None = None) -> StageResult:
        if llm is None:
            raise ValueError(f"stage {self.name} needs an LLM")
        completions = llm.complete([self.format_input(r) for r in records])
        result = StageResult()
        for record, comps in zip(records, completions, strict=True):
            error = getattr(comps[0], "error", None)
            if error:  # a per-request failure: this row fails, the run goes on
                status = getattr(comps[0], "error_status", None)
                result.failed.append(Failed(record, status, str(error)))
                continue
            out = self.format_output(comps[0], record)
            if isinstance(out, Rejected):
                result.rejected.append(out)
            elif isinstance(out, list):
                result.kept.extend(out)
            else:
                result.kept.append(out)
        return result


def batched(items: Sequence[Any], size: int) -> list[Sequence[Any]]:
    return [items[i : i + size] for i in range(0, len(items), max(1, size))]


def run_stage_batches(
    stage: Stage,
    records: Sequence[Record],
    *,
    llm: LLM | None = None,
    batch_size: int = 16,
    done_ids: set[str] | None = None,
    on_batch: Callable[[StageResult], None] | None = None,
) -> StageResult:
    """Run ``stage`` over ``records`` in batches, skipping ids in ``done_ids`` (resume).

    ``on_batch`` is called after each batch (the run folder writes its rows there), so a kill
    loses at most the batch in flight — and its LLM calls are already in the request cache.
    """
    stage.setup()
    todo = [r for r in records if not done_ids or r.id not in done_ids]
    total = StageResult()
    for batch in batched(todo, batch_size):
        result = stage.run(batch, llm)
        if on_batch is not None:
            on_batch(result)
        total.extend(result)
    return total
