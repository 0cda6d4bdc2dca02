"""Responses for instructions: the final step of most generation methods (DiffTune, Humpback,
Self-Instruct instances for tasks without outputs) and a job of its own (``tunesmith respond``)."""

from __future__ import annotations

from tunesmith.llm.base import Completion, Request, SamplingParams
from tunesmith.records import Record
from tunesmith.stages import LLMStage, Rejected

#: Default answer budget. Measured with the SmolLM2 tokenizer on the reference answers in the
#: shared data (Alpaca 9K sample, Dolly 3K, Self-Instruct's 252 user-oriented tasks): 1.1%, 6.7%
#: and 4.8% of them are over 256 tokens, 0%, 0.33% and 0% over 1024. Chat models answer at greater
#: length than these references (256 tokens cut 10 of 20 AlpacaEval answers), so 1024 is the
#: smallest round budget that fits nearly all answers and still fits the embedded model's window.
DEFAULT_MAX_TOKENS = 1024


class ResponseGenerator(LLMStage):
    """Asks the LLM to answer each record's instruction (and input) as a chat turn.

    The answer replaces ``output``; an output the row already had is kept as
    ``meta.reference_output`` (an evaluation set's reference answer is not lost), and
    ``meta.finish_reason`` says whether the answer was complete (``stop``) or cut (``length``).

    Args:
        system: optional system prompt.
        temperature, top_p, max_tokens: sampling settings.
        drop_truncated: reject answers cut at ``max_tokens`` (by default they are kept, marked
            ``finish_reason: length``, so no paid answer is thrown away unasked).
    """

    name = "respond"

    def __init__(
        self,
        *,
        system: str | None = None,
        temperature: float = 0.7,
        top_p: float = 0.9,
        max_tokens: int = DEFAULT_MAX_TOKENS,
        drop_truncated: bool = False,
    ) -> None:
        self.system = system
        self.temperature = temperature
        self.top_p = top_p
        self.max_tokens = max_tokens
        self.drop_truncated = drop_truncated

    def format_input(self, record: Record) -> Request:
        messages = []
        if self.system:
            messages.append({"role": "system", "content": self.system})
        messages.append({"role": "user", "content": record.prompt_text()})
        params = SamplingParams(
            temperature=self.temperature, top_p=self.top_p, max_tokens=self.max_tokens
        )
        return Request.chat(messages, params, tag=self.name)

    def format_output(self, completion: Completion, record: Record) -> Record | Rejected:
        text = completion.text.strip()
        if not text:
            return Rejected(record, score=0, reason="empty response")
        meta = {"finish_reason": completion.finish_reason}
        if record.output and "reference_output" not in record.meta:
            meta["reference_output"] = record.output
        answered = record.with_meta(**meta).evolve(output=text)
        if completion.finish_reason == "length" and self.drop_truncated:
            return Rejected(
                answered,
                score=completion.completion_tokens,
                reason=f"response truncated at max_tokens={self.max_tokens} (--drop-truncated)",
            )
        return answered
