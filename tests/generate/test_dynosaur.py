"""Dynosaur on real files: metadata from the Dolly 3K card and the Alpaca/Dolly files, invalid task
designs rejected with reasons, exact task application, growth over a folder of datasets."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from tests.conftest import shared_file
from tunesmith.errors import ConfigError, DataError
from tunesmith.generate.dynosaur import (
    TaskDesign,
    TaskDesigner,
    apply_task,
    parse_designs,
    render_input,
)
from tunesmith.generate.dynosaur_meta import (
    DatasetInfo,
    find_datasets,
    is_id_field,
    label_space,
    load_info,
    read_rows,
)
from tunesmith.generate.dynosaur_run import load_datasets, run_dynosaur
from tunesmith.llm.base import Completion, Request
from tunesmith.llm.factory import LLMConfig
from tunesmith.llm.fake import FakeBackend


@pytest.fixture
def dolly() -> Path:
    return shared_file("dolly_3k_alpagasus", "dolly_3k.json")


# -- metadata -----------------------------------------------------------------------------------------
def test_dolly_card_gives_description_licence_fields_and_samples(dolly: Path) -> None:
    rows = read_rows(dolly)
    info = load_info(dolly, rows)
    assert info.name == "dolly_3k" and len(rows) == 2996
    assert (
        info.license == "CC BY-SA 3.0"
    )  # "Creative Commons Attribution-ShareAlike 3.0" in the card
    assert "databricks-dolly-15k" in info.description and "](" not in info.description
    assert info.fields == ["instruction", "category", "input", "output"] and info.hidden == []
    assert len(info.samples) == 2
    assert all(len(str(v)) <= 300 for s in info.samples for v in s.values())


def test_alpaca_file_and_id_fields_hidden(tmp_path: Path) -> None:
    alpaca = shared_file("alpaca_random_9k", "random_9k.json")
    info = load_info(alpaca, read_rows(alpaca))
    assert info.license == "CC BY-NC 4.0" and info.fields == ["instruction", "input", "output"]
    for name in ("id", "question_id", "docId", "uid", "ID"):
        assert is_id_field(name), name
    for name in ("video", "provided", "width", "idea", "title"):
        assert not is_id_field(name), name


def test_long_or_nested_sample_values_are_left_out() -> None:
    rows = [{"q": "x" * 400, "n": {"a": 1}, "opts": ["a", "b"], "a": "short"}] * 3
    info = load_info(Path("inline.jsonl"), rows, sample_rows=1)
    assert info.samples == [{"opts": ["a", "b"], "a": "short"}]


def test_csv_and_hf_datasets_folder(tmp_path: Path) -> None:
    csv_path = tmp_path / "pets.csv"
    csv_path.write_text("pet_id,name,kind\n1,Rex,dog\n2,Tom,cat\n")
    rows = read_rows(csv_path)
    info = load_info(csv_path, rows, license="MIT")
    assert rows[1] == {"pet_id": "2", "name": "Tom", "kind": "cat"}
    assert info.hidden == ["pet_id"] and info.fields == ["name", "kind"] and info.license == "MIT"
    datasets = pytest.importorskip("datasets")
    ds = datasets.Dataset.from_dict({"text": ["good film", "bad film"], "label": ["pos", "neg"]})
    ds.info.description = "Film reviews with their sentiment."
    ds.info.license = "CC0-1.0"
    ds.save_to_disk(str(tmp_path / "films"))
    assert find_datasets(tmp_path / "films") == [tmp_path / "films"]
    hf_info = load_info(tmp_path / "films", read_rows(tmp_path / "films"))
    assert (hf_info.name, hf_info.description, hf_info.license) == (
        "films", "Film reviews with their sentiment.", "CC0-1.0")  # fmt: skip
    splits = datasets.DatasetDict({"train": ds, "test": ds.select([0])})
    splits.save_to_disk(str(tmp_path / "films_dd"))
    found = find_datasets(tmp_path / "films_dd")
    assert [p.name for p in found] == ["test", "train"]
    names = [info.name for info, _, _ in load_datasets(tmp_path / "films_dd")]
    assert names == ["films_dd-test", "films_dd-train"]


def test_label_space_hint_rule() -> None:
    rows = [{"y": v} for v in ["pos", "neg", "neutral"] * 30]
    assert label_space(rows, "y") == ["neg", "neutral", "pos"]
    assert label_space([{"y": "pos"}] * 95 + [{"y": "neg"}] * 5, "y") is None  # imbalanced
    assert label_space([{"y": f"label {i}"} for i in range(11)], "y") is None  # too many
    assert label_space([{"y": v} for v in ["a" * 16, "b"] * 5], "y") is None  # too long


# -- design: parsing and validation ---------------------------------------------------------------
INFO = DatasetInfo(name="dolly_3k", path=Path("dolly_3k.json"), description="d",
                   fields=["instruction", "category", "input", "output"],
                   license="CC BY-SA 3.0", source="databricks")  # fmt: skip
ROWS = [
    {"instruction": "Name a fruit.", "category": "open_qa", "input": "", "output": "Apple"},
    {"instruction": "Sort it.", "category": "classification", "input": "b a", "output": "a b"},
]


@pytest.mark.parametrize(
    "reply",
    [
        '[{"instruction": "Do it.", "input_fields": ["input"], "output_field": "output"}]',
        'Here are the tasks:\n```json\n[{"instruction": "Do it.", "input_fields": ["input"],'
        ' "output_field": "output"}]\n```\nHope this helps.',
        "[{'instruction': 'Do it.', 'input_fields': ['input'], 'output_field': 'output'}]",
        '{"tasks": [{"instruction": "Do it.", "input_fields": "input", "output_field": "output"}]}',
    ],
)
def test_parse_designs_on_messy_replies(reply: str) -> None:
    items, why = parse_designs(reply)
    assert why == "" and items is not None and items[0]["instruction"] == "Do it."


def test_invalid_designs_are_rejected_with_reasons() -> None:
    reply = json.dumps([
        {"instruction": "Answer it.", "input_fields": ["instruction"], "output_field": "output"},
        {"instruction": "Guess the rating.", "input_fields": ["output"], "output_field": "stars"},
        {"instruction": "Copy.", "input_fields": ["output", "input"], "output_field": "output"},
        {"instruction": "answer  IT.", "input_fields": ["input"], "output_field": "output"},
        {"instruction": "", "input_fields": ["input"], "output_field": "output"},
    ])  # fmt: skip
    designer = TaskDesigner(max_tasks=5)
    tasks, rejected = designer.designs(Completion(text=reply), INFO, "aware", ROWS, set())
    assert [t.instruction for t in tasks] == ["Answer it."]
    reasons = [r.reason for r in rejected]
    assert reasons == [
        "unknown field 'stars' (fields: instruction, category, input, output)",
        "output field 'output' is among the input fields",
        "duplicate instruction",
        "no instruction",
    ]
    assert all(
        r.stage == "task_design" and r.record.meta["dataset"] == "dolly_3k" for r in rejected
    )
    _, extra = TaskDesigner(max_tasks=1).designs(Completion(text=reply), INFO, "aware", ROWS, set())
    assert extra[0].reason == "beyond the 1 tasks asked for" and len(extra) == 4
    _, broken = designer.designs(Completion(text='[{"instruction": "x", '), INFO, "unaware", ROWS,
                                 set())  # fmt: skip
    assert broken[0].reason == "broken JSON: the reply does not parse"
    assert broken[0].record.input == '[{"instruction": "x", '
    _, none = designer.designs(Completion(text="I cannot."), INFO, "unaware", ROWS, set())
    assert none[0].reason == "broken JSON: no list or object in the reply"


def test_nested_output_abandons_the_task_and_labels_join_the_instruction() -> None:
    rows = [{"q": "x", "meta": {"a": 1}, "y": v} for v in ["yes", "no"] * 10]
    info = DatasetInfo(name="n", path=Path("n.jsonl"), fields=["q", "meta", "y"])
    reply = json.dumps(
        [
            {"instruction": "Tell.", "input_fields": ["q"], "output_field": "meta"},
            {"instruction": "Decide.", "input_fields": ["q"], "output_field": "y"},
        ]
    )
    tasks, rejected = TaskDesigner().designs(Completion(text=reply), info, "aware", rows, set())
    assert rejected[0].reason == "output field 'meta' is nested"
    assert tasks[0].instruction == "Decide. Answer with one of: no, yes."
    assert tasks[0].labels == ("no", "yes")


def test_design_requests_aware_and_unaware(dolly: Path) -> None:
    rows = read_rows(dolly)
    info = load_info(dolly, rows)
    designer = TaskDesigner()
    aware = designer.request(info, "aware").messages[-1]["content"]  # type: ignore[index]
    unaware = designer.request(info, "unaware").messages[-1]["content"]  # type: ignore[index]
    assert info.description[:60] in aware and info.description[:60] not in unaware
    for text in (aware, unaware):
        assert "Fields: instruction, category, input, output" in text
        assert text.count("Sample row: {") == 2 + 4  # two per demo, two of the dataset
        assert "{{" not in text and "{%" not in text
    assert designer.kinds_for(DatasetInfo(name="x", path=Path("x"))) == ["unaware"]


# -- application ------------------------------------------------------------------------------------------
def test_input_rendering_rules() -> None:
    row = {"q": "Which?", "choices": ["red", "blue"], "ctx": "Sky.", "n": 3}
    assert render_input(row, ["q"]) == "Which?"
    assert render_input(row, ["choices"]) == "A. red\nB. blue"
    assert render_input(row, ["ctx", "q"]) == "ctx is 'Sky.'.\nq is 'Which?'."
    assert render_input(row, ["n"]) == "3"


def test_applying_a_task_is_exact_and_carries_licence_and_source(dolly: Path) -> None:
    rows = read_rows(dolly)
    info = load_info(dolly, rows)
    task = TaskDesign("t1", info.name, "aware", "Answer the question.", ("instruction",), "output")
    result = apply_task(task, rows, info, max_chars=2000)
    by_row = {r.meta["row"]: r for r in result.kept}
    for i in (0, 1, 500, 2995):
        if i in by_row:
            assert by_row[i].instruction == "Answer the question."
            assert by_row[i].input == rows[i]["instruction"].strip()
            assert by_row[i].output == rows[i]["output"].strip()
    assert len(result.kept) + len(result.rejected) == 2996
    long_rows = [i for i, r in enumerate(rows)
                 if len("Answer the question.") + len(r["instruction"].strip())
                 + len(r["output"].strip()) > 2000]  # fmt: skip
    assert sorted(r.record.meta["row"] for r in result.rejected) == long_rows
    assert all(r.reason.startswith("over-long: ") for r in result.rejected)
    assert {(r.meta["license"], r.meta["source"]) for r in result.kept} == {
        ("CC BY-SA 3.0", str(dolly))}  # fmt: skip
    two = TaskDesign(
        "t2", info.name, "aware", "Use the context.", ("input", "instruction"), "output"
    )
    out = apply_task(two, rows, info)
    empty_context = sum(1 for r in rows if not r["input"].strip())
    assert sum(r.reason == "empty field 'input'" for r in out.rejected) == empty_context
    first = next(r for r in out.kept)
    src = rows[first.meta["row"]]
    assert (
        first.input
        == f"input is '{src['input'].strip()}'.\ninstruction is '{src['instruction'].strip()}'."
    )


# -- the whole method ----------------------------------------------------------------------------------------
def designer_fake() -> FakeBackend:
    """Aware prompts get one valid and one invalid task; unaware ones a broken reply."""

    def respond(request: Request, sample: int) -> str:
        text = (request.messages or ())[-1]["content"]
        if "Description:" not in text.split("Now the dataset")[1]:
            return "[{'instruction': 'Oops', "
        return json.dumps([
            {"instruction": "Respond to the instruction.", "input_fields": ["instruction"],
             "output_field": "output"},
            {"instruction": "Bad.", "input_fields": ["output"], "output_field": "output"},
        ])  # fmt: skip

    return FakeBackend(responses=respond)


def test_a_folder_of_datasets_grows_without_redoing_old_ones(tmp_path: Path, dolly: Path) -> None:
    data = tmp_path / "data"
    (data / "dolly").mkdir(parents=True)
    shutil.copy(dolly, data / "dolly" / "dolly_3k.json")
    shutil.copy(dolly.with_name("DATASET_CARD_databricks-dolly-15k.md"), data / "dolly")
    config = LLMConfig(backend="fake")
    first = designer_fake()
    run = run_dynosaur(data, out=tmp_path / "run", config=config, backend=first)
    assert first.calls == 2
    s = run.manifest["summary"]
    assert (s["datasets"], s["tasks"], s["invalid_designs"]) == (1, 1, 2)
    assert s["rows_produced"] == 2996 - s["rows_rejected"]
    assert s["calls_per_1000_rows"] == pytest.approx(2 * 1000 / s["rows_produced"], abs=1e-3)
    reasons = sorted(r["reason"] for r in run.read_rejected() if r["rejected_by"] == "task_design")
    assert reasons == ["broken JSON: the reply does not parse",
                       "output field 'output' is among the input fields"]  # fmt: skip
    (data / "alpaca").mkdir()
    shutil.copy(shared_file("alpaca_random_9k", "random_9k.json"), data / "alpaca")
    grown = designer_fake()
    # an empty request cache: a dataset designed again would cost calls again
    fresh_cache = LLMConfig(backend="fake", cache_path=str(tmp_path / "other.sqlite"))
    run = run_dynosaur(data, out=tmp_path / "run", config=fresh_cache, backend=grown)
    assert grown.calls == 1  # alpaca has no card here: only the description-unaware prompt
    tasks = json.loads((run.path / "tasks.json").read_text())
    assert list(tasks) == ["dolly_3k", "random_9k"] and tasks["random_9k"]["tasks"] == []
    assert len(run.read_kept()) == s["rows_produced"]  # dolly's rows were not written again
    (data / "dolly" / "dolly_3k.json").write_text(json.dumps([{"instruction": "a", "output": "b"}]))
    with pytest.raises(ConfigError, match="dataset 'dolly_3k' changed"):
        run_dynosaur(data, out=tmp_path / "run", config=config, backend=designer_fake())


def test_bad_input_fails_before_a_run_folder(tmp_path: Path) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text("a,b\n1,2,3\n")
    with pytest.raises(DataError, match=r"bad.csv:2: more cells than columns"):
        run_dynosaur(bad, out=tmp_path / "run", config=LLMConfig(backend="fake"))
    assert not (tmp_path / "run").exists()
    with pytest.raises(ConfigError, match="does not apply"):
        run_dynosaur(bad, out=tmp_path / "run", config=LLMConfig(backend="fake"),
                     params={"temperature": 1})  # fmt: skip


def test_load_datasets_names_clashes_by_folder(tmp_path: Path) -> None:
    for sub in ("a", "b"):
        (tmp_path / sub).mkdir()
        (tmp_path / sub / "train.jsonl").write_text(json.dumps({"x": "1", "y": "2"}) + "\n")
    names = [info.name for info, _, _ in load_datasets(tmp_path)]
    assert names == ["a/train", "b/train"]


def test_a_design_request_that_fails_for_good_is_a_failed_row_retried_on_request(
    tmp_path: Path,
) -> None:
    from tunesmith.llm.base import Backend

    class Refusing(Backend):
        """Answers the unaware prompt; the aware one fails like an HTTP 400 would."""

        name = "fake"

        def __init__(self, refuse: bool) -> None:
            super().__init__("fake-model")
            self.refuse, self.calls = refuse, 0

        def complete(self, requests, on_done):  # type: ignore[no-untyped-def]
            for i, req in enumerate(requests):
                self.calls += 1
                text = req.messages[-1]["content"]
                comp = Completion(text=json.dumps([{"instruction": "Answer.", "input_fields": ["q"],
                                                    "output_field": "a"}]))  # fmt: skip
                if self.refuse and "Description:" in text.split("Now the dataset")[1]:
                    comp = Completion(text="")
                    comp.error, comp.error_status = "content filter", 400  # type: ignore[attr-defined]
                on_done(i, [comp])

    data = tmp_path / "qa"
    data.mkdir()
    (data / "qa.jsonl").write_text("".join(json.dumps({"q": f"Q{i}?", "a": f"A{i}"}) + "\n"
                                           for i in range(5)))  # fmt: skip
    (data / "README.md").write_text("Questions and their answers.\n")
    config = LLMConfig(backend="fake")
    run = run_dynosaur(data, out=tmp_path / "run", config=config, backend=Refusing(True))
    failed = [json.loads(x) for x in (run.path / "failed.jsonl").read_text().splitlines()]
    assert [(f["status"], f["message"], f["meta"]["prompt"]) for f in failed] == [
        (400, "content filter", "aware")]  # fmt: skip
    assert len(run.read_kept()) == 5  # the unaware prompt's task still made its rows
    again = Refusing(False)
    run_dynosaur(data, out=tmp_path / "run", config=config, backend=again)
    assert again.calls == 0  # a failed row is not resent unless asked
    # (an empty cache: errored replies are not cached once the accounting change is in)
    fresh = LLMConfig(backend="fake", cache_path=str(tmp_path / "fresh.sqlite"))
    run = run_dynosaur(data, out=tmp_path / "run", config=fresh, backend=again, retry_failed=True)
    assert again.calls == 2  # the dataset is designed again
    tasks = json.loads((run.path / "tasks.json").read_text())["qa"]
    assert tasks["failed"] == 0 and len(tasks["tasks"]) == 1  # the same task: a duplicate now


def test_parquet_with_a_card_file_through_the_cli(tmp_path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq
    from typer.testing import CliRunner

    from tunesmith.cli import app

    rows = {"review": [f"Review {i}" for i in range(12)], "label": ["good", "bad", "ok"] * 4}
    pq.write_table(pa.table(rows), tmp_path / "reviews.parquet")
    card = tmp_path / "card.md"
    card.write_text("---\nlicense: cc-by-4.0\ntask_categories: [text-classification]\n---\n"
                    "# Reviews\n\nShort product reviews with a **label**.\n")  # fmt: skip
    info = load_info(
        tmp_path / "reviews.parquet", read_rows(tmp_path / "reviews.parquet"), card=card
    )
    assert (info.license, info.tags, info.description) == (
        "cc-by-4.0", ["text-classification"], "Short product reviews with a label.")  # fmt: skip
    out = tmp_path / "run"
    result = CliRunner().invoke(app, ["generate", "dynosaur", str(tmp_path / "reviews.parquet"),
                                      "--card", str(card), "--out", str(out), "--backend", "fake",
                                      "--prompt", "aware", "--no-report"])  # fmt: skip
    assert result.exit_code == 0, result.output
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["summary"]["design_calls"] == 1 and manifest["config"]["card"] == str(card)
