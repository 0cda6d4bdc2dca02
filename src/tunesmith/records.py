"""The Record type that every stage reads and writes, and its conversions.

A record is one instruction-tuning example: ``instruction``, ``input``, ``output`` plus a stable
``id``, free-form ``meta`` (source, method, seeds used, model, prompt hash) and ``scores`` (one key
per stage that scored it). Stages never mutate a record: they return ``record.evolve(...)``.
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Mapping, Sequence
from typing import Any

from tunesmith.errors import ConfigError

TEXT_FIELDS = ("instruction", "input", "output")
#: What :func:`field_text` reads: a text field, ``prompt`` (instruction + input), ``text`` (all).
READABLE_FIELDS = (*TEXT_FIELDS, "prompt", "text")

#: The text fields a known score is computed from; any other score is taken to read all three.
_SCORE_FIELDS: dict[str, frozenset[str]] = {
    "ppl": frozenset({"instruction"}),  # the perplexity filter's default field (DiffTune)
    "ppl_instruction": frozenset({"instruction"}),
    "ppl_input": frozenset({"input"}),
    "ppl_output": frozenset({"output"}),
    "ppl_prompt": frozenset({"instruction", "input"}),
    "rouge_l_max": frozenset({"instruction"}),  # novelty against the instruction pool
    "rouge_l_top": frozenset({"instruction"}),
    "rouge_l_mean": frozenset({"instruction"}),
}


def score_fields(key: str) -> frozenset[str]:
    """The text fields score ``key`` depends on (all of them unless known to be fewer)."""
    return _SCORE_FIELDS.get(key, frozenset(TEXT_FIELDS))


@dataclasses.dataclass(frozen=True)
class Record:
    """One instruction-tuning example.

    Attributes:
        id: stable identifier carried through every stage.
        instruction: the task description.
        input: optional task input ("" when none).
        output: the response ("" when not generated yet).
        meta: provenance (source file and row, method, seeds, model, prompt hash, ...).
        scores: one key per scoring stage (``rouge_l_max``, ``ifd``, ``ppl`` ...).
    """

    id: str
    instruction: str
    input: str = ""
    output: str = ""
    meta: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    scores: Mapping[str, Any] = dataclasses.field(default_factory=dict)

    def evolve(self, **changes: Any) -> Record:
        """Return a copy with ``changes`` applied (meta/scores given here replace, not merge).

        A change of ``instruction``, ``input`` or ``output`` drops the scores computed on the
        old text of that field (:func:`score_fields`), so a later stage scores the new text
        instead of trusting a stale score; scores given in ``changes`` are kept as given.
        """
        changed = {f for f in TEXT_FIELDS if f in changes and changes[f] != getattr(self, f)}
        if changed and "scores" not in changes:
            changes["scores"] = {
                k: v for k, v in self.scores.items() if not score_fields(k) & changed
            }
        return dataclasses.replace(self, **changes)

    def with_scores(self, **scores: Any) -> Record:
        """Return a copy with ``scores`` merged into the record's scores."""
        return dataclasses.replace(self, scores={**self.scores, **scores})

    def with_meta(self, **meta: Any) -> Record:
        """Return a copy with ``meta`` merged into the record's meta."""
        return dataclasses.replace(self, meta={**self.meta, **meta})

    def to_dict(self) -> dict[str, Any]:
        """The record as a plain JSON-able dict (tunesmith's native row format)."""
        return {
            "id": self.id,
            "instruction": self.instruction,
            "input": self.input,
            "output": self.output,
            "meta": dict(self.meta),
            "scores": dict(self.scores),
        }

    def to_alpaca(self) -> dict[str, str]:
        """Alpaca format: ``{instruction, input, output}``."""
        return {"instruction": self.instruction, "input": self.input, "output": self.output}

    def prompt_text(self) -> str:
        """Instruction and input joined as one user turn (the input on its own paragraph)."""
        if self.input:
            return f"{self.instruction}\n\n{self.input}"
        return self.instruction

    def to_messages(self, system: str | None = None) -> dict[str, Any]:
        """Chat format: ``{"messages": [{"role", "content"}, ...]}``."""
        messages: list[dict[str, str]] = []
        if system:
            messages.append({"role": "system", "content": system})
        messages.append({"role": "user", "content": self.prompt_text()})
        messages.append({"role": "assistant", "content": self.output})
        return {"id": self.id, "messages": messages}


def check_field(field: str, choices: Sequence[str]) -> None:
    """Refuse a text field a stage does not read (one line naming the choices)."""
    if field not in choices:
        raise ConfigError(f"unknown field '{field}' (choose from {', '.join(choices)})")


def field_text(record: Record, field: str) -> str:
    """The text a stage looks at: a field, ``prompt`` (instruction+input) or ``text`` (all)."""
    check_field(field, READABLE_FIELDS)
    if field == "prompt":
        return record.prompt_text()
    if field == "text":
        return (
            f"{record.prompt_text()}\n\n{record.output}" if record.output else record.prompt_text()
        )
    return str(getattr(record, field))


def stable_id(*parts: object) -> str:
    """A short deterministic id from its parts (source name, row index, ...)."""
    digest = hashlib.sha1("\x1f".join(str(p) for p in parts).encode("utf-8")).hexdigest()
    return digest[:16]


def text_hash(text: str) -> str:
    """sha256 of a text, used for prompt-template hashes in manifests and meta."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()
