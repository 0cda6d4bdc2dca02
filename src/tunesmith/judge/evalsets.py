"""Evaluation sets and model outputs, read by :func:`tunesmith.io.read_records` as published.

``read_records`` reads AlpacaEval (``instruction``, ``output``, ``generator``, ``dataset``),
Vicuna/MT-bench ``question.jsonl`` (``text`` or ``turns``), Koala (``prompt``), WizardLM
(``Instruction``, ``Skill``), LIMA ``conversations``, Self-Instruct's user-oriented tasks and
tunesmith's own rows; columns it does not map stay in ``meta.extra``. This module only lifts the
ones an evaluation needs into ``meta``: ``generator``, ``category`` (AlpacaEval's ``dataset``,
WizardLM's ``Skill``), ``reference`` and the set's own id (``question_id``, ``idx``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tunesmith.errors import DataError
from tunesmith.io import iter_rows, read_records
from tunesmith.records import Record

_CATEGORY_KEYS = ("category", "dataset", "Skill", "skill")
_ID_KEYS = ("question_id", "idx")


def read_eval_set(path: str | Path) -> list[Record]:
    """Every row of an evaluation set, outputs file, ``eval generate`` folder or run folder."""
    p = Path(path)
    if p.is_dir() and (p / "outputs.json").exists():
        p = p / "outputs.json"  # an `eval generate` folder
    return [_lift(r) for r in read_records(p)]


def _lift(record: Record) -> Record:
    extra: dict[str, Any] = dict(record.meta.get("extra") or {})
    meta = dict(record.meta)
    if "category" not in meta:
        category = next((extra[k] for k in _CATEGORY_KEYS if extra.get(k) not in (None, "")), None)
        if category is not None:
            meta["category"] = str(category)
    for key in ("generator", "reference"):
        if key not in meta and extra.get(key) not in (None, ""):
            meta[key] = str(extra[key])
    own_id = next((extra[k] for k in _ID_KEYS if extra.get(k) not in (None, "")), None)
    changes: dict[str, Any] = {"meta": meta}
    if own_id is not None:
        changes["id"] = str(own_id)
    return record.evolve(**changes)


def read_references(path: str | Path) -> dict[str, str]:
    """Reference answers for single-answer grading, keyed by instruction and by the set's id.

    Rows carry ``instruction`` or ``question_id`` and the answer as ``reference``, ``output`` or
    MT-bench's ``choices[0].turns[0]`` (its ``reference_answer/*.jsonl`` files as published).
    """
    p = Path(path)
    out: dict[str, str] = {}
    for line, row in iter_rows(p):
        answer = row.get("reference", row.get("output"))
        choices = row.get("choices")
        if answer is None and isinstance(choices, list) and choices:
            turns = choices[0].get("turns") if isinstance(choices[0], dict) else None
            answer = turns[0] if isinstance(turns, list) and turns else None
        if not isinstance(answer, str):
            raise DataError(p, line, "no reference answer ('reference', 'output' or 'choices')")
        keys = [row.get("instruction"), row.get("question_id")]
        if all(k in (None, "") for k in keys):
            raise DataError(p, line, "a reference needs 'instruction' or 'question_id'")
        out.update({str(k): answer for k in keys if k not in (None, "")})
    return out
