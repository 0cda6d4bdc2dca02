"""Parquet shards of the Ray engine (no cluster needed): exact round trips, stable shard
numbering across resumes, and which output shards a resumed driver may merge from disk."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("pyarrow")

from tunesmith.engines.shards import (
    finished,
    inputs_key,
    plan_shards,
    read_result,
    read_rows,
    write_result,
    write_rows,
)
from tunesmith.records import Record
from tunesmith.stages import Failed, Rejected, StageResult


def records(n: int) -> list[Record]:
    return [
        Record(id=f"r{i}", instruction=f"Name {i} birds.", input="ünïcode\n" * (i % 2),
               meta={"source": "t", "row": i, "seeds": [1, 2]},
               scores={"rouge_l_max": i / 3, "nan": float("nan")} if i % 2 else {})
        for i in range(n)
    ]  # fmt: skip


def test_result_shard_round_trips_every_field(tmp_path: Path) -> None:
    rows = records(5)
    result = StageResult(
        kept=[rows[0], rows[1].with_scores(quality=4.5)],
        rejected=[Rejected(rows[2], 0.91, "near r0", "rouge_l"), Rejected(rows[3], None)],
        failed=[Failed(rows[4], 400, "context too long"), Failed(rows[4], None, "")],
    )
    usage = {"stages": {"respond": {"calls": 2, "cache_hits": 1}}, "run_id": "x", "synced": {}}
    write_result(tmp_path / "out.parquet", result, inputs="k", usage=usage)
    got, got_usage = read_result(tmp_path / "out.parquet")
    assert repr(got) == repr(result)  # repr: NaN scores compare equal as text
    assert got_usage == usage
    write_rows(tmp_path / "in.parquet", rows)
    assert repr(read_rows(tmp_path / "in.parquet")) == repr(rows)
    write_result(tmp_path / "empty.parquet", StageResult(), inputs="k", usage={})
    assert read_result(tmp_path / "empty.parquet")[0] == StageResult()


def test_plan_numbers_shards_by_the_whole_input(tmp_path: Path) -> None:
    rows = records(10)
    shards = plan_shards(rows, 4, set(), tmp_path)
    assert [(s.index, [r.id for r in s.rows]) for s in shards] == [
        (0, ["r0", "r1", "r2", "r3"]), (1, ["r4", "r5", "r6", "r7"]), (2, ["r8", "r9"])
    ]  # fmt: skip
    # on resume the done rows drop out, but shard 2 is still shard 2 (the same files)
    resumed = plan_shards(rows, 4, {"r0", "r1", "r2", "r3", "r5"}, tmp_path)
    assert [(s.index, len(s.rows)) for s in resumed] == [(1, 3), (2, 2)]
    assert resumed[1].target == shards[2].target == tmp_path / "out" / "00002.parquet"


def test_only_an_output_shard_for_exactly_the_rows_to_do_is_merged(tmp_path: Path) -> None:
    rows = records(8)
    shard = plan_shards(rows, 4, set(), tmp_path)[1]
    assert finished(shard) is None  # nothing on disk yet
    result = StageResult(kept=list(shard.rows))
    write_result(shard.target, result, inputs=inputs_key(shard.rows), usage={"run_id": "a"})
    found = finished(shard)
    assert found is not None and repr(found[0]) == repr(result) and found[1] == {"run_id": "a"}
    # the driver merged part of it before a kill: the rest is redone, not merged twice
    partial = plan_shards(rows, 4, {"r4"}, tmp_path)[1]
    assert partial.target == shard.target and finished(partial) is None
    shard.target.write_bytes(b"PAR1 torn by a kill")
    assert finished(shard) is None
