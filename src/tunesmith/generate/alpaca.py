"""The Alpaca variant of Self-Instruct (Taori et al. 2023, stanford_alpaca generate_instruction.py).

One stage writes instruction, input and output together: a requirements header, 3 seed tasks as
``###``-separated numbered Instruction/Input/Output blocks, the 4th opened, 20 tasks asked for.
Only human seeds appear in prompts. temperature 1.0, top_p 1.0, max_tokens 3072 (settable; a small
local model needs far less), stop at item 20. Filters: the Self-Instruct rules plus Alpaca's extra
blacklist words, then ROUGE-L 0.7 against seeds + kept. (The reference also blocks the
end-of-text token with a logit bias; the backend interface has no logit bias, so it is not.)
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
from tunesmith.generate.parsing import ParsedItem, parse_alpaca_tasks
from tunesmith.generate.seeds import SeedTask, require_seeds
from tunesmith.llm.base import Completion, SamplingParams
from tunesmith.llm.client import LLM
from tunesmith.prompts import PromptTemplate


@dataclasses.dataclass(kw_only=True, eq=False)
class Alpaca(LoopSettings, BootstrapLoop):
    """Alpaca-style generation of complete (instruction, input, output) tasks.

    Args:
        prompt_tasks: seed tasks shown per prompt (3).
        num_tasks: tasks the prompt asks for (20); generation stops at that item.
        temperature, top_p, max_tokens: sampling (1.0, 1.0, 3072).
        threshold: ROUGE-L near-duplicate threshold (0.7; SeDi-Instruct relaxes it to 0.85).
        strict_parsing: discard blocks with extra Input/Output pairs, as the reference code does.
        The shared options (num_instructions, prompts_per_batch, seed, max_rounds, patience,
        top_k, prompt_style, prompts_dir): see :class:`~tunesmith.generate.loop.LoopSettings`.
    """

    method = "alpaca"
    stage = "generate"
    writes_kept = True

    temperature: float = 1.0
    top_p: float = 1.0
    max_tokens: int = 3072
    prompt_tasks: int = 3
    num_tasks: int = 20
    strict_parsing: bool = False

    def __post_init__(self) -> None:
        self.blacklist = SELF_INSTRUCT_BLACKLIST + ALPACA_EXTRA_BLACKLIST
        self.template = PromptTemplate("alpaca", "generate", self.prompts_dir)
        self.seeds: list[SeedTask] = []

    def prompt_hashes(self) -> dict[str, str]:
        return {self.template.key: self.template.sha256[:16]}

    def prompt_pool(self) -> Sequence[SeedTask]:
        """The tasks prompts sample from (all seeds here; SeDi narrows it to its live seeds)."""
        return self.seeds

    def build_prompt(self, rng: random.Random, state: LoopState) -> PromptPlan:
        shown = rng.sample(list(self.prompt_pool()), self.prompt_tasks)
        tasks = [
            {
                "instruction": s.instruction,
                "input": s.first_instance()[0],
                "output": s.first_instance()[1],
            }
            for s in shown
        ]
        text = self.template.render(tasks=tasks, num_tasks=self.num_tasks)
        return PromptPlan(text, [s.id for s in shown])

    def sampling_params(self, round_index: int, prompt_index: int) -> SamplingParams:
        n = self.num_tasks
        return SamplingParams(
            temperature=self.temperature,
            top_p=self.top_p,
            max_tokens=self.max_tokens,
            stop=(f"\n{n}", f"{n}.", f"{n} ."),
            seed=(self.seed * 1_000_003 + round_index * 101 + prompt_index) % 2**31,
        )

    def parse(self, completion: Completion) -> list[ParsedItem]:
        return parse_alpaca_tasks(
            completion.text,
            self.prompt_tasks + 1,
            completion.finish_reason,
            strict=self.strict_parsing,
        )

    def setup_seeds(self, seeds: Sequence[SeedTask]) -> None:
        require_seeds(seeds, self.prompt_tasks, "seeds")
        self.seeds = list(seeds)

    def full_prompt_hashes(self) -> dict[str, str]:
        """The templates this method uses, by key, with their full sha256 (for the manifest)."""
        return {self.template.key: self.template.sha256}

    def run(self, seeds: Sequence[SeedTask], llm: LLM, sink: RunSink) -> dict[str, Any]:
        """Generate tasks, reporting each round to ``sink`` (kept rows are complete records).
        Returns the summary."""
        self.setup_seeds(seeds)
        sink.note_prompt(self.template.key, self.template.sha256)
        kept = self.generate([s.instruction for s in seeds], llm, sink)
        return run_summary(
            llm, generated=self.state.generated, kept_instructions=len(kept), kept_records=len(kept)
        )
