"""Read evaluation sets and model outputs in the formats the field publishes them in.

TEMPORARY adapter: ``tunesmith.io.read_records`` is gaining these shapes (issue 16.1); once it
has, this module shrinks to a call to it. Shapes handled here, per row:

- AlpacaEval: ``instruction``, ``output``, ``generator``, ``dataset`` (dataset -> category);
- Vicuna / MT-bench ``question.jsonl``: ``text`` or ``turns`` (first turn), ``category``,
  ``question_id``;
- Koala: ``prompt``; WizardLM test set: ``Instruction``, ``Skill`` (-> category);
- LIMA-style ``conversations`` as a list of strings (first = prompt, second = reference);
- anything ``tunesmith.io`` reads (Alpaca, seed tasks/user-oriented ``instances``, chat, runs).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from tunesmith.errors import DataError
from tunesmith.io import iter_rows, row_to_record
from tunesmith.records import Record, stable_id

_PROMPT_KEYS = ("instruction", "Instruction", "prompt", "text", "question")


def read_eval_set(path: str | Path) -> list[Record]:
    """Every row of an evaluation set or outputs file as a Record (meta: category, generator,
    reference when the row carries them)."""
    p = Path(path)
    if not p.exists():
        raise DataError(p, None, "no such file or folder")
    if p.is_dir() and (p / "outputs.json").exists():
        p = p / "outputs.json"  # an `eval generate` folder
    elif p.is_dir() and (p / "kept.jsonl").exists():
        p = p / "kept.jsonl"
    return [_record(row, p, line, i) for i, (line, row) in enumerate(iter_rows(p))]


def _record(row: Mapping[str, Any], path: Path, line: int, index: int) -> Record:
    normalized = _normalize(row, path, line)
    record = row_to_record(normalized, path=path, line=line, index=index, source=path.stem)
    extra = {
        k: normalized[k]
        for k in ("category", "generator", "reference", "question_id")
        if normalized.get(k) not in (None, "")
    }
    rid = row.get("id") or row.get("question_id") or row.get("idx")
    return record.evolve(
        id=str(rid) if rid not in (None, "") else stable_id(path.stem, index),
        meta={**record.meta, **extra},
    )


def _normalize(row: Mapping[str, Any], path: Path, line: int) -> dict[str, Any]:
    out = dict(row)
    if "turns" in row:  # MT-bench: the first turn is the instruction
        turns = row["turns"]
        if not isinstance(turns, list) or not turns or not isinstance(turns[0], str):
            raise DataError(path, line, "field 'turns' must be a non-empty list of strings")
        out["instruction"] = turns[0]
    elif (
        "conversations" in row and row["conversations"] and isinstance(row["conversations"][0], str)
    ):  # LIMA: a list of plain strings
        convo = row["conversations"]
        out.pop("conversations")
        out["instruction"] = convo[0]
        if len(convo) > 1:
            out.setdefault("reference", convo[1])
    elif "instruction" not in row and "messages" not in row and "conversations" not in row:
        key = next((k for k in _PROMPT_KEYS if isinstance(row.get(k), str)), None)
        if key is None:
            raise DataError(path, line, f"no instruction field (one of {', '.join(_PROMPT_KEYS)})")
        out["instruction"] = row[key]
    if "Skill" in row and "category" not in row:
        out["category"] = row["Skill"]
    if "dataset" in row and "category" not in row:
        out["category"] = row["dataset"]
    return out
