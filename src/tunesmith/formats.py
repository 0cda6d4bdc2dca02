"""Row shapes: which columns of a row become a Record's instruction, input and output.

Shapes recognised in every row, without conversion:

- tunesmith's native rows and Alpaca (``instruction``/``input``/``output``); Dolly's
  ``context``/``response``; AlpacaEval/AlpacaFarm (``instruction``, ``output``, ``generator``,
  ``dataset``); the WizardLM test set (``Instruction``: names match case-insensitively);
- Vicuna (``text``), Koala (``prompt``), MT-bench (``turns``: the first turn is the instruction,
  the later ones are kept in ``meta["later_turns"]``);
- chat rows: ``messages`` (role/content), ShareGPT ``conversations`` (from/value) and LIMA
  ``conversations`` given as a list of strings or as one string;
- Self-Instruct seed and user-oriented tasks (an ``instances`` list).

Nothing read is dropped: columns that do not feed the record's text are kept verbatim in
``meta["extra"]`` and written back on export; when a text field is read from a column with
another name (``text`` -> instruction), ``meta["read_from"]`` says so. A :class:`FieldMap` names
the columns explicitly for any other shape.
"""

from __future__ import annotations

import dataclasses
import difflib
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from tunesmith.errors import DataError
from tunesmith.fieldmap import FieldMap
from tunesmith.records import Record, stable_id

# Column names read as each text field when no map names one, in priority order (lower case).
ALIASES: dict[str, tuple[str, ...]] = {
    "instruction": ("instruction", "prompt", "question", "query", "text"),
    "input": ("input", "context"),
    "output": ("output", "response", "completion", "answer"),
}
# Columns of known formats that keep their own meta key (tunesmith's generators read them).
META_COLUMNS = ("category", "name", "is_classification")
_CHAT_KEYS = ("messages", "conversations", "turns")
_USER_ROLES = {"user", "human"}
_ASSISTANT_ROLES = {"assistant", "gpt", "bot", "model"}


@dataclasses.dataclass
class _Parts:
    """What one row contributes, gathered before the Record is built."""

    text: dict[str, str] = dataclasses.field(default_factory=dict)
    read_from: dict[str, str] = dataclasses.field(default_factory=dict)
    meta: dict[str, Any] = dataclasses.field(default_factory=dict)
    used: set[str] = dataclasses.field(default_factory=lambda: {"meta", "scores"})


def row_to_record(
    row: Mapping[str, Any],
    *,
    path: Path,
    line: int,
    index: int,
    source: str,
    field_map: Mapping[str, str] | None = None,
    allow_empty_instruction: bool = False,
) -> Record:
    """Convert one row of any recognised shape into a Record (ids derived from the row index).

    Raises:
        DataError: ``file:line: ...`` when no instruction column is found (naming the columns
            present and the likely one), or when the instruction is empty and that is not allowed.
    """
    parts = _Parts()
    for target, column in FieldMap.of(field_map).pairs:
        _take_mapped(parts, row, target, column, path, line)
    _take_shapes(parts, row, path, line)
    _take_aliases(parts, row, path, line)
    _check_instruction(parts, row, path, line, allow_empty=allow_empty_instruction)
    for key in META_COLUMNS:
        if key in row and key not in parts.used:
            parts.meta[key] = row[key]
            parts.used.add(key)
    if "id" in parts.text:
        rid: Any = parts.text.pop("id")
    else:
        rid = row.get("id")
        parts.used.add("id")
    return Record(
        id=str(rid) if rid not in (None, "") else stable_id(source, index),
        instruction=parts.text.get("instruction", ""),
        input=parts.text.get("input", ""),
        output=parts.text.get("output", ""),
        meta=_merge_meta(_read_meta(parts, row, source, index), json_dict(row.get("meta"))),
        scores=json_dict(row.get("scores")),
    )


def _read_meta(parts: _Parts, row: Mapping[str, Any], source: str, index: int) -> dict[str, Any]:
    """Where the row came from, which columns fed which field, and the columns nothing read."""
    extra = {k: v for k, v in row.items() if k not in parts.used}
    for key in ("meta", "scores"):
        if row.get(key) is not None and _parse_dict(row[key]) is None:  # not ours: keep as is
            extra[key] = row[key]
    meta: dict[str, Any] = {"source": source, "row": index, **parts.meta}
    if parts.read_from:
        meta["read_from"] = parts.read_from
    if extra:
        meta["extra"] = extra
    if system := parts.text.get("system"):
        meta["system"] = system
    return meta


