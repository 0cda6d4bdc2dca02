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
   (Stages 3 and 4 live in :mod:`tunesmith.generate.self_instruct_instances`.)

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

import dataclasses
import random
from collections.abc import Sequence
from typing import Any

from tunesmith.driver import RunSink
from tunesmith.generate.instruction_rules import ALPACA_EXTRA_BLACKLIST, SELF_INSTRUCT_BLACKLIST
from tunesmith.generate.loop import (
    BootstrapLoop,
    LoopSettings,
    LoopState,
    PromptPlan,
    run_summary,
)
from tunesmith.generate.parsing import (
    ParsedItem,
    clean_instruction,
    parse_numbered_instructions,
)
from tunesmith.generate.seeds import SeedTask, require_seeds
from tunesmith.generate.self_instruct_instances import (
    ClassificationIdentifier,
    InstanceGenerator,
    prompt_templates,
    run_llm_stage,
)
from tunesmith.llm.base import Completion, SamplingParams
from tunesmith.llm.client import LLM
from tunesmith.prompts import PromptTemplate
from tunesmith.records import Record
from tunesmith.stages import StageResult

STOP_BOOTSTRAP = ("\n\n", "\n16", "16.", "16 .")


@dataclasses.dataclass(kw_only=True, eq=False)
class InstructionBootstrapper(LoopSettings, BootstrapLoop):
    """Stage 1+2 of Self-Instruct: grow a pool of new instructions from seed tasks.

    Args:
        prompt_instructions: in-context instructions per prompt (8).
        machine_instructions: how many of them come from machine-generated ones (2).
        temperature, top_p, presence_penalty, max_tokens: sampling (0.7, 0.5, 2, 1024).
        truncation: ``drop_response`` (reference code, default) or ``drop_last`` (paper).
        alpaca_blacklist: also reject Alpaca's extra words (video, audio, music, ...).
        capitalize: ``first`` (default), ``python`` (the code's ``str.capitalize``) or ``none``;
            applied before the filters (see :mod:`tunesmith.generate.parsing`).
        split: ``reference`` (the code's list split, default) or ``lenient``.
        classification_only: use the classification-task header and only classification seeds,
            in prompts and in the ROUGE-L pool (the reference code's classification mode).
        The shared options (num_instructions, prompts_per_batch, threshold 0.7, seed,
        max_rounds, patience, top_k, prompt_style, prompts_dir): see
        :class:`~tunesmith.generate.loop.LoopSettings`.
    """

    method = "self_instruct"
    stage = "bootstrap"

    temperature: float = 0.7
    top_p: float = 0.5
    max_tokens: int = 1024
    prompt_instructions: int = 8
    machine_instructions: int = 2
    presence_penalty: float = 2.0
    truncation: str = "drop_response"
    alpaca_blacklist: bool = False
    capitalize: str | bool = "first"
    split: str = "reference"
    classification_only: bool = False

    def __post_init__(self) -> None:
        extra = ALPACA_EXTRA_BLACKLIST if self.alpaca_blacklist else ()
        self.blacklist = SELF_INSTRUCT_BLACKLIST + extra
        self.template = PromptTemplate("self_instruct", "bootstrap", self.prompts_dir)
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


@dataclasses.dataclass(kw_only=True, eq=False)
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

    instances: bool = True
    instance_max_tokens: int | None = None
    classification_max_tokens: int = 3
    batch_size: int = 8
    max_instances: int = 5

    def __post_init__(self) -> None:
        super().__post_init__()
        self.classifier = ClassificationIdentifier(max_tokens=self.classification_max_tokens,
                                                   prompt_style=self.prompt_style,
                                                   prompts_dir=self.prompts_dir)  # fmt: skip
        self.instance_stage = InstanceGenerator(
            max_tokens_classification=self.instance_max_tokens or 300,
            max_tokens=self.instance_max_tokens or 350, max_instances=self.max_instances,
            prompt_style=self.prompt_style, prompts_dir=self.prompts_dir,
        ) if self.instances else None  # fmt: skip

    def full_prompt_hashes(self) -> dict[str, str]:
        stages = [self.classifier, self.instance_stage] if self.instance_stage else []
        hashes = super().full_prompt_hashes()
        for template in (t for s in stages for t in prompt_templates(s)):
            hashes[template.key] = template.sha256
        return hashes

    def run(self, seeds: Sequence[SeedTask], llm: LLM, sink: RunSink) -> dict[str, Any]:
        """All four stages, reported to ``sink`` (rows that failed for good in an earlier
        attempt are not sent again); returns the summary."""
        with_instances = self.instance_stage is not None
        return run_self_instruct(seeds, llm, sink, bootstrapper=self,
                                 classifier=self.classifier if with_instances else None,
                                 instances=self.instance_stage, batch_size=self.batch_size,
                                 skip_ids=sink.skip_ids())  # fmt: skip
