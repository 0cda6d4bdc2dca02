"""Held-out loss of a (tuned) model: mean cross-entropy over response tokens, as in training."""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

from tunesmith.errors import ConfigError, require
from tunesmith.records import Record
from tunesmith.train.data import IGNORE, Collator, encode_all, resolve_template


def heldout_loss(
    model: str | None,
    records: Sequence[Record],
    *,
    template: str = "auto",
    max_length: int = 512,
    batch_size: int = 8,
    threads: int | None = None,
) -> dict[str, Any]:
    """Token-weighted mean loss of ``model`` on the responses of ``records`` (prompt masked).

    Args:
        model: an HF folder (e.g. a run's ``model/``) or id; None = the embedded SmolLM2.

    Returns:
        ``loss`` (nats per response token), ``tokens`` scored and ``rows`` used.
    """
    torch: Any = require("torch", "hf")
    transformers: Any = require("transformers", "hf")
    from tunesmith.llm.models import resolve_hf_model

    torch.set_num_threads(int(threads or os.environ.get("TUNESMITH_THREADS", "1")))
    path = resolve_hf_model(model)
    tok = transformers.AutoTokenizer.from_pretrained(path)
    if tok.pad_token_id is None:
        tok.pad_token = tok.eos_token
    lm = transformers.AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32).eval()
    examples, _ = encode_all(records, tok, resolve_template(template, tok), max_length)
    if not examples:
        raise ConfigError("no held-out row has a response to score")
    collate = Collator(int(tok.pad_token_id))
    total, count = 0.0, 0
    with torch.inference_mode():
        for start in range(0, len(examples), batch_size):
            batch = collate(examples[start : start + batch_size])
            logits = lm(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
            labels = batch["labels"][:, 1:]
            # sum (not mean) per batch, so the result is the mean over all response tokens
            total += float(
                torch.nn.functional.cross_entropy(
                    logits[:, :-1].reshape(-1, logits.shape[-1]).float(),
                    labels.reshape(-1),
                    ignore_index=IGNORE,
                    reduction="sum",
                )
            )
            count += int((labels != IGNORE).sum())
    return {"loss": total / count, "tokens": count, "rows": len(examples)}