def _merge_meta(read: dict[str, Any], stored: dict[str, Any]) -> dict[str, Any]:
    """A native row's own meta wins, but columns added to it since it was written join the
    columns it had kept."""
    merged = {**read, **stored}
    if "extra" in read and isinstance(stored.get("extra"), dict):
        merged["extra"] = {**stored["extra"], **read["extra"]}
    return merged


def json_dict(value: Any) -> dict[str, Any]:
    """meta/scores arrive as dicts, or as JSON strings from Parquet; anything else is ignored."""
    parsed = _parse_dict(value)
    return parsed if parsed is not None else {}


def _parse_dict(value: Any) -> dict[str, Any] | None:
    """The dict a meta/scores value holds (a dict, or its JSON text), else None."""
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError:
            return None
    return dict(value) if isinstance(value, dict) else None


def _take_mapped(
    parts: _Parts, row: Mapping[str, Any], target: str, column: str, path: Path, line: int
) -> None:
    if column not in row:
        raise DataError(
            path, line, f"mapped column '{column}' (for {target}) is missing; {_columns(row)}"
        )
    value = row[column]
    parts.used.add(column)
    if column != target:
        parts.read_from[target] = column
    if target == "id":
        parts.text["id"] = "" if value is None else str(value)
    elif target == "instruction" and isinstance(value, list):  # a list of user turns
        parts.read_from[target] = f"{column}[0]"
        _take_chat(parts, "turns", value, path, line, label=column)
    else:
        parts.text[target] = _as_text(value, column, path, line)


def _take_shapes(parts: _Parts, row: Mapping[str, Any], path: Path, line: int) -> None:
    """Chat rows and Self-Instruct tasks: text fields drawn from a structured column."""
    if "instruction" not in parts.text:
        key = next((k for k in _CHAT_KEYS if k in row and k not in parts.used), None)
        if key is not None:
            parts.used.add(key)
            if key == "turns":
                parts.read_from["instruction"] = "turns[0]"
            _take_chat(parts, key, row[key], path, line, label=key)
    if "instances" in row and "instances" not in parts.used:
        parts.used.add("instances")
        instances = _instances(row["instances"], path, line)
        parts.meta["instances"] = instances
        first = instances[0] if instances else {"input": "", "output": ""}
        for target in ("input", "output"):
            parts.text.setdefault(target, first[target])


def _take_aliases(parts: _Parts, row: Mapping[str, Any], path: Path, line: int) -> None:
    """Plain columns, by the first alias present (names compared case-insensitively)."""
    by_lower: dict[str, str] = {}
    for key in row:
        if key not in parts.used:
            by_lower.setdefault(key.lower(), key)
    for target, aliases in ALIASES.items():
        if target in parts.text:
            continue
        column = next((by_lower[a] for a in aliases if a in by_lower), None)
        if column is None:
            continue
        parts.text[target] = _as_text(row[column], column, path, line)
        parts.used.add(column)
        if column != target:
            parts.read_from[target] = column


def _check_instruction(
    parts: _Parts, row: Mapping[str, Any], path: Path, line: int, *, allow_empty: bool
) -> None:
    if "instruction" not in parts.text:
        has_text = bool({"input", "output"} & parts.text.keys())
        if allow_empty and has_text:
            return
        likely = suggest_instruction(row, parts.used)
        hint = (
            f"; the likely one is '{likely}': use --map instruction={likely}"
            if likely
            else "; name it with --map instruction=COLUMN"
        )
        wanted = "instruction, input or output" if allow_empty else "instruction"
        raise DataError(path, line, f"no {wanted} column found ({_columns(row)}){hint}")
    if not allow_empty and not parts.text["instruction"].strip():
        column = parts.read_from.get("instruction", "instruction")
        raise DataError(
            path,
            line,
            f"field '{column}' (the instruction) is empty; "
            "pass --allow-empty-instruction to keep such rows",
        )


def suggest_instruction(row: Mapping[str, Any], used: set[str] | None = None) -> str | None:
    """The column most likely to hold the instruction: one named like a known alias, else the
    column with the longest text."""
    used = used or set()
    candidates = [k for k, v in row.items() if k not in used and isinstance(v, str) and v.strip()]
    known = [a for aliases in ALIASES.values() for a in aliases] + ["task", "request"]
    for key in candidates:
        if difflib.get_close_matches(key.lower(), known, n=1, cutoff=0.75):
            return key
    return max(candidates, key=lambda k: len(row[k]), default=None)


def _columns(row: Mapping[str, Any]) -> str:
    names = ", ".join(str(k) for k in row) or "none"
    return f"columns: {names}"


def _as_text(value: Any, column: str, path: Path, line: int) -> str:
    if value is None:
        return ""
    if not isinstance(value, str):
        raise DataError(
            path, line, f"field '{column}' must be a string, got {type(value).__name__}"
        )
    return value


