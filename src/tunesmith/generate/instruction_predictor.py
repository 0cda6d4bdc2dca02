"""The backward model of instruction backtranslation (Li et al. 2023, "Self-Alignment with
Instruction Backtranslation"): predicts the instruction a text answers.

M_yx is either any LLM shown seed (response -> instruction) pairs as earlier chat turns
(``few-shot``), or a model fine-tuned on the seed pairs reversed (``finetuned``: the text alone
is the user turn, the layout :func:`reverse_pairs` produces for ``tunesmith train sft``).
"""

from __future__ import annotations

import random
import re
from collections.abc import Sequence
from typing import Any, ClassVar

from tunesmith.errors import ConfigError
from tunesmith.llm.base import Completion, Request, SamplingParams
from tunesmith.prompts import PromptTemplate
from tunesmith.records import Record
from tunesmith.stages import LLMStage, Rejected

BACKWARD_MODES = ("few-shot", "finetuned")
# "Instruction: ...", "### Instruction\n...", "The request: ..." (a label, then the instruction)
_LABEL = re.compile(
    r"^\s*(?:#+\s*)?(?:the\s+)?(?:instruction|request|prompt|task)\s*(?::|#*\s*\n)\s*", re.I
)
_STOP = re.compile(r"\n\s*(?:#+\s*)?(?:response|answer|text|output)\s*:", re.I)


def reverse_pairs(records: Sequence[Record]) -> list[Record]:
    """Seed pairs reversed for training the backward model M_yx: the response becomes the
    instruction and the instruction (with its input) the response (``train sft --reverse``)."""
    return [
        r.evolve(
            instruction=r.output,
            input="",
            output=r.prompt_text(),
            scores={},
            meta={**r.meta, "reversed": True},
        )
        for r in records
        if r.output.strip() and r.instruction.strip()
    ]


def parse_instruction(
    text: str, response: str, *, truncated: bool = False, max_chars: int = 1000
) -> tuple[str | None, str]:
    """The instruction in a backward model's reply, or None and why it is unusable.

    Strips a leading ``Instruction:`` label, wrapping quotes and anything after a line that
    starts the response again (small models go on to answer their own instruction).
    """
    if truncated:
        return None, "instruction cut at max_tokens"
    out = _STOP.split(text.strip(), maxsplit=1)[0]
    out = _LABEL.sub("", out).strip()
    if len(out) >= 2 and out[0] == out[-1] and out[0] in "\"'`":
        out = out[1:-1].strip()
    if not out:
        return None, "empty instruction"
    if len(out) > max_chars:
        return None, f"instruction of {len(out)} characters > {max_chars}"
    head = response.strip()[: max(40, len(out))]
    if out[:200] == head[:200]:
        return None, "the instruction copies the text"
    return out, ""


