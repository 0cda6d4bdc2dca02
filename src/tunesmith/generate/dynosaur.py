"""Dynosaur (Yin et al. 2023): an LLM designs tasks from a dataset's metadata; the tasks are then
applied to every row without further LLM calls, so the cost is per dataset, not per row.

Per dataset (metadata: :mod:`tunesmith.generate.dynosaur_meta`):

1. **Design.** Two prompts, description-aware and description-unaware (the latter only sees the
   name, fields and samples; it yields different tasks), each with two worked demos, temperature
   0, ask for up to 3 tasks ``{instruction, input_fields, output_field}`` as JSON.
2. **Validation.** The reply parses; the output field is non-empty and a real field; the input
   fields are real and do not include the output; the instruction is not a duplicate; a nested
   output abandons the task. Every invalid design is a rejected row with its reason.
3. **Label hint.** When the output field looks categorical (<= 10 distinct values of <= 15
   characters in the first 100 rows, not too imbalanced) the allowed labels join the instruction.
4. **Application.** Each valid task turns every row into (instruction, input, output): one input
   field -> its value; several -> ``field is 'value'.`` lines; a list of options -> lettered
   options. Rows with an empty or over-long field are rejected with the reason. The dataset's
   licence and source are carried on every row.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from tunesmith.generate.dynosaur_meta import DatasetInfo, render_input, render_value
from tunesmith.generate.dynosaur_tasks import (
    PROMPT_KINDS,
    TaskDesign,
    TaskDesigner,
    apply_task,
    parse_designs,
    validate,
)
from tunesmith.llm.base import Completion
from tunesmith.records import Record, stable_id
from tunesmith.stages import Failed, StageResult

__all__ = [
    "PROMPT_KINDS",
    "Dynosaur",
    "TaskDesign",
    "TaskDesigner",
    "apply_task",
    "parse_designs",
    "render_input",
    "render_value",
    "validate",
]


# -- the generator -----------------------------------------------------------------------------------
class Dynosaur:
    """Dynosaur over one or many datasets, reporting to a RunDriver; resumable, and growing.

    A dataset finished in an earlier run is skipped (its tasks and rows stay), so adding datasets
    to a folder and rerunning designs tasks only for the new ones. A finished dataset whose rows
    changed is an error, not a silent redo.

    Args:
        max_tasks, prompts, max_tokens, prompts_dir: the design requests (:class:`TaskDesigner`).
        max_chars: rows whose instruction + input + output exceed this are rejected.
        batch_size: rows per checkpointed batch when applying a task.
    """

    method = "dynosaur"

    def __init__(
        self,
        *,
        max_tasks: int = 3,
        prompts: Sequence[str] = PROMPT_KINDS,
        max_tokens: int = 512,
        max_chars: int = 5000,
        batch_size: int = 1000,
        prompts_dir: str | None = None,
    ) -> None:
        from tunesmith.errors import ConfigError

        unknown = [p for p in prompts if p not in PROMPT_KINDS]
        if unknown or not prompts:
            raise ConfigError(f"prompts must be among {', '.join(PROMPT_KINDS)}, got {unknown}")
        self.designer = TaskDesigner(max_tasks=max_tasks, prompts=prompts, max_tokens=max_tokens,
                                     prompts_dir=prompts_dir)  # fmt: skip
        self.max_chars = max_chars
        self.batch_size = batch_size

    def prompt_hashes(self) -> dict[str, str]:
        return self.designer.prompt_hashes

    def design(
        self, items: Sequence[tuple[DatasetInfo, Sequence[Mapping[str, Any]]]], llm: Any
    ) -> list[tuple[list[TaskDesign], StageResult, dict[str, Any]]]:
        """The design prompts of several datasets in one batch (they run concurrently); per
        dataset: the valid tasks, the invalid designs (rejected) and the requests that failed
        for good (failed rows), and the usage."""
        plans = [(info, rows, self.designer.kinds_for(info)) for info, rows in items]
        requests = [self.designer.request(info, k) for info, _, kinds in plans for k in kinds]
        replies = iter(llm.complete(requests))
        return [self._read(info, rows, kinds, [next(replies)[0] for _ in kinds])
                for info, rows, kinds in plans]  # fmt: skip

    def _read(
        self, info: DatasetInfo, rows: Sequence[Mapping[str, Any]], kinds: Sequence[str],
        replies: Sequence[Completion],
    ) -> tuple[list[TaskDesign], StageResult, dict[str, Any]]:  # fmt: skip
        tasks: list[TaskDesign] = []
        result = StageResult()
        seen: set[str] = set()
        usage = {"design_calls": len(kinds), "prompt_tokens": 0, "completion_tokens": 0,
                 "cost_usd": 0.0}  # fmt: skip
        for kind, comp in zip(kinds, replies, strict=True):
            usage["prompt_tokens"] += comp.prompt_tokens
            usage["completion_tokens"] += comp.completion_tokens
            usage["cost_usd"] += comp.cost_usd
            error = getattr(comp, "error", None)
            if error:  # a per-request failure (HTTP 400, content filter): retried on request
                record = Record(id=stable_id("design", info.name, kind, "reply"), instruction="",
                                meta={"dataset": info.name, "prompt": kind, "method": "dynosaur"})  # fmt: skip
                result.failed.append(Failed(record, getattr(comp, "error_status", None), error))
                continue
            got, bad = self.designer.designs(comp, info, kind, rows, seen)
            tasks += got
            result.rejected.extend(bad)
        return tasks, result, usage

    def run(
        self, datasets: Sequence[tuple[DatasetInfo, Sequence[Mapping[str, Any]], str]],
        llm: Any, driver: Any, *, concurrency: int = 1,
    ) -> dict[str, Any]:  # fmt: skip
        """Design and apply tasks for every ``(info, rows, fingerprint)`` not done before.

        Datasets are designed ``concurrency // 2`` at a time (two prompts each), then applied
        and checkpointed one by one, in order.
        """
        state = driver.run.load_state()
        entries: dict[str, Any] = state.setdefault("datasets", {})
        todo = {info.name for info, rows, fp in datasets if self._needs_design(info, fp, entries,
                                                                               driver)}  # fmt: skip
        group = max(1, concurrency // len(PROMPT_KINDS))
        for start in range(0, len(datasets), group):
            chunk = datasets[start : start + group]
            need = [(info, rows, fp) for info, rows, fp in chunk if info.name in todo]
            designs = self.design([(info, rows) for info, rows, _ in need], llm)
            for (info, rows, fp), (tasks, result, usage) in zip(need, designs, strict=True):
                retry = f":retry{driver.manifest.get('resumed', 0)}" if info.name in entries else ""
                driver.report(result, "task_design",
                              event={"batch": f"design:{info.name}{retry}", "dataset": info.name,
                                     "tasks": len(tasks), "invalid": len(result.rejected)})  # fmt: skip
                entries[info.name] = {
                    "fingerprint": fp, "rows": len(rows), "license": info.license,
                    "source": info.source, "tasks": [t.to_row() for t in tasks],
                    "invalid": len(result.rejected), "failed": len(result.failed), **usage,
                    "applied": False,
                }  # fmt: skip
                driver.run.save_state(state)
            for info, rows, _ in chunk:
                entry = entries[info.name]
                if not entry["applied"]:
                    entry.update(self.apply(info, rows, entry, driver), applied=True)
                    driver.run.save_state(state)
            driver.write_artifact("tasks.json", entries)
        return self.summary(entries, driver)

    @staticmethod
    def _needs_design(info: DatasetInfo, fp: str, entries: Mapping[str, Any], driver: Any) -> bool:
        """New datasets, and (with ``retry_failed``) those whose design request failed; a done
        dataset whose rows changed is an error."""
        entry = entries.get(info.name)
        if entry is None:
            return True
        if entry["fingerprint"] != fp:
            from tunesmith.errors import ConfigError

            raise ConfigError(f"dataset '{info.name}' changed since this run used it; "
                              "add --force-new to start over or choose another --out")  # fmt: skip
        return bool(entry.get("failed")) and bool(driver.retry_failed)

    def apply(
        self, info: DatasetInfo, rows: Sequence[Mapping[str, Any]], entry: dict[str, Any],
        driver: Any,
    ) -> dict[str, int]:  # fmt: skip
        """Every task over every row, in checkpointed batches; returns produced/rejected counts."""
        produced = dropped = 0
        for task in (TaskDesign.from_row(t) for t in entry["tasks"]):
            for start in range(0, len(rows), self.batch_size):
                batch = rows[start : start + self.batch_size]
                result = apply_task(task, batch, info, start=start, max_chars=self.max_chars)
                produced += len(result.kept)
                dropped += len(result.rejected)
                driver.report(result, "dynosaur_apply",
                              event={"batch": f"{info.name}:{task.id}:{start}",
                                     "dataset": info.name, "task": task.id,
                                     "kept": len(result.kept), "rejected": len(result.rejected)})  # fmt: skip
        return {"produced": produced, "rows_rejected": dropped}

    def summary(self, entries: Mapping[str, Any], driver: Any) -> dict[str, Any]:
        """Tasks, rows and the cost headline: LLM calls, tokens and USD per 1,000 rows made."""
        produced = sum(int(e.get("produced", 0)) for e in entries.values())
        totals = driver.ledger.totals()
        per = 1000 / produced if produced else 0.0
        return {
            "datasets": len(entries),
            "tasks": sum(len(e["tasks"]) for e in entries.values()),
            "invalid_designs": sum(int(e["invalid"]) for e in entries.values()),
            "rows_produced": produced,
            "rows_rejected": sum(int(e.get("rows_rejected", 0)) for e in entries.values()),
            "design_calls": sum(int(e["design_calls"]) for e in entries.values()),
            "calls_per_1000_rows": round(
                sum(int(e["design_calls"]) for e in entries.values()) * per, 4),
            "tokens_per_1000_rows": round(sum(int(e["prompt_tokens"]) + int(e["completion_tokens"])
                                              for e in entries.values()) * per, 1),
            "usd_per_1000_rows": round(sum(float(e["cost_usd"]) for e in entries.values()) * per, 8),
            **totals,
        }  # fmt: skip
