"""Read and write records: JSONL, JSON arrays, Parquet and HF ``datasets`` folders.

Which row shapes are recognised, and how unknown columns are kept, is :mod:`tunesmith.formats`.
Every problem is reported as one line, ``file:line: what``, before any LLM call is made: a
malformed row, invalid UTF-8, an unreadable Parquet file, and an empty input (no rows) in every
format.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

from tunesmith.errors import DataError, require
from tunesmith.formats import FieldMap, export_row, row_to_record
from tunesmith.records import Record

__all__ = [
    "EXPORT_STYLES",
    "FORMATS",
    "FieldMap",
    "append_jsonl",
    "detect_format",
    "iter_rows",
    "read_records",
    "record_to_row",
    "row_to_record",
    "write_records",
]

FORMATS = ("jsonl", "json", "parquet", "hf")
EXPORT_STYLES = ("native", "alpaca", "messages")


def detect_format(path: Path) -> str:
    """Guess the container format from the path (a folder is an HF ``datasets`` save)."""
    if path.is_dir():
        return "hf"
    suffix = path.suffix.lower()
    if suffix in (".jsonl", ".ndjson"):
        return "jsonl"
    if suffix == ".json":
        return "json"
    if suffix in (".parquet", ".pq"):
        return "parquet"
    raise DataError(
        path,
        None,
        f"unknown file type '{suffix}' (expected one of .jsonl .json .parquet or a datasets folder)",
    )


def read_records(
    path: str | os.PathLike[str],
    *,
    field_map: Mapping[str, str] | None = None,
    allow_empty_instruction: bool = False,
    require_instruction: bool | None = None,
) -> list[Record]:
    """Read every row of a dataset file or folder into Records.

    Args:
        path: a .jsonl/.json/.parquet file, a folder written by ``datasets.save_to_disk``, or a
            tunesmith run folder (its ``kept.jsonl``).
        field_map: which column feeds which field (a :class:`FieldMap` or a plain mapping such as
            ``{"instruction": "prompt"}``); fields it does not name are detected.
        allow_empty_instruction: accept rows whose instruction is empty or absent (unlabelled
            text, which must then have an input or output).
        require_instruction: older spelling of ``not allow_empty_instruction``.

    Raises:
        DataError: ``file:line: message`` for a missing or empty file, a malformed line, bad
            encoding, or a missing or empty field.
    """
    if require_instruction is not None:
        allow_empty_instruction = not require_instruction
    fmap = FieldMap.of(field_map)
    p = _dataset_path(Path(path))
    source = p.stem if p.is_file() else p.name
    try:
        records = [
            row_to_record(row, path=p, line=line, index=i, source=source, field_map=fmap,
                          allow_empty_instruction=allow_empty_instruction)
            for i, (line, row) in enumerate(iter_rows(p))
        ]  # fmt: skip
    except OSError as exc:  # unreadable: permissions, a folder named like a file, ...
        raise DataError(p, None, f"cannot read: {exc.strerror or exc}") from None
    if not records:
        raise DataError(p, None, "no rows to read (the dataset is empty)")
    return records


def _dataset_path(p: Path) -> Path:
    """The file or folder holding the rows (a run folder's ``kept.jsonl``); missing or empty
    files are errors."""
    if not p.exists():
        raise DataError(p, None, "no such file or folder")
    if p.is_dir() and (p / "kept.jsonl").exists():  # a tunesmith run folder: its kept rows
        p = p / "kept.jsonl"
    if p.is_file() and p.stat().st_size == 0:
        raise DataError(p, None, "no rows to read (the file is empty)")
    return p


def describe_fields(records: Iterable[Record]) -> list[str]:
    """One line per text field read from a column with another name, e.g.
    ``instruction <- text (80 rows)``, so a command can say which column it used."""
    counts: dict[tuple[str, str], int] = {}
    for record in records:
        for target, column in (record.meta.get("read_from") or {}).items():
            counts[(target, column)] = counts.get((target, column), 0) + 1
    return [f"{t} <- {c} ({n} rows)" for (t, c), n in counts.items()]


def iter_rows(path: Path) -> Iterator[tuple[int, Mapping[str, Any]]]:
    """Yield ``(line_number, row_dict)``; for Parquet/HF rows the 'line' is the 1-based row number."""
    fmt = detect_format(path)
    if fmt == "jsonl":
        yield from _iter_jsonl(path)
    elif fmt == "json":
        yield from _iter_json_array(path)
    elif fmt == "parquet":
        yield from enumerate(_read_parquet(path), start=1)
    else:
        yield from enumerate(_read_hf(path), start=1)


def _read_parquet(path: Path) -> list[dict[str, Any]]:
    import pyarrow.parquet as pq

    try:
        return pq.read_table(path).to_pylist()  # type: ignore[no-any-return]
    except Exception as exc:  # Arrow raises ArrowInvalid, OSError, ... for a damaged file
        raise DataError(path, None, f"not a readable Parquet file: {_first_line(exc)}") from None


def _read_hf(path: Path) -> list[dict[str, Any]]:
    datasets = require("datasets", "hf")
    if _saved_without_rows(path):  # datasets cannot load a dataset it saved with no rows
        return []
    try:
        ds = datasets.load_from_disk(str(path))  # type: ignore[attr-defined]
    except Exception as exc:  # datasets raises many types for a non-dataset folder
        raise DataError(path, None, f"not a datasets folder: {_first_line(exc)}") from None
    if hasattr(ds, "keys"):  # a DatasetDict: one split is read, several are never merged
        splits = list(ds.keys())
        if len(splits) > 1:
            raise DataError(
                path,
                None,
                f"a datasets folder with splits {', '.join(splits)}: "
                f"name one, e.g. {path / splits[0]}",
            )
        ds = ds[splits[0]]
    return list(ds)


def _saved_without_rows(path: Path) -> bool:
    try:
        state = json.loads((path / "state.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(state, dict) and state.get("_data_files") == []


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _decode(raw: bytes, path: Path, line: int) -> str:
    """UTF-8 text (a leading byte-order mark is dropped), or ``file:line: invalid UTF-8``."""
    try:
        return raw.decode("utf-8-sig" if line == 1 else "utf-8")
    except UnicodeDecodeError as exc:
        at_line = line + raw.count(b"\n", 0, exc.start)
        column = exc.start - (raw.rfind(b"\n", 0, exc.start) + 1) + 1
        bad = raw[exc.start : exc.start + 1].hex()
        raise DataError(
            path,
            at_line,
            f"invalid UTF-8 (byte 0x{bad} at column {column}); save the file as UTF-8",
        ) from None


def _iter_jsonl(path: Path) -> Iterator[tuple[int, Mapping[str, Any]]]:
    with path.open("rb") as fh:
        for line_no, raw in enumerate(fh, start=1):
            line = _decode(raw, path, line_no)
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                raise DataError(
                    path,
                    line_no,
                    f"invalid JSON: {exc.msg.removesuffix(' at')} (column {exc.colno})",
                ) from None
            except RecursionError:
                raise DataError(path, line_no, "invalid JSON: nested too deeply") from None
            if not isinstance(row, dict):
                raise DataError(path, line_no, f"expected a JSON object, got {type(row).__name__}")
            yield line_no, row


def _iter_json_array(path: Path) -> Iterator[tuple[int, Mapping[str, Any]]]:
    """Walk a JSON array item by item so each row keeps the line it starts on."""
    text = _decode(path.read_bytes(), path, 1)
    decoder = json.JSONDecoder()
    lines = _LineCounter(text)
    pos = _skip_ws(text, 0)
    if pos < len(text) and text[pos] == "{":
        yield from _json_objects(path, text, pos)
        return
    if pos >= len(text) or text[pos] != "[":
        raise DataError(path, lines.at(pos), "expected a JSON array of objects")
    pos = _skip_ws(text, pos + 1)
    if pos < len(text) and text[pos] == "]":
        return
    while True:
        line = lines.at(pos)
        try:
            row, pos = decoder.raw_decode(text, pos)
        except json.JSONDecodeError as exc:
            raise DataError(path, exc.lineno, f"invalid JSON ({exc.msg})") from None
        except RecursionError:
            raise DataError(path, line, "invalid JSON: nested too deeply") from None
        if not isinstance(row, dict):
            raise DataError(path, line, f"expected a JSON object, got {type(row).__name__}")
        yield line, row
        pos = _skip_ws(text, pos)
        if pos < len(text) and text[pos] == ",":
            pos = _skip_ws(text, pos + 1)
            continue
        if pos < len(text) and text[pos] == "]":
            return
        raise DataError(path, lines.at(pos), "expected ',' or ']' between array items")


def _json_objects(path: Path, text: str, pos: int) -> Iterator[tuple[int, Mapping[str, Any]]]:
    """A ``.json`` file that starts with an object: JSON Lines under another name (read as
    such), or one object whose rows sit under a key (an error naming the key, since reading
    only that key would drop the rest without a word)."""
    try:
        first, end = json.JSONDecoder().raw_decode(text, pos)
    except (json.JSONDecodeError, RecursionError):
        first, end = None, pos
    if isinstance(first, dict) and _skip_ws(text, end) < len(text):
        yield from _iter_jsonl(path)
        return
    keys = [
        k for k, v in (first or {}).items() if isinstance(v, list) and v and isinstance(v[0], dict)
    ]
    hint = f" (its rows may be the list under '{keys[0]}')" if keys else ""
    raise DataError(path, 1, f"expected a JSON array of objects, got one object{hint}")


class _LineCounter:
    """Line numbers for increasing offsets in linear total time (counting from the start of the
    file for every row would make reading a large JSON array quadratic)."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0
        self.line = 1

    def at(self, pos: int) -> int:
        if pos < self.pos:  # rare: restart from the top
            self.pos, self.line = 0, 1
        self.line += self.text.count("\n", self.pos, pos)
        self.pos = pos
        return self.line


def _skip_ws(text: str, pos: int) -> int:
    while pos < len(text) and text[pos] in " \t\r\n":
        pos += 1
    return pos


def record_to_row(record: Record, style: str = "native") -> dict[str, Any]:
    """One output row in the chosen export style (native, alpaca or messages)."""
    if style == "native":
        return record.to_dict()
    if style in ("alpaca", "messages"):
        return export_row(record, style)
    raise ValueError(f"unknown export style '{style}' (choose from {', '.join(EXPORT_STYLES)})")


def write_records(
    path: str | os.PathLike[str],
    records: Iterable[Record],
    *,
    style: str = "native",
    fmt: str | None = None,
) -> Path:
    """Write records atomically (a temp file renamed into place, so a crash never leaves half a file).

    Args:
        path: destination; the format follows the suffix unless ``fmt`` is given.
        style: ``native`` (all fields), ``alpaca`` or ``messages``.
    """
    p = Path(path)
    if fmt is None:
        fmt = "hf" if p.is_dir() or not p.suffix else detect_format(p)
    rows = [record_to_row(r, style) for r in records]
    p.parent.mkdir(parents=True, exist_ok=True)
    if fmt == "hf":
        datasets = require("datasets", "hf")
        with _arrow_errors(p):
            ds = datasets.Dataset.from_list(_parquet_safe(rows))  # type: ignore[attr-defined]
        ds.save_to_disk(str(p))
        return p
    fd, tmp = tempfile.mkstemp(dir=p.parent, prefix=f".{p.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            if fmt == "jsonl":
                for row in rows:
                    fh.write((json.dumps(row, ensure_ascii=False) + "\n").encode("utf-8"))
            elif fmt == "json":
                fh.write(json.dumps(rows, ensure_ascii=False, indent=1).encode("utf-8"))
            elif fmt == "parquet":
                import pyarrow as pa
                import pyarrow.parquet as pq

                with _arrow_errors(p):
                    table = pa.Table.from_pylist(_parquet_safe(rows))
                pq.write_table(table, fh)
            else:
                raise ValueError(f"unknown format '{fmt}'")
        os.replace(tmp, p)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return p


@contextlib.contextmanager
def _arrow_errors(path: Path) -> Iterator[None]:
    """Arrow needs one type per column; kept columns of a user's file may mix them (an id that
    is a number in one row and text in another): one line, not Arrow's traceback."""
    import pyarrow as pa

    try:
        yield
    except (pa.ArrowException, TypeError) as exc:
        raise DataError(
            path,
            None,
            f"cannot store these rows as Arrow ({_first_line(exc)}); write .jsonl or .json instead",
        ) from None


def _parquet_safe(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Arrow needs one schema (it would unify free-form dicts, adding None keys): store meta and
    scores as JSON strings, which ``row_to_record`` parses back."""
    out = []
    for row in rows:
        out.append({k: json.dumps(v) if k in ("meta", "scores") else v for k, v in row.items()})
    return out


def append_jsonl(path: Path, rows: Iterable[Mapping[str, Any]]) -> None:
    """Append rows and fsync, so rows written before a crash survive it.

    A torn last line (a kill mid-write) is closed with a newline first, so the new rows are not
    glued onto it (readers skip the torn line; resume rewrites that row).
    """
    torn = False
    if path.exists() and path.stat().st_size > 0:
        with path.open("rb") as fh:
            fh.seek(-1, os.SEEK_END)
            torn = fh.read(1) != b"\n"
    with path.open("a", encoding="utf-8") as fh:
        if torn:
            fh.write("\n")
        for row in rows:
            fh.write(json.dumps(row, ensure_ascii=False) + "\n")
        fh.flush()
        os.fsync(fh.fileno())
