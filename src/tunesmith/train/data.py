"""SFT examples: a record becomes prompt tokens (no loss) followed by response tokens (loss).

Two prompt formats:

- ``chat``: the model's own chat template, one user turn (instruction, then the input on its own
  paragraph) and one assistant turn (the output). The response span is everything the template
  adds after the generation prompt, so the end-of-turn token is learned too.
- ``alpaca``: an Alpaca-style plain-text layout (``### Instruction`` / ``### Input`` /
  ``### Response`` headers, our own wording) with the tokenizer's EOS after the output.

Prompt and response are tokenized separately, so the boundary between masked and trained tokens
is exact (no guessing where the response starts after joint tokenization). This is the
prompt-completion, completion-only-loss scheme TRL uses, which works with any chat template.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

from tunesmith.errors import ConfigError
from tunesmith.records import Record

#: Label value the causal-LM loss ignores (``torch.nn.CrossEntropyLoss(ignore_index=-100)``).
IGNORE = -100
TEMPLATES = ("auto", "chat", "alpaca")

_ALPACA_HEAD = "The task below is described by an instruction. Write a response that completes it."
_ALPACA_HEAD_INPUT = (
    "The task below is described by an instruction, with an input to work on. "
    "Write a response that completes it."
)


def alpaca_prompt(record: Record) -> str:
    """The Alpaca-style prompt for ``record``, ending where the response begins."""
    if record.input:
        return (
            f"{_ALPACA_HEAD_INPUT}\n\n### Instruction:\n{record.instruction}\n\n"
            f"### Input:\n{record.input}\n\n### Response:\n"
        )
    return f"{_ALPACA_HEAD}\n\n### Instruction:\n{record.instruction}\n\n### Response:\n"


def resolve_template(template: str, tokenizer: Any) -> str:
    """``auto`` -> ``chat`` when the tokenizer has a chat template, else ``alpaca``."""
    if template not in TEMPLATES:
        raise ConfigError(f"template must be one of {', '.join(TEMPLATES)}, not '{template}'")
    if template == "auto":
        return "chat" if getattr(tokenizer, "chat_template", None) else "alpaca"
    if template == "chat" and not getattr(tokenizer, "chat_template", None):
        raise ConfigError("this model's tokenizer has no chat template: use --template alpaca")
    return template


def prompt_and_response(record: Record, tokenizer: Any, template: str) -> tuple[str, str, bool]:
    """The prompt text, the response text, and whether EOS must be appended to the response."""
    if template == "alpaca":
        return alpaca_prompt(record), record.output, True
    user = [{"role": "user", "content": record.prompt_text()}]
    system = record.meta.get("system")  # a row's own system prompt (Humpback's seed/augmented tag)
    if isinstance(system, str) and system.strip():
        user = [{"role": "system", "content": system}, *user]
    prompt = tokenizer.apply_chat_template(user, tokenize=False, add_generation_prompt=True)
    full = tokenizer.apply_chat_template(
        [*user, {"role": "assistant", "content": record.output}], tokenize=False
    )
    if not full.startswith(prompt):
        # Templates that rewrite earlier turns once an answer follows cannot be split this way.
        raise ConfigError("the chat template does not extend its generation prompt: use alpaca")
    return prompt, full[len(prompt) :], False


@dataclasses.dataclass(frozen=True)
class Example:
    """One tokenized training example; ``labels`` is ``IGNORE`` on prompt positions."""

    id: str
    input_ids: list[int]
    labels: list[int]

    @property
    def response_tokens(self) -> int:
        return sum(1 for t in self.labels if t != IGNORE)


def encode(record: Record, tokenizer: Any, template: str, max_length: int) -> Example | None:
    """Tokenize ``record``; None when no response token fits in ``max_length`` (or no output).

    The prompt is kept whole and the response is cut on the right: a row whose prompt alone
    fills the window teaches nothing and is skipped.
    """
    if not record.output.strip():
        return None
    prompt, response, add_eos = prompt_and_response(record, tokenizer, template)
    # add_special_tokens only on the plain-text prompt: a chat template writes its own BOS.
    prompt_ids = tokenizer(prompt, add_special_tokens=template == "alpaca")["input_ids"]
    response_ids = tokenizer(response, add_special_tokens=False)["input_ids"]
    if add_eos and tokenizer.eos_token_id is not None:
        response_ids = [*response_ids, tokenizer.eos_token_id]
    ids = (list(prompt_ids) + list(response_ids))[:max_length]
    labels = ([IGNORE] * len(prompt_ids) + list(response_ids))[:max_length]
    if all(t == IGNORE for t in labels):
        return None
    return Example(record.id, ids, labels)


def encode_all(
    records: Sequence[Record], tokenizer: Any, template: str, max_length: int
) -> tuple[list[Example], list[str]]:
    """Encode every record; returns the examples and the ids of rows skipped (nothing to learn)."""
    examples: list[Example] = []
    skipped: list[str] = []
    for rec in records:
        ex = encode(rec, tokenizer, template, max_length)
        if ex is None:
            skipped.append(rec.id)
        else:
            examples.append(ex)
    return examples, skipped


class Collator:
    """Right-pads a list of examples into ``input_ids``, ``attention_mask``, ``labels`` tensors.

    Padding positions carry ``IGNORE`` labels and a 0 attention mask. The example ids travel as
    ``row_ids`` (a plain list) so the trainer can record which rows made each optimizer step.
    """

    def __init__(self, pad_token_id: int, pad_to_multiple_of: int | None = None) -> None:
        self.pad_token_id = pad_token_id
        self.pad_to_multiple_of = pad_to_multiple_of

    def __call__(self, examples: Sequence[Example | dict[str, Any]]) -> dict[str, Any]:
        import torch

        rows = [ex if isinstance(ex, Example) else Example(**ex) for ex in examples]
        width = max(len(r.input_ids) for r in rows)
        if self.pad_to_multiple_of:
            m = self.pad_to_multiple_of
            width = (width + m - 1) // m * m
        ids = torch.full((len(rows), width), self.pad_token_id, dtype=torch.long)
        labels = torch.full((len(rows), width), IGNORE, dtype=torch.long)
        mask = torch.zeros((len(rows), width), dtype=torch.long)
        for i, r in enumerate(rows):
            n = len(r.input_ids)
            ids[i, :n] = torch.tensor(r.input_ids)
            labels[i, :n] = torch.tensor(r.labels)
            mask[i, :n] = 1
        return {
            "input_ids": ids,
            "attention_mask": mask,
            "labels": labels,
            "row_ids": [r.id for r in rows],
        }