class InstructionPredictor(LLMStage):
    """The backward model M_yx: predicts the instruction each record's ``output`` answers.

    Writes ``instruction`` (the original, if any, goes to ``meta["original_instruction"]``) and
    ``meta["backtranslation"]`` (the few-shot seed ids). Usable as a recipe stage
    (``backtranslate: {seeds: seeds.jsonl}``) on any dataset with outputs.

    Args:
        seeds: a dataset of seed (instruction, output) pairs for the few-shot prompt.
        num_examples: seed pairs shown per request (as earlier user/assistant turns).
        mode: ``few-shot`` or ``finetuned`` (a reversed-SFT model: the text alone, no prompt).
        example_chars: prefer seed outputs up to this long; longer ones are cut to it.
        temperature, max_tokens: sampling (greedy by default).
        max_instruction_chars: longer predictions are rejected.
        seed: RNG seed of the per-row example choice (stable per row id, resume-safe).
        prompts_dir: folder overriding ``backtranslation/backward_{system,user}.j2``.
    """

    name: ClassVar[str] = "backtranslate"

    def __init__(
        self,
        *,
        seeds: str | None = None,
        num_examples: int = 3,
        mode: str = "few-shot",
        example_chars: int = 600,
        temperature: float = 0.0,
        max_tokens: int = 128,
        max_instruction_chars: int = 1000,
        seed: int = 42,
        prompts_dir: str | None = None,
    ) -> None:
        if mode not in BACKWARD_MODES:
            raise ConfigError(f"backward mode must be one of {', '.join(BACKWARD_MODES)}")
        if mode == "few-shot" and num_examples < 0:
            raise ConfigError("num_examples must be >= 0")
        self.seeds = str(seeds) if seeds else None
        self.num_examples = num_examples
        self.mode = mode
        self.example_chars = example_chars
        self.temperature = temperature
        self.max_tokens = max_tokens
        self.max_instruction_chars = max_instruction_chars
        self.seed = seed
        self.prompts_dir = str(prompts_dir) if prompts_dir else None
        self._system = PromptTemplate("backtranslation", "backward_system", prompts_dir)
        self._user = PromptTemplate("backtranslation", "backward_user", prompts_dir)
        self._pool: list[Record] | None = None

    @property
    def prompt_hashes(self) -> dict[str, str]:
        if self.mode == "finetuned":
            return {}
        return {t.key: t.sha256 for t in (self._system, self._user)}

    def use_examples(self, seeds: Sequence[Record]) -> None:
        """Set the seed pairs directly (instead of reading ``seeds`` in :meth:`setup`)."""
        usable = [s for s in seeds if s.instruction.strip() and s.output.strip()]
        short = [s for s in usable if not s.input and len(s.output) <= self.example_chars]
        # Humpback instructions have no separate input: prefer seeds shaped like that.
        self._pool = short if len(short) >= self.num_examples else usable

    def setup(self) -> None:
        if self._pool is not None or self.mode == "finetuned":
            return
        if not self.seeds:
            raise ConfigError("backtranslate: few-shot mode needs seed pairs ('seeds')")
        from tunesmith.io import read_records

        self.use_examples(read_records(self.seeds))

    def examples_for(self, record: Record) -> list[Record]:
        """The seed pairs shown for ``record``: a choice seeded by (seed, record id)."""
        pool = self._pool or []
        k = min(self.num_examples, len(pool))
        return random.Random(f"{self.seed}:{record.id}").sample(pool, k) if k else []

    def format_input(self, record: Record) -> Request:
        params = SamplingParams(temperature=self.temperature, max_tokens=self.max_tokens)
        if self.mode == "finetuned":
            return Request.chat([{"role": "user", "content": record.output}], params, tag=self.name)
        if self._pool is None:
            self.setup()
        messages = [{"role": "system", "content": self._system.render().strip()}]
        for ex in self.examples_for(record):
            text = _cut(ex.output, self.example_chars)
            messages.append({"role": "user", "content": self._user.render(response=text).strip()})
            messages.append({"role": "assistant", "content": ex.prompt_text()})
        user = self._user.render(response=record.output).strip()
        messages.append({"role": "user", "content": user})
        return Request.chat(messages, params, tag=self.name)

    def format_output(self, completion: Completion, record: Record) -> Record | Rejected:
        instruction, why = parse_instruction(
            completion.text, record.output, truncated=completion.finish_reason == "length",
            max_chars=self.max_instruction_chars,
        )  # fmt: skip
        if instruction is None:
            return Rejected(record.with_meta(backward_reply=completion.text[:500]), reason=why)
        meta: dict[str, Any] = {
            "backtranslation": {"examples": [e.id for e in self.examples_for(record)]}
        }
        if record.instruction:
            meta["original_instruction"] = record.instruction
        return record.evolve(instruction=instruction, input="", scores={}).with_meta(**meta)


def _cut(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    cut = text.rfind(" ", 0, limit)
    return text[: cut if cut > limit // 2 else limit].rstrip() + " ..."
