"""Self-Instruct (Wang et al., ACL 2023): bootstrapping, filtering, classification identification
and instance generation, as in the paper and its reference code (yizhongw/self-instruct).

1. Instruction generation: 8 in-context instructions (6 human seeds + 2 machine-generated once
   any exist, shuffled) as a numbered list with the next number open; temperature 0.7, top_p 0.5,
   presence penalty 2, max_tokens 1024, stop at a blank line or item 16.
2. Filtering: the heuristic rules (:mod:`~tunesmith.generate.instruction_rules`), then ROUGE-L
   against seeds + kept machine instructions (drop if > 0.7).
3. Classification identification: few-shot Yes/No, greedy, max_tokens 3.
4. Instance generation: output-first for classification, input-first otherwise; greedy,
   presence penalty 1.5; parsed and cleaned with the published rules.

Defaults follow the reference code: a response cut at ``max_tokens`` is dropped whole, the list
is split with the code's pattern, instructions are capitalised before the filters, and in
classification-only mode prompts and the ROUGE-L pool hold only the classification seeds.
Remaining differences, each deliberate:

- Capitalisation raises the first letter only; the code's ``str.capitalize`` also lower-cases
  the rest ("SQL" becomes "sql"). ``capitalize="python"`` restores it exactly.
- Prompt wording is tunesmith's own (same structure: header, 8 numbered tasks, open number).
- Nothing is dropped silently: every parsed candidate that a rule, the truncation rule or
  ROUGE-L removes is written to ``rejected.jsonl`` with its reason (the code discards them).
- Generation also stops after ``max_rounds`` / ``patience`` rounds without a kept instruction
  (the code loops until the target count, however long that takes).
- The top-10 most similar instructions and the mean similarity are stored only with
  ``top_k=10`` (off by default: they make rows large).
- The paper used GPT-3 davinci through the completion API; any backend works here, with
  ``prompt_style="chat"`` for chat-only models.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from tunesmith.driver import RunSink
from tunesmith.generate.instruction_rules import ALPACA_EXTRA_BLACKLIST, SELF_INSTRUCT_BLACKLIST
from tunesmith.generate.loop import BootstrapLoop, LoopState, PromptPlan, make_request, run_summary
from tunesmith.generate.parsing import (
    ParsedItem,
    clean_instances,
    clean_instruction,
    parse_input_first,
    parse_numbered_instructions,
    parse_output_first,
    parse_yes_no,
)
from tunesmith.generate.seeds import SeedTask, require_seeds
from tunesmith.llm.base import Completion, Request, SamplingParams
from tunesmith.llm.client import LLM
from tunesmith.prompts import PromptTemplate
from tunesmith.records import Record, stable_id
from tunesmith.stages import LLMStage, Rejected, StageResult, run_stage_batches

STOP_BOOTSTRAP = ("\n\n", "\n16", "16.", "16 .")


class InstructionBootstrapper(BootstrapLoop):
    """Stage 1+2 of Self-Instruct: grow a pool of new instructions from seed tasks.

    Args:
        num_instructions: stop once this many instructions are kept.
        prompt_instructions: in-context instructions per prompt (8).
        machine_instructions: how many of them come from machine-generated ones (2).
        prompts_per_batch: prompts sent together in one request batch (5 in the code).
        temperature, top_p, presence_penalty, max_tokens: sampling (0.7, 0.5, 2, 1024).
        threshold: ROUGE-L F above which a candidate is a near-duplicate (0.7).
        truncation: ``drop_response`` (reference code, default) or ``drop_last`` (paper).
        alpaca_blacklist: also reject Alpaca's extra words (video, audio, music, ...).
        capitalize: ``first`` (default), ``python`` (the code's ``str.capitalize``) or ``none``;
            applied before the filters (see :mod:`tunesmith.generate.parsing`).
        split: ``reference`` (the code's list split, default) or ``lenient``.
        classification_only: use the classification-task header and only classification seeds,
            in prompts and in the ROUGE-L pool (the reference code's classification mode).
        seed: RNG seed for sampling in-context examples (and per-request sampling seeds).
        max_rounds / patience: stop after this many rounds / this many rounds keeping nothing.
        top_k: store this many most similar pool texts per candidate (0 = off).
        prompt_style: ``raw`` completion prompts (as the paper) or ``chat`` (one user turn).
        prompts_dir: a folder overriding the packaged templates.
    """

    method = "self_instruct"
    stage = "bootstrap"

    def __init__(
        self,
        *,
        num_instructions: int = 100,
        prompt_instructions: int = 8,
        machine_instructions: int = 2,
        prompts_per_batch: int = 5,
        temperature: float = 0.7,
        top_p: float = 0.5,
        presence_penalty: float = 2.0,
        max_tokens: int = 1024,
        threshold: float = 0.7,
        truncation: str = "drop_response",
        alpaca_blacklist: bool = False,
        capitalize: str | bool = "first",
        split: str = "reference",
        classification_only: bool = False,
        seed: int = 42,
        max_rounds: int | None = None,
        patience: int = 10,
        top_k: int = 0,
        prompt_style: str = "raw",
        prompts_dir: str | Path | None = None,
    ) -> None:
        self.num_instructions = num_instructions
        self.prompt_instructions = prompt_instructions
        self.machine_instructions = machine_instructions
        self.prompts_per_batch = prompts_per_batch
        self.temperature = temperature
        self.top_p = top_p
        self.presence_penalty = presence_penalty
        self.max_tokens = max_tokens
        self.threshold = threshold
        self.truncation = truncation
        self.capitalize = capitalize
        self.split = split
        self.classification_only = classification_only
        self.seed = seed
        self.max_rounds = max_rounds
        self.patience = patience
        self.top_k = top_k
        self.prompt_style = prompt_style
        self.blacklist = SELF_INSTRUCT_BLACKLIST + (
            ALPACA_EXTRA_BLACKLIST if alpaca_blacklist else ()
        )
        self.template = PromptTemplate("self_instruct", "bootstrap", prompts_dir)
        self.seeds: list[SeedTask] = []

    def prompt_hashes(self) -> dict[str, str]:
        return {self.template.key: self.template.sha256[:16]}

    def build_prompt(self, rng: random.Random, state: LoopState) -> PromptPlan:
        machine = rng.sample(state.kept, min(self.machine_instructions, len(state.kept)))
        humans = rng.sample(self.seed_pool(), self.prompt_instructions - len(machine))
        shown = [(s.instruction, s.id, False) for s in humans] + [
            (m.instruction, m.id, True) for m in machine
        ]
        rng.shuffle(shown)
        text = self.template.render(
            instructions=[clean_instruction(t) for t, _, _ in shown],
            classification=self.classification_only,
        )
        return PromptPlan(text, [i for _, i, m in shown if not m], [i for _, i, m in shown if m])

    def sampling_params(self, round_index: int, prompt_index: int) -> SamplingParams:
        return SamplingParams(
            temperature=self.temperature,
            top_p=self.top_p,
            max_tokens=self.max_tokens,
            stop=STOP_BOOTSTRAP,
            presence_penalty=self.presence_penalty,
            seed=(self.seed * 1_000_003 + round_index * 101 + prompt_index) % 2**31,
        )

    def parse(self, completion: Completion) -> list[ParsedItem]:
        return parse_numbered_instructions(
            completion.text,
            completion.finish_reason,
            truncation=self.truncation,
            capitalize=self.capitalize,
            split=self.split,
        )

    def seed_pool(self) -> list[SeedTask]:
        """The human seeds prompts show and ROUGE-L compares with: only the classification
        seeds in classification-only mode, as the reference code narrows its seed list."""
        if self.classification_only:
            return [s for s in self.seeds if s.is_classification]
        return self.seeds

    def full_prompt_hashes(self) -> dict[str, str]:
        """The templates this method uses, by key, with their full sha256 (for the manifest)."""
        return {self.template.key: self.template.sha256}

    def bootstrap(self, seeds: Sequence[SeedTask], llm: LLM, sink: RunSink) -> list[Record]:
        """Generate instructions (rejected rows and events go to ``sink``); returns the kept."""
        require_seeds(seeds, self.prompt_instructions, "seeds")
        self.seeds = list(seeds)
        require_seeds(self.seed_pool(), self.prompt_instructions, "classification seeds")
        sink.note_prompt(self.template.key, self.template.sha256)
        return self.generate([s.instruction for s in self.seed_pool()], llm, sink)


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
    for template in _templates(stage):
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


def _templates(stage: Any) -> list[PromptTemplate]:
    return [v for v in vars(stage).values() if isinstance(v, PromptTemplate)]


def run_self_instruct(
    seeds: Sequence[SeedTask],
    llm: LLM,
    sink: RunSink,
    *,
    bootstrapper: InstructionBootstrapper,
    classifier: ClassificationIdentifier | None = None,
    instances: InstanceGenerator | None = None,
    batch_size: int = 8,
    skip_ids: set[str] | None = None,
) -> dict[str, Any]:
    """The four Self-Instruct stages, reported to ``sink``; kept rows are one per instance.

    With ``instances=None`` the kept instructions themselves are kept (no input/output).
    Returns the summary written to the manifest.
    """
    instructions = bootstrapper.bootstrap(seeds, llm, sink)
    records = instructions
    for stage in (classifier, instances):
        if stage is not None:
            records = run_llm_stage(stage, records, llm, sink, batch_size, skip_ids)
    sink.report(StageResult(kept=records), "instances", log=False)
    # An instruction counts as kept once it has at least one instance (what the console and
    # compare-generators report), so calls per kept agree everywhere.
    with_instances = len({r.meta.get("instruction_id", r.id) for r in records})
    summary = run_summary(
        llm,
        generated=bootstrapper.state.generated,
        kept_instructions=with_instances,
        kept_records=len(records),
    )
    summary["instructions_bootstrapped"] = len(instructions)
    summary["instructions_with_instances"] = with_instances
    return summary


class SelfInstruct(InstructionBootstrapper):
    """The whole Self-Instruct method (all four stages) as one generator for the registry.

    Args:
        instances: run stages 3 and 4 (False keeps the bare instructions).
        instance_max_tokens: max_tokens for instance generation (300 classification / 350).
        classification_max_tokens: max_tokens for the Yes/No classification (3).
        batch_size: instructions per request batch in stages 3 and 4 (8).
        max_instances: instances kept per instruction (5).
        The others: as for :class:`InstructionBootstrapper`.
    """

    def __init__(
        self,
        *,
        num_instructions: int = 100,
        prompt_instructions: int = 8,
        machine_instructions: int = 2,
        prompts_per_batch: int = 5,
        temperature: float = 0.7,
        top_p: float = 0.5,
        presence_penalty: float = 2.0,
        max_tokens: int = 1024,
        threshold: float = 0.7,
        truncation: str = "drop_response",
        alpaca_blacklist: bool = False,
        capitalize: str | bool = "first",
        split: str = "reference",
        classification_only: bool = False,
        seed: int = 42,
        max_rounds: int | None = None,
        patience: int = 10,
        top_k: int = 0,
        prompt_style: str = "raw",
        prompts_dir: str | Path | None = None,
        instances: bool = True,
        instance_max_tokens: int | None = None,
        classification_max_tokens: int = 3,
        batch_size: int = 8,
        max_instances: int = 5,
    ) -> None:
        super().__init__(
            num_instructions=num_instructions, prompt_instructions=prompt_instructions,
            machine_instructions=machine_instructions, prompts_per_batch=prompts_per_batch,
            temperature=temperature, top_p=top_p, presence_penalty=presence_penalty,
            max_tokens=max_tokens, threshold=threshold, truncation=truncation,
            alpaca_blacklist=alpaca_blacklist, capitalize=capitalize, split=split,
            classification_only=classification_only, seed=seed, max_rounds=max_rounds,
            patience=patience, top_k=top_k, prompt_style=prompt_style, prompts_dir=prompts_dir,
        )  # fmt: skip
        self.batch_size = batch_size
        self.classifier = ClassificationIdentifier(max_tokens=classification_max_tokens,
                                                   prompt_style=prompt_style,
                                                   prompts_dir=prompts_dir)  # fmt: skip
        self.instances = InstanceGenerator(
            max_tokens_classification=instance_max_tokens or 300,
            max_tokens=instance_max_tokens or 350,
            max_instances=max_instances, prompt_style=prompt_style, prompts_dir=prompts_dir,
        ) if instances else None  # fmt: skip

    def full_prompt_hashes(self) -> dict[str, str]:
        stages = [self.classifier, self.instances] if self.instances else []
        hashes = super().full_prompt_hashes()
        for template in (t for s in stages for t in _templates(s)):
            hashes[template.key] = template.sha256
        return hashes

    def run(self, seeds: Sequence[SeedTask], llm: LLM, sink: RunSink) -> dict[str, Any]:
        """All four stages, reported to ``sink`` (rows that failed for good in an earlier
        attempt are not sent again); returns the summary."""
        with_instances = self.instances is not None
        return run_self_instruct(seeds, llm, sink, bootstrapper=self,
                                 classifier=self.classifier if with_instances else None,
                                 instances=self.instances, batch_size=self.batch_size,
                                 skip_ids=sink.skip_ids())  # fmt: skip