def _take_chat(parts: _Parts, key: str, value: Any, path: Path, line: int, *, label: str) -> None:
    """The first user turn is the instruction, the assistant turn after it the output; earlier
    and later turns are kept in meta (``earlier_turns``/``later_turns``)."""
    turns = _normalise_turns(key, value, path, line, label)
    user = next((i for i, (role, _) in enumerate(turns) if role in _USER_ROLES), None)
    if user is None:
        raise DataError(path, line, f"field '{label}' has no user turn")
    earlier = turns[:user]
    system = next((i for i, (role, _) in enumerate(earlier) if role == "system"), None)
    if system is not None:
        parts.text.setdefault("system", earlier.pop(system)[1])
    parts.text["instruction"] = turns[user][1]
    rest = turns[user + 1 :]
    if rest and rest[0][0] in _ASSISTANT_ROLES:
        answer = rest.pop(0)[1]
        parts.text.setdefault("output", answer)
    if earlier:
        parts.meta["earlier_turns"] = [{"role": r, "content": c} for r, c in earlier]
    if rest:
        parts.meta["later_turns"] = [{"role": r, "content": c} for r, c in rest]


def _normalise_turns(
    key: str, value: Any, path: Path, line: int, label: str
) -> list[tuple[str, str]]:
    """``(role, content)`` pairs. Strings alternate user/assistant (LIMA), except MT-bench's
    ``turns``, which are all user questions; one string is a single user turn."""
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not value:
        raise DataError(path, line, f"field '{label}' must be a non-empty list")
    turns: list[tuple[str, str]] = []
    for i, turn in enumerate(value):
        if isinstance(turn, str):
            role = "user" if key == "turns" or i % 2 == 0 else "assistant"
            turns.append((role, turn))
            continue
        if not isinstance(turn, dict):
            raise DataError(path, line, f"{label}[{i}] must be an object or a string")
        role = str(turn.get("role", turn.get("from", ""))).lower()
        content = turn.get("content", turn.get("value"))
        if not isinstance(content, str):
            raise DataError(path, line, f"{label}[{i}].content must be a string")
        # ShareGPT's human/gpt become user/assistant, so kept turns export as chat messages
        role = "user" if role in _USER_ROLES else "assistant" if role in _ASSISTANT_ROLES else role
        turns.append((role, content))
    return turns


def _instances(value: Any, path: Path, line: int) -> list[dict[str, str]]:
    if not isinstance(value, list):
        raise DataError(path, line, "field 'instances' must be a list")
    clean: list[dict[str, str]] = []
    for i, inst in enumerate(value):
        if (
            not isinstance(inst, dict)
            or not isinstance(inst.get("output", ""), str)
            or not isinstance(inst.get("input", ""), str)
        ):
            raise DataError(
                path, line, f"instances[{i}] must be an object with string input/output"
            )
        clean.append({"input": inst.get("input", ""), "output": inst.get("output", "")})
    return clean


def lost_in_style(records: Sequence[Record], style: str) -> str | None:
    """What an export style cannot hold, as a note for the user (None when nothing is left out):
    Alpaca rows hold one turn, and neither Alpaca nor chat rows hold a task's further instances."""
    if style == "native":
        return None
    counts = {
        "more turns": 0
        if style != "alpaca"
        else sum(1 for r in records if r.meta.get("later_turns") or r.meta.get("earlier_turns")),
        "more instances": sum(1 for r in records if len(r.meta.get("instances") or []) > 1),
    }
    found = [f"{n} rows have {what}" for what, n in counts.items() if n]
    if not found:
        return None
    return f"{style} style leaves out {' and '.join(found)}: use --style native to keep them"


def export_row(record: Record, style: str) -> dict[str, Any]:
    """One output row in ``alpaca`` or ``messages`` style, with the columns the reader kept in
    ``meta["extra"]`` (and ``category``) written back; the style's own keys win a clash."""
    extra = dict(record.meta.get("extra") or {})
    if "category" in record.meta:
        extra.setdefault("category", record.meta["category"])
    if style == "alpaca":
        own: dict[str, Any] = record.to_alpaca()
    else:
        own = record.to_messages(system=record.meta.get("system"))
        messages = own["messages"]
        at = 1 if record.meta.get("system") else 0  # earlier turns go after the system prompt
        earlier, later = record.meta.get("earlier_turns", []), record.meta.get("later_turns", [])
        own["messages"] = [*messages[:at], *earlier, *messages[at:], *later]
    return {**own, **{k: v for k, v in extra.items() if k not in own}}
