"""Row shapes of published instruction and evaluation files load as they are, and nothing read is
lost: unused columns ride in meta and are written back; renamed fields say so."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tunesmith.errors import DataError
from tunesmith.io import FieldMap, read_records, write_records

FIXTURES = Path(__file__).parent / "fixtures" / "formats"


def _rows(name: str) -> list[dict]:
    path = FIXTURES / name
    if path.suffix == ".json":
        return json.loads(path.read_text())
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def test_vicuna_questions_read_text_as_the_instruction() -> None:
    records = read_records(FIXTURES / "vicuna_question.jsonl")
    assert [r.instruction for r in records] == [
        row["text"] for row in _rows("vicuna_question.jsonl")
    ]
    first = records[0]
    assert first.meta["read_from"] == {"instruction": "text"}  # the rename is said, not silent
    assert first.meta["extra"] == {"question_id": 1}
    assert first.meta["category"] == "generic"


def test_mt_bench_first_turn_is_the_instruction_and_the_rest_is_kept() -> None:
    records = read_records(FIXTURES / "mtbench_question.jsonl")
    rows = _rows("mtbench_question.jsonl")
    assert [r.instruction for r in records] == [row["turns"][0] for row in rows]
    assert records[0].meta["later_turns"] == [{"role": "user", "content": rows[0]["turns"][1]}]
    assert records[0].meta["read_from"] == {"instruction": "turns[0]"}
    assert records[1].meta["extra"] == {"question_id": 111, "reference": rows[1]["reference"]}


def test_koala_prompt_and_wizardlm_instruction_with_skill_and_difficulty() -> None:
    koala = read_records(FIXTURES / "koala_test_set.jsonl")
    assert [(r.id, r.instruction) for r in koala] == [
        (row["id"], row["prompt"]) for row in _rows("koala_test_set.jsonl")
    ]
    wizard = read_records(FIXTURES / "wizardlm_testset.jsonl")
    rows = _rows("wizardlm_testset.jsonl")
    assert [r.instruction for r in wizard] == [row["Instruction"] for row in rows]
    assert wizard[1].meta["extra"] == {"idx": 2, "Skill": "Code Generation", "Difficulty": 6}


def test_lima_conversations_as_a_list_or_a_single_string() -> None:
    pair, multi, single = read_records(FIXTURES / "lima.jsonl")
    rows = _rows("lima.jsonl")
    assert (pair.instruction, pair.output) == tuple(rows[0]["conversations"])
    assert pair.meta["extra"] == {"source": "stackexchange"}  # not confused with meta.source
    assert pair.meta["source"] == "lima"
    assert (multi.instruction, multi.output) == tuple(rows[1]["conversations"][:2])
    assert multi.meta["later_turns"] == [
        {"role": "user", "content": "And one above 100?"},
        {"role": "assistant", "content": "101."},
    ]
    assert (single.instruction, single.output) == (rows[2]["conversations"], "")


@pytest.mark.parametrize("name", ["alpaca_eval.json", "alpaca_farm_evaluation.json"])
def test_alpaca_eval_files_round_trip_with_their_columns(tmp_path: Path, name: str) -> None:
    records = read_records(FIXTURES / name)
    assert records[0].meta["extra"]["generator"] == _rows(name)[0]["generator"]
    write_records(tmp_path / "back.json", records, style="alpaca")
    # alpaca style always has an input column; everything else is the file as it was
    assert json.loads((tmp_path / "back.json").read_text()) == [
        {"input": "", **row} for row in _rows(name)
    ]


@pytest.mark.parametrize("container", ["d.jsonl", "d.json", "d.parquet", "hf_folder"])
def test_extra_columns_survive_native_files_in_every_container(
    tmp_path: Path, container: str
) -> None:
    native = tmp_path / container
    write_records(native, read_records(FIXTURES / "alpaca_eval.json"))
    write_records(tmp_path / "back.jsonl", read_records(native), style="alpaca")
    back = [json.loads(line) for line in (tmp_path / "back.jsonl").read_text().splitlines()]
    assert back == [{"input": "", **row} for row in _rows("alpaca_eval.json")]


def test_self_instruct_tasks_and_predictions_keep_every_column(tmp_path: Path) -> None:
    tasks = read_records(FIXTURES / "user_oriented_instructions.jsonl")
    assert tasks[0].id == "user_oriented_task_0"
    assert (tasks[0].input, tasks[0].output) == (
        "eggs, milk, bread",
        "I need eggs, milk and bread.",
    )
    assert tasks[0].meta["extra"] == {"motivation_app": "Notes"}
    (pred,) = read_records(FIXTURES / "self_instruct_predictions.jsonl")
    row = _rows("self_instruct_predictions.jsonl")[0]
    assert (pred.instruction, pred.output) == (row["instruction"], row["response"])
    assert pred.meta["read_from"] == {"output": "response"}
    assert pred.meta["extra"] == {"prompt": row["prompt"], "target": row["target"]}
    write_records(tmp_path / "p.jsonl", [pred], style="alpaca")
    written = json.loads((tmp_path / "p.jsonl").read_text())
    assert written["target"] == row["target"] and written["prompt"] == row["prompt"]


def test_chat_turns_after_the_first_answer_are_exported_again(tmp_path: Path) -> None:
    (rec,) = read_records(FIXTURES / "sharegpt.jsonl")
    assert (rec.instruction, rec.output, rec.meta["system"]) == (
        "Capital of Peru?",
        "Lima.",
        "Answer briefly.",
    )
    write_records(tmp_path / "m.jsonl", [rec], style="messages")
    messages = json.loads((tmp_path / "m.jsonl").read_text())["messages"]
    source = _rows("sharegpt.jsonl")[0]["conversations"]
    roles = {"system": "system", "human": "user", "gpt": "assistant"}
    assert messages == [{"role": roles[t["from"]], "content": t["value"]} for t in source]


def _write(tmp_path: Path, rows: list[dict]) -> Path:
    path = tmp_path / "d.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_read_with_a_field_map(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        [{"ask": "Name a colour.", "reply": "Teal.", "instruction": "draft", "lang": "en"}],
    )
    (rec,) = read_records(path, field_map=FieldMap.parse("instruction=ask,output=reply"))
    assert (rec.instruction, rec.output) == ("Name a colour.", "Teal.")
    assert rec.meta["read_from"] == {"instruction": "ask", "output": "reply"}
    assert rec.meta["extra"] == {"instruction": "draft", "lang": "en"}  # the unmapped one is kept
    (plain,) = read_records(path, field_map={"id": "lang"})  # a plain mapping works too
    assert (plain.id, plain.instruction) == ("en", "draft")
    with pytest.raises(DataError, match=r"d\.jsonl:1: mapped column 'answer' \(for output\)"):
        read_records(path, field_map=FieldMap.parse("output=answer"))


def test_no_instruction_column_names_the_columns_and_the_likely_one(tmp_path: Path) -> None:
    path = _write(tmp_path, [{"qid": 4, "user_request": "Plan a picnic.", "tag": "x"}])
    with pytest.raises(DataError) as err:
        read_records(path)
    message = str(err.value)
    assert message.startswith(f"{path}:1: no instruction column found")
    assert "columns: qid, user_request, tag" in message
    assert "--map instruction=user_request" in message
    with pytest.raises(DataError, match="no instruction, input or output column"):
        read_records(path, allow_empty_instruction=True)


def test_an_empty_instruction_is_an_error_unless_allowed(tmp_path: Path) -> None:
    path = _write(tmp_path, [{"prompt": "Say hi."}, {"prompt": "  ", "output": "text"}])
    with pytest.raises(DataError, match=r"d\.jsonl:2: field 'prompt' \(the instruction\) is empty"):
        read_records(path)
    records = read_records(path, allow_empty_instruction=True)
    assert [r.instruction for r in records] == ["Say hi.", "  "]


def test_a_foreign_meta_column_is_kept_not_dropped(tmp_path: Path) -> None:
    path = _write(tmp_path, [{"instruction": "Hi.", "meta": "crawl-2023", "scores": [1, 2]}])
    (rec,) = read_records(path)
    assert rec.meta["extra"] == {"meta": "crawl-2023", "scores": [1, 2]}
    assert rec.scores == {}


def test_a_column_added_to_a_native_file_joins_its_kept_columns(tmp_path: Path) -> None:
    native = read_records(FIXTURES / "alpaca_eval.json")[0].to_dict()
    path = _write(tmp_path, [{**native, "rating": 4}])
    (rec,) = read_records(path)
    assert rec.meta["extra"] == {"dataset": "helpful_base", "generator": "my_model_v1", "rating": 4}


def test_real_user_oriented_tasks_keep_motivation_app(tmp_path: Path) -> None:
    from tests.conftest import shared_file

    path = shared_file("self_instruct_user_oriented_252", "user_oriented_instructions.jsonl")
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    records = read_records(path)
    assert [r.instruction for r in records] == [row["instruction"] for row in rows]
    assert [r.meta["extra"] for r in records] == [
        {"motivation_app": row["motivation_app"]} for row in rows
    ]
    write_records(tmp_path / "a.jsonl", records, style="alpaca")
    back = [json.loads(line) for line in (tmp_path / "a.jsonl").read_text().splitlines()]
    assert [b["motivation_app"] for b in back] == [row["motivation_app"] for row in rows]
    assert [(b["input"], b["output"]) for b in back] == [
        (row["instances"][0]["input"], row["instances"][0]["output"]) for row in rows
    ]
