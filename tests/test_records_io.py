"""Records and I/O: every format round-trips; every bad row fails with file:line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tunesmith.errors import DataError
from tunesmith.io import read_records, write_records
from tunesmith.records import Record, stable_id


def _records() -> list[Record]:
    return [
        Record(
            id="a",
            instruction="Add the numbers.",
            input="2 3",
            output="5",
            meta={"source": "t", "row": 0, "tags": ["math"]},
            scores={"ifd": 0.5},
        ),
        Record(
            id="b", instruction="Say hi <b>ünïcode</b>", output="hi", meta={"source": "t", "row": 1}
        ),
    ]


@pytest.mark.parametrize("name", ["d.jsonl", "d.json", "d.parquet", "hf_folder"])
def test_native_round_trip_every_format(tmp_path: Path, name: str) -> None:
    path = tmp_path / name
    if name == "hf_folder":
        path.mkdir()
    write_records(path, _records())
    back = read_records(path)
    assert [r.to_dict() for r in back] == [r.to_dict() for r in _records()]


def test_alpaca_and_messages_exports_read_back(tmp_path: Path) -> None:
    write_records(tmp_path / "a.json", _records(), style="alpaca")
    rows = json.loads((tmp_path / "a.json").read_text())
    assert rows[0] == {"instruction": "Add the numbers.", "input": "2 3", "output": "5"}
    back = read_records(tmp_path / "a.json")
    assert [(r.instruction, r.input, r.output) for r in back] == [
        (r.instruction, r.input, r.output) for r in _records()
    ]
    # ids of rows without one are derived from the row index, stably
    assert back[1].id == stable_id("a", 1) == read_records(tmp_path / "a.json")[1].id

    write_records(tmp_path / "m.jsonl", _records(), style="messages")
    msg = json.loads((tmp_path / "m.jsonl").read_text().splitlines()[0])
    assert msg["messages"][0] == {"role": "user", "content": "Add the numbers.\n\n2 3"}
    assert msg["messages"][1] == {"role": "assistant", "content": "5"}
    back = read_records(tmp_path / "m.jsonl")
    assert back[0].instruction == "Add the numbers.\n\n2 3" and back[0].output == "5"


def test_sharegpt_and_dolly_rows(tmp_path: Path) -> None:
    path = tmp_path / "s.jsonl"
    path.write_text(
        "\n".join(
            [
                json.dumps(
                    {
                        "conversations": [
                            {"from": "system", "value": "be brief"},
                            {"from": "human", "value": "Hi?"},
                            {"from": "gpt", "value": "Hello."},
                        ]
                    }
                ),
                json.dumps(
                    {
                        "instruction": "Summarise.",
                        "context": "Long text.",
                        "response": "Short.",
                        "category": "summarization",
                    }
                ),
            ]
        )
        + "\n"
    )
    chat, dolly = read_records(path)
    assert (chat.instruction, chat.output, chat.meta["system"]) == ("Hi?", "Hello.", "be brief")
    assert (dolly.input, dolly.output, dolly.meta["category"]) == (
        "Long text.",
        "Short.",
        "summarization",
    )


def test_seed_task_format(seed_tasks_path: Path) -> None:
    records = read_records(seed_tasks_path)
    assert len(records) == 175
    assert records[0].id == "seed_task_0"
    assert sum(bool(r.meta.get("is_classification")) for r in records) in (25, 26)
    assert all(r.meta["instances"] for r in records)


def test_real_alpaca_json_array(alpaca_9k_path: Path) -> None:
    records = read_records(alpaca_9k_path)
    assert len(records) == 9229
    assert len({r.id for r in records}) == 9229
    assert sum(1 for r in records if r.input) == 3666


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ('{"instruction": "ok"}\n{"instruction": \n', "d.jsonl:2: invalid JSON: "),
        ('{"instruction": "ok"}\n\n[1, 2]\n', "d.jsonl:3: expected a JSON object"),
        ('{"instruction": "ok"}\n{"input": "x"}\n', "d.jsonl:2: no instruction column found"),
        ('{"instruction": 3}\n', "d.jsonl:1: field 'instruction' must be a string"),
        (
            '{"messages": [{"role": "assistant", "content": "x"}]}\n',
            "d.jsonl:1: field 'messages' has no user turn",
        ),
        (
            '{"instruction": "x", "instances": "nope"}\n',
            "d.jsonl:1: field 'instances' must be a list",
        ),
    ],
)
def test_malformed_jsonl_names_file_and_line(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "d.jsonl"
    path.write_text(content)
    with pytest.raises(DataError) as err:
        read_records(path)
    assert str(err.value).startswith(str(tmp_path / message.split(":")[0]))
    assert message.split(":", 1)[1] in str(err.value)


def test_json_array_errors_point_at_the_row_line(tmp_path: Path) -> None:
    path = tmp_path / "d.json"
    path.write_text('[\n {"instruction": "a"},\n {"instruction": "b"},\n {"output": "c"}\n]\n')
    with pytest.raises(
        DataError, match=r"d\.json:4: no instruction column found \(columns: output\)"
    ):
        read_records(path)
    path.write_text('[\n {"instruction": "a"}\n {"instruction": "b"}\n]')
    with pytest.raises(DataError, match=r"d\.json:3: expected ',' or ']'"):
        read_records(path)


def test_missing_file_and_unknown_suffix(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="no such file"):
        read_records(tmp_path / "nope.jsonl")
    (tmp_path / "d.csv").write_text("a,b\n")
    with pytest.raises(DataError, match="unknown file type"):
        read_records(tmp_path / "d.csv")


def test_unlabelled_text_allowed_when_asked(tmp_path: Path) -> None:
    path = tmp_path / "d.jsonl"
    path.write_text('{"output": "A web page paragraph."}\n')
    with pytest.raises(DataError):
        read_records(path)
    assert read_records(path, allow_empty_instruction=True)[0].output == "A web page paragraph."
    assert read_records(path, require_instruction=False)[0].output == "A web page paragraph."


def test_records_are_immutable_and_evolve() -> None:
    r = _records()[0]
    r2 = r.with_scores(ppl=12.0).with_meta(stage="x")
    assert r.scores == {"ifd": 0.5} and r2.scores == {"ifd": 0.5, "ppl": 12.0}
    assert r2.meta["stage"] == "x" and "stage" not in r.meta
    with pytest.raises(AttributeError):
        r.instruction = "no"  # type: ignore[misc]


def test_a_run_folder_reads_as_its_kept_rows(tmp_path: Path) -> None:
    from tunesmith.runs import RunDir

    run = RunDir.open(tmp_path / "run", method="t")
    run.write_kept(_records())
    back = read_records(tmp_path / "run")
    assert [r.id for r in back] == ["a", "b"]
    assert back[0].scores == {"ifd": 0.5}


def test_invalid_utf8_names_the_line_in_jsonl_and_json(tmp_path: Path) -> None:
    path = tmp_path / "d.jsonl"
    path.write_bytes(b'{"instruction": "fine"}\n{"instruction": "caf\xe9"}\n')
    with pytest.raises(DataError, match=r"d\.jsonl:2: invalid UTF-8 \(byte 0xe9 at column 21\)"):
        read_records(path)
    path = tmp_path / "d.json"
    path.write_bytes(b'[\n {"instruction": "ok"},\n {"instruction": "\xff"}\n]\n')
    with pytest.raises(DataError, match=r"d\.json:3: invalid UTF-8 \(byte 0xff"):
        read_records(path)


def test_a_byte_order_mark_is_accepted(tmp_path: Path) -> None:
    for name, body in (("d.jsonl", '{"instruction": "a"}\n'), ("d.json", '[{"instruction": "a"}]')):
        path = tmp_path / name
        path.write_bytes(b"\xef\xbb\xbf" + body.encode())
        assert read_records(path)[0].instruction == "a"


def test_a_corrupt_parquet_file_is_one_data_error(tmp_path: Path) -> None:
    write_records(tmp_path / "good.parquet", _records())
    data = (tmp_path / "good.parquet").read_bytes()
    (tmp_path / "bad.parquet").write_bytes(data[: len(data) // 2])
    with pytest.raises(DataError, match=r"bad\.parquet: not a readable Parquet file: ") as err:
        read_records(tmp_path / "bad.parquet")
    assert "\n" not in str(err.value)


@pytest.mark.parametrize(
    ("name", "content"),
    [
        ("e.jsonl", b""),
        ("e.jsonl", b"\n  \n"),
        ("e.json", b""),
        ("e.json", b"[]"),
        ("e.parquet", b""),
        ("e.parquet", None),  # a valid Parquet file with no rows
        ("e_hf", None),  # a datasets folder with no rows
    ],
)
def test_an_empty_input_is_an_error_in_every_format(
    tmp_path: Path, name: str, content: bytes | None
) -> None:
    path = tmp_path / name
    if content is not None:
        path.write_bytes(content)
    elif name.endswith(".parquet"):
        import pyarrow as pa
        import pyarrow.parquet as pq

        pq.write_table(pa.table({"instruction": pa.array([], pa.string())}), path)
    else:
        import datasets

        datasets.Dataset.from_dict({"instruction": []}).save_to_disk(str(path))
    with pytest.raises(DataError, match=rf"{name}: no rows to read"):
        read_records(path)


def test_a_datasets_folder_with_several_splits_names_them(tmp_path: Path) -> None:
    import datasets

    rows = {"instruction": ["a", "b"], "output": ["1", "2"]}
    datasets.DatasetDict(
        {"train": datasets.Dataset.from_dict(rows), "test": datasets.Dataset.from_dict(rows)}
    ).save_to_disk(str(tmp_path / "dd"))
    with pytest.raises(DataError, match=r"dd: a datasets folder with splits train, test: name one"):
        read_records(tmp_path / "dd")  # never the train split alone without a word
    assert [r.instruction for r in read_records(tmp_path / "dd" / "test")] == ["a", "b"]
    datasets.DatasetDict({"only": datasets.Dataset.from_dict(rows)}).save_to_disk(
        str(tmp_path / "one")
    )
    assert len(read_records(tmp_path / "one")) == 2


def test_deep_nesting_and_unreadable_files_are_data_errors(tmp_path: Path) -> None:
    deep = tmp_path / "deep.jsonl"
    deep.write_text('{"instruction": "a"}\n' + "[" * 100_000 + "]" * 100_000 + "\n")
    with pytest.raises(DataError, match=r"deep\.jsonl:2: invalid JSON: nested too deeply"):
        read_records(deep)
    folder = tmp_path / "folder.jsonl"
    folder.mkdir()
    with pytest.raises(DataError, match=r"folder\.jsonl: "):
        read_records(folder)


@pytest.mark.parametrize("name", ["o.parquet", "o_hf"])
def test_kept_columns_of_mixed_types_fail_arrow_in_one_line(tmp_path: Path, name: str) -> None:
    src = tmp_path / "d.jsonl"
    src.write_text('{"instruction": "a", "qid": 1}\n{"instruction": "b", "qid": "two"}\n')
    with pytest.raises(DataError, match="cannot store these rows as Arrow") as err:
        write_records(tmp_path / name, read_records(src), style="alpaca")
    assert "\n" not in str(err.value)
    write_records(tmp_path / "o.jsonl", read_records(src), style="alpaca")  # JSON holds them


def test_json_lines_named_json_are_read_and_a_wrapped_array_is_named(tmp_path: Path) -> None:
    path = tmp_path / "lines.json"
    path.write_text('{"instruction": "a"}\n{"instruction": "b"}\n')
    assert [r.instruction for r in read_records(path)] == ["a", "b"]
    path.write_text('{"instruction": "a"}\n{"instruction": \n')
    with pytest.raises(DataError, match=r"lines\.json:2: invalid JSON"):
        read_records(path)
    wrapped = tmp_path / "wrapped.json"
    wrapped.write_text(json.dumps({"version": 2, "data": [{"instruction": "a"}]}))
    with pytest.raises(
        DataError, match=r"wrapped\.json:1: .*one object \(its rows may be the list under 'data'\)"
    ):
        read_records(wrapped)
