"""Parquet shards of a per-record stage on the Ray engine: rows in, a stage's results out.

The driver cuts a stage's input into shards of ``batch_size`` rows (always from the stage's whole
input, so shard ``i`` holds the same rows on every attempt) and writes the rows still to do as
``<staging>/in/<i>.parquet``. A Ray worker reads one input shard, runs the stage on it and writes
``<staging>/out/<i>.parquet`` (kept, rejected and failed rows, one ``kind`` column) atomically,
with two pieces of file metadata: a hash of the input ids it answers, and the shard's usage.

The Ray dataset is the list of shards (one ``map_batches`` call per shard), not
``read_parquet`` over the files: Ray Data may coalesce small files into one block or split a
large one, and an output shard must answer exactly one input shard, written once and whole.

So a shard a worker finished is on disk before the driver merges it into the run folder: a
driver killed in between finds it there on resume (:func:`plan_shards`) and merges it without
running the stage again. An output shard whose input hash differs from the rows now to do (the
driver merged part of it, or it was written for an older input) is ignored and redone.

meta, scores and a rejected row's score are JSON strings (Arrow needs one schema per column;
free-form dicts would be unified with None keys), as in :mod:`tunesmith.io`'s Parquet files.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from tunesmith.records import Record
from tunesmith.stages import Failed, Rejected, StageResult

_TEXT = ("id", "instruction", "input", "output")
_ROW = pa.schema([(k, pa.string()) for k in (*_TEXT, "meta", "scores")])
_RESULT = pa.schema(
    [("kind", pa.string()), *_ROW, ("score", pa.string()), ("reason", pa.string()),
     ("rule", pa.string()), ("status", pa.int64()), ("message", pa.string())]
)  # fmt: skip
_INPUTS, _USAGE = b"tunesmith.inputs", b"tunesmith.usage"


@dataclasses.dataclass(frozen=True)
class Shard:
    """One shard of a stage's input: its rows still to do and its two files."""

    index: int
    rows: list[Record]
    source: Path
    target: Path

    @property
    def key(self) -> str:
        return inputs_key(self.rows)


def inputs_key(records: Sequence[Record]) -> str:
    """A hash of the ids a shard answers, in order."""
    return hashlib.sha256("\x1f".join(r.id for r in records).encode("utf-8")).hexdigest()


def plan_shards(
    records: Sequence[Record], batch_size: int, done_ids: set[str], staging: Path
) -> list[Shard]:
    """The shards of ``records`` with rows not in ``done_ids`` (the run folder's), in order."""
    size = max(1, batch_size)
    shards = []
    for index, start in enumerate(range(0, len(records), size)):
        rows = [r for r in records[start : start + size] if r.id not in done_ids]
        if rows:
            name = f"{index:05d}.parquet"
            shards.append(Shard(index, rows, staging / "in" / name, staging / "out" / name))
    return shards


def finished(shard: Shard) -> tuple[StageResult, dict[str, Any]] | None:
    """The shard's result and usage when a worker already wrote them for exactly these rows."""
    if not shard.target.exists():
        return None
    try:
        meta = pq.read_schema(shard.target).metadata or {}
    except (OSError, pa.ArrowException):
        return None  # torn or foreign: redo it
    if meta.get(_INPUTS, b"").decode() != shard.key:
        return None
    return read_result(shard.target)


def _row(record: Record) -> dict[str, Any]:
    row = record.to_dict()
    return {**row, "meta": json.dumps(row["meta"]), "scores": json.dumps(row["scores"])}


def _record(row: dict[str, Any]) -> Record:
    return Record(**{k: row[k] for k in _TEXT}, meta=json.loads(row["meta"]),
                  scores=json.loads(row["scores"]))  # fmt: skip


def _write(table: pa.Table, path: Path) -> None:
    """Write ``table`` so that ``path`` is either absent or whole (a kill leaves a temp file)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    pq.write_table(table, tmp)
    os.replace(tmp, path)


def write_rows(path: Path, records: Sequence[Record]) -> None:
    """An input shard."""
    _write(pa.Table.from_pylist([_row(r) for r in records], schema=_ROW), path)


def read_rows(path: Path) -> list[Record]:
    return [_record(row) for row in pq.read_table(path).to_pylist()]


def write_result(path: Path, result: StageResult, *, inputs: str, usage: dict[str, Any]) -> None:
    """An output shard: every kept, rejected and failed row, the input hash and the usage."""
    empty = {"score": None, "reason": None, "rule": None, "status": None, "message": None}
    rows = [{"kind": "kept", **_row(r), **empty} for r in result.kept]
    rows += [{"kind": "rejected", **_row(r.record), **empty, "score": json.dumps(r.score),
              "reason": r.reason, "rule": r.stage} for r in result.rejected]  # fmt: skip
    rows += [{"kind": "failed", **_row(f.record), **empty, "status": f.status,
              "message": f.message} for f in result.failed]  # fmt: skip
    table = pa.Table.from_pylist(rows, schema=_RESULT)
    meta = {_INPUTS: inputs.encode(), _USAGE: json.dumps(usage).encode()}
    _write(table.replace_schema_metadata(meta), path)


def read_result(path: Path) -> tuple[StageResult, dict[str, Any]]:
    """The :class:`StageResult` and usage (``Ledger.to_dict()``) of an output shard."""
    table = pq.read_table(path)
    result = StageResult()
    for row in table.to_pylist():
        record = _record(row)
        if row["kind"] == "kept":
            result.kept.append(record)
        elif row["kind"] == "rejected":
            result.rejected.append(
                Rejected(record, json.loads(row["score"]), row["reason"], row["rule"])
            )
        else:
            result.failed.append(Failed(record, row["status"], row["message"]))
    usage = json.loads((table.schema.metadata or {}).get(_USAGE, b"{}"))
    return result, usage
