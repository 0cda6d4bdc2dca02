"""Dynosaur's tasks (Yin et al. 2023): the design prompts, parsing and validating the LLM's task
designs, and applying a valid task to rows without any LLM call.

Validation follows the paper: the reply parses; the output field is non-empty and a real field;
the input fields are real and do not include the output; the instruction is not a duplicate; a
nested output abandons the task. The label hint joins the allowed labels to the instruction when
the output looks categorical. Rendering: one input field -> its value; several -> ``field is
'value'.`` lines; a list of options -> lettered options.
"""

from __future__ import annotations

import ast
import dataclasses
import json
import re
from collections.abc import Mapping, Sequence
from typing import Any

from tunesmith.generate.dynosaur_meta import (
    DatasetInfo,
    is_nested,
    label_space,
    render_input,
    render_value,
)
from tunesmith.llm.base import Completion, Request, SamplingParams
from tunesmith.prompts import PromptTemplate
from tunesmith.records import Record, stable_id
from tunesmith.stages import Rejected, StageResult

PROMPT_KINDS = ("aware", "unaware")


@dataclasses.dataclass(frozen=True)
class TaskDesign:
    """A valid task for one dataset."""

    id: str
    dataset: str
    prompt: str
    instruction: str
    input_fields: tuple[str, ...]
    output_field: str
    labels: tuple[str, ...] = ()

    def to_row(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["input_fields"], d["labels"] = list(self.input_fields), list(self.labels)
        return d

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> TaskDesign:
        return cls(**{**row, "input_fields": tuple(row["input_fields"]),
                      "labels": tuple(row.get("labels") or ())})  # fmt: skip


# -- prompts and parsing ---------------------------------------------------------------------------
class TaskDesigner:
    """Builds the design requests for a dataset and turns replies into tasks or rejections.

    Args:
        max_tasks: tasks asked per prompt (3 in the paper).
        prompts: which of ``aware``/``unaware`` to send (the aware one only when the dataset
            has a description).
        max_tokens: room for the JSON reply.
        prompts_dir: folder overriding ``dynosaur/*.j2``.
    """

    def __init__(
        self,
        *,
        max_tasks: int = 3,
        prompts: Sequence[str] = PROMPT_KINDS,
        max_tokens: int = 512,
        prompts_dir: str | None = None,
    ) -> None:
        self.max_tasks = max_tasks
        self.prompts = tuple(prompts)
        self.max_tokens = max_tokens
        self._system = PromptTemplate("dynosaur", "system", prompts_dir)
        self._templates = {k: PromptTemplate("dynosaur", f"design_{k}", prompts_dir)
                           for k in PROMPT_KINDS}  # fmt: skip
        self._hint = PromptTemplate("dynosaur", "label_hint", prompts_dir)

    @property
    def prompt_hashes(self) -> dict[str, str]:
        ts = [self._system, self._hint, *(self._templates[k] for k in self.prompts)]
        return {t.key: t.sha256 for t in ts}

    def kinds_for(self, info: DatasetInfo) -> list[str]:
        return [k for k in self.prompts if k == "unaware" or info.description]

    def request(self, info: DatasetInfo, kind: str) -> Request:
        user = self._templates[kind].render(
            name=info.name, description=info.description, tags=info.tags, fields=info.fields,
            samples=[json.dumps(s, ensure_ascii=False) for s in info.samples],
            max_tasks=self.max_tasks,
        )  # fmt: skip
        messages = [{"role": "system", "content": self._system.render().strip()},
                    {"role": "user", "content": user.strip()}]  # fmt: skip
        params = SamplingParams(temperature=0.0, max_tokens=self.max_tokens)
        return Request.chat(messages, params, tag="dynosaur_design")

    def designs(
        self, completion: Completion, info: DatasetInfo, kind: str,
        rows: Sequence[Mapping[str, Any]], seen: set[str],
    ) -> tuple[list[TaskDesign], list[Rejected]]:  # fmt: skip
        """Valid tasks in one reply, and every invalid one (or the whole reply) rejected."""
        items, why = parse_designs(completion.text)
        if completion.finish_reason == "length" and why:
            why += " (reply cut at max_tokens)"
        if items is None:
            rid = stable_id("design", info.name, kind, "reply")
            return [], [_design_rejection(rid, info, kind, completion.text, why)]
        tasks, rejected = [], []
        for i, raw in enumerate(items):
            rid = stable_id("design", info.name, kind, i)
            task, reason = validate(raw, info, rows, seen)
            if i >= self.max_tasks:  # asked for at most max_tasks: the rest are not used
                task, reason = None, f"beyond the {self.max_tasks} tasks asked for"
            if task is None:
                rejected.append(_design_rejection(rid, info, kind, raw, reason))
                continue
            seen.add(_norm(task["instruction"]))
            labels = label_space(rows, task["output_field"]) or []
            instruction = task["instruction"]
            if labels:
                instruction = self._hint.render(instruction=instruction, labels=labels).strip()
            tasks.append(TaskDesign(rid, info.name, kind, instruction, tuple(task["input_fields"]),
                                    task["output_field"], tuple(labels)))  # fmt: skip
        return tasks, rejected


def _design_rejection(rid: str, info: DatasetInfo, kind: str, raw: Any, reason: str) -> Rejected:
    text = raw if isinstance(raw, str) else json.dumps(raw, ensure_ascii=False, default=str)
    instruction = raw.get("instruction", "") if isinstance(raw, dict) else ""
    record = Record(id=rid, instruction=str(instruction or ""), input=text[:2000],
                    meta={"dataset": info.name, "prompt": kind, "method": "dynosaur"})  # fmt: skip
    return Rejected(record, reason=reason, stage="task_design")


_FENCE = re.compile(r"```(?:json|python)?\s*(.*?)```", re.S)


def parse_designs(text: str) -> tuple[list[Any] | None, str]:
    """The list of task objects in a reply (JSON, or a Python-literal dict/list as the paper's
    model wrote), or None and why. Accepts a code fence, prose around the list, a single object,
    or an object holding the list under ``tasks``."""
    fenced = _FENCE.search(text or "")
    body = (fenced.group(1) if fenced else text or "").strip()
    start = min((i for i in (body.find("["), body.find("{")) if i >= 0), default=-1)
    if start < 0:
        return None, "broken JSON: no list or object in the reply"
    value = _load(body[start:])
    if value is None:
        return None, "broken JSON: the reply does not parse"
    if isinstance(value, dict):
        value = value.get("tasks", [value])
    if not isinstance(value, list) or not value:
        return None, "broken JSON: no tasks in the reply"
    return value, ""


def _load(text: str) -> Any:
    """Parse the first JSON (or Python literal) value at the start of ``text``; None if none."""
    try:
        return json.JSONDecoder().raw_decode(text)[0]
    except json.JSONDecodeError:
        pass
    end = max(text.rfind("]"), text.rfind("}"))
    try:  # a Python-literal list/dict (single quotes, True/None): literals only, never code
        return ast.literal_eval(text[: end + 1]) if end > 0 else None
    except (ValueError, SyntaxError, MemoryError, RecursionError):
        return None


def _norm(text: str) -> str:
    return " ".join(text.lower().split())


def validate(
    raw: Any, info: DatasetInfo, rows: Sequence[Mapping[str, Any]], seen: set[str]
) -> tuple[dict[str, Any] | None, str]:
    """A design's normalised fields, or None and the reason it is invalid (Dynosaur's rules)."""
    if not isinstance(raw, dict):
        return None, f"not an object: {str(raw)[:60]!r}"
    instruction = raw.get("instruction")
    if not isinstance(instruction, str) or not instruction.strip():
        return None, "no instruction"
    output = raw.get("output_field")
    if isinstance(output, list) and len(output) == 1:
        output = output[0]
    if not isinstance(output, str) or not output.strip():
        return None, "no output field"
    inputs = raw.get("input_fields")
    inputs = [inputs] if isinstance(inputs, str) else inputs
    if not isinstance(inputs, list) or not inputs or not all(isinstance(f, str) for f in inputs):
        return None, "input_fields is not a non-empty list of field names"
    for name in [output, *inputs]:
        if name not in info.fields:
            return None, f"unknown field '{name}' (fields: {', '.join(info.fields)})"
    if output in inputs:
        return None, f"output field '{output}' is among the input fields"
    if _norm(instruction) in seen:
        return None, "duplicate instruction"
    if any(is_nested(r.get(output)) for r in rows[:100]):
        return None, f"output field '{output}' is nested"
    return {"instruction": instruction.strip(), "input_fields": list(dict.fromkeys(inputs)),
            "output_field": output}, ""  # fmt: skip


# -- application -------------------------------------------------------------------------------------
def apply_task(
    task: TaskDesign, rows: Sequence[Mapping[str, Any]], info: DatasetInfo, *,
    start: int = 0, max_chars: int = 5000,
) -> StageResult:  # fmt: skip
    """Instruction rows from ``rows`` (numbered from ``start``); no LLM call."""
    result = StageResult()
    for i, row in enumerate(rows, start=start):
        meta = {"method": "dynosaur", "dataset": info.name, "task": task.id, "row": i,
                "source": info.source, "license": info.license}  # fmt: skip
        rid = stable_id("dynosaur", info.name, task.id, i)
        output_value = row.get(task.output_field)
        output = render_value(output_value)
        record = Record(id=rid, instruction=task.instruction,
                        input=render_input(row, task.input_fields), output=output, meta=meta)  # fmt: skip
        empty = [f for f in (*task.input_fields, task.output_field) if not render_value(row.get(f))]
        size = len(record.instruction) + len(record.input) + len(record.output)
        if is_nested(output_value):
            result.rejected.append(Rejected(record, reason=f"nested output '{task.output_field}'"))
        elif empty:
            result.rejected.append(Rejected(record, reason=f"empty field '{empty[0]}'"))
        elif size > max_chars:
            result.rejected.append(Rejected(record, score=size,
                                            reason=f"over-long: {size} characters > {max_chars}"))  # fmt: skip
        else:
            result.kept.append(record)
    return result
