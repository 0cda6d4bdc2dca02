"""Self-Instruct stages 3 and 4 (Wang et al., ACL 2023): classification identification and
instance generation, as in the reference code (yizhongw/self-instruct).

3. Classification identification: few-shot Yes/No, greedy, max_tokens 3.
4. Instance generation: output-first for classification, input-first otherwise; greedy,
   presence penalty 1.5; parsed and cleaned with the published rules (one instruction in, one
   record per kept instance out).

:func:`run_llm_stage` runs either over the bootstrapped instructions, reporting each batch to
the run driver. Stages 1 and 2 and the whole method: :mod:`tunesmith.generate.self_instruct`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tunesmith.driver import RunSink
from tunesmith.generate.loop import make_request
from tunesmith.generate.parsing import (
    clean_instances,
    clean_instruction,
    parse_input_first,
    parse_output_first,
    parse_yes_no,
)
from tunesmith.llm.base import Completion, Request, SamplingParams
from tunesmith.llm.client import LLM
from tunesmith.prompts import PromptTemplate
from tunesmith.records import Record, stable_id
from tunesmith.stages import LLMStage, Rejected, StageResult, run_stage_batches


class ClassificationIdentifier(LLMStage):
    """Stage 3: is the instruction a classification task? (few-shot, greedy, max_tokens 3)."""

    name = "is_classification"

    def __init__(
        self,
        *,
        max_tokens: int = 3,
        prompt_style: str = "raw",
        prompts_dir: str | Path | None = None,
    ) -> None:
        self.max_tokens = max_tokens
        self.prompt_style = prompt_style
        self.template = PromptTemplate("self_instruct", "is_classification", prompts_dir)

    def format_input(self, record: Record) -> Request:
        params = SamplingParams(
            temperature=0.0, top_p=0.0, max_tokens=self.max_tokens, stop=("\n", "Task")
        )
        prompt = self.template.render(instruction=clean_instruction(record.instruction))
        return make_request(prompt, params, tag=self.name, style=self.prompt_style)

    def format_output(self, completion: Completion, record: Record) -> Record | Rejected:
        return record.with_meta(
            is_classification=parse_yes_no(completion.text),
            is_classification_answer=completion.text.strip(),
        )


class InstanceGenerator(LLMStage):
    """Stage 4: input/output instances per instruction (output-first for classification).

    One-to-many: :meth:`format_output` returns one record per kept instance (ids derived from
    the instruction id), or a Rejected instruction when no instance survives the published rules,
    so the base runner of :class:`~tunesmith.stages.LLMStage` runs it.
    """

    name = "instances"

    def __init__(
        self,
        *,
        max_tokens_classification: int = 300,
        max_tokens: int = 350,
        presence_penalty: float = 1.5,
        max_instances: int = 5,
        prompt_style: str = "raw",
        prompts_dir: str | Path | None = None,
    ) -> None:
        self.max_tokens_classification = max_tokens_classification
        self.max_tokens = max_tokens
        self.presence_penalty = presence_penalty
        self.max_instances = max_instances
        self.prompt_style = prompt_style
        self.input_first = PromptTemplate("self_instruct", "instances_input_first", prompts_dir)
        self.output_first = PromptTemplate("self_instruct", "instances_output_first", prompts_dir)

    def format_input(self, record: Record) -> Request:
        clf = bool(record.meta.get("is_classification"))
        template = self.output_first if clf else self.input_first
        params = SamplingParams(
            temperature=0.0,
            top_p=0.0,
            presence_penalty=self.presence_penalty,
            max_tokens=self.max_tokens_classification if clf else self.max_tokens,
            stop=("Example 6", "Task:"),
        )
        prompt = template.render(instruction=clean_instruction(record.instruction))
        return make_request(prompt, params, tag=self.name, style=self.prompt_style)

    def format_output(self, completion: Completion, record: Record) -> list[Record] | Rejected:
        """One completion to instance records, or the instruction rejected with the reason."""
        clf = bool(record.meta.get("is_classification"))
        parse = parse_output_first if clf else parse_input_first
        parsed = parse(completion.text, completion.finish_reason)
        pairs, why = clean_instances(parsed, self.max_instances)
        if not pairs:  # score: how many instances were parsed before the validity rules
            return Rejected(record.evolve(output=completion.text.strip()), len(parsed), why)
        template = self.output_first if clf else self.input_first
        meta = {
            **record.meta,
            "instruction_id": record.id,
            "prompts": {**record.meta.get("prompts", {}), template.key: template.sha256[:16]},
        }
        return [
            Record(
                id=stable_id(record.id, "instance", k),
                instruction=record.instruction,
                input=inp,
                output=out,
                meta={**meta, "instance_index": k},
                scores=record.scores,
            )
            for k, (inp, out) in enumerate(pairs)
        ]

    #: the name used before the stage contract covered one-to-many
    expand = format_output


def run_llm_stage(
    stage: LLMStage, records: list[Record], llm: LLM, sink: RunSink, batch_size: int,
    skip_ids: set[str] | None = None,
) -> list[Record]:  # fmt: skip
    """Run a per-record stage with the base runner, reporting each batch's rejected and failed
    rows and one event to ``sink``; returns the kept rows (written later, as instances).

    Rows in ``skip_ids`` (failed for good in an earlier attempt) are not sent again.
    """
    kept: list[Record] = []
    for template in prompt_templates(stage):
        sink.note_prompt(template.key, template.sha256)
    todo = [r for r in records if not skip_ids or r.id not in skip_ids]
    batch = [0]

    def on_batch(result: StageResult) -> None:
        kept.extend(result.kept)
        done = min((batch[0] + 1) * batch_size, len(todo))
        event = {"batch": batch[0], "done": done, "kept": len(kept)}
        sink.report(result, stage.name, event=event, keep=False)
        batch[0] += 1

    run_stage_batches(stage, todo, llm=llm, batch_size=batch_size, on_batch=on_batch)
    return kept


def prompt_templates(stage: Any) -> list[PromptTemplate]:
    return [v for v in vars(stage).values() if isinstance(v, PromptTemplate)]
