"""``tunesmith eval generate``: a model's outputs for an evaluation set, in AlpacaEval's format.

The answers come from the usual response stage (cached, resumable, any backend, including a
tuned model folder through ``transformers``); ``DIR/outputs.json`` then lists every instruction
of the set, in order, as ``{instruction, input, output, generator, dataset}`` rows, which is what
``eval compare`` and alpaca_eval both read. An instruction the model answered with nothing keeps
an empty output: dropping it would silently shrink the evaluation set.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from tunesmith.generate.response_generator import ResponseGenerator
from tunesmith.jobs import run_record_job
from tunesmith.llm.factory import LLMConfig
from tunesmith.records import Record


def generate_outputs(
    records: Sequence[Record],
    *,
    out: str | Path,
    config: LLMConfig,
    generator: str | None = None,
    system: str | None = None,
    max_tokens: int = 1024,
    temperature: float = 0.7,
    batch_size: int = 16,
    evalset: str = "",
) -> Path:
    """Answer every record into run folder ``out`` and write ``out/outputs.json``."""
    # truncated answers are kept (marked meta.finish_reason) by default
    stage = ResponseGenerator(system=system, max_tokens=max_tokens, temperature=temperature)
    run = run_record_job(
        stage,
        records,
        out=out,
        config=config,
        batch_size=batch_size,
        method="eval-generate",
        extra_config={"evalset": evalset, "generator": generator},
    )
    answers = {r.id: r.output for r in run.read_kept()}
    answers.update({str(r["id"]): r.get("output", "") for r in run.read_rejected()})
    name = generator or config.resolved_model()
    rows = [_row(r, answers.get(r.id, ""), name) for r in records]
    path = Path(out) / "outputs.json"
    tmp = path.with_name("outputs.json.tmp")
    tmp.write_text(json.dumps(rows, indent=2, ensure_ascii=False), encoding="utf-8")
    os.replace(tmp, path)
    return path


def _row(record: Record, output: str, generator: str) -> dict[str, Any]:
    row: dict[str, Any] = {
        "id": record.id,
        "instruction": record.instruction,
        "input": record.input,
        "output": output,
        "generator": generator,
        "dataset": record.meta.get("category") or record.meta.get("source", ""),
    }
    if record.meta.get("reference"):
        row["reference"] = record.meta["reference"]
    return row
