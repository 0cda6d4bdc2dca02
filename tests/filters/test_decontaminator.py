"""Decontamination: planted overlaps with an evaluation set are caught, clean rows pass."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import shared_file
from tunesmith.errors import ConfigError
from tunesmith.filters.decontaminator import Decontaminator, ngrams, words
from tunesmith.io import read_records
from tunesmith.records import Record

EVAL = [
    {
        "instruction": "Write a short story about a robot who learns to paint landscapes in the "
        "mountains during a long winter.",
        "input": "",
        "output": "...",
    },
    {"instruction": "Classify the sentiment of this movie review.", "input": "", "output": "..."},
    {"instruction": "List the planets of the solar system in order from the sun.", "output": ""},
]


@pytest.fixture
def eval_file(tmp_path: Path) -> Path:
    path = tmp_path / "eval.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in EVAL), encoding="utf-8")
    return path


def test_words_and_ngrams() -> None:
    assert words("Hello, WORLD! it's 42") == ["hello", "world", "it", "s", "42"]
    assert ngrams(["a", "b", "c"], 2) == {("a", "b"), ("b", "c")}
    assert ngrams(["a"], 2) == set()


def test_planted_13_gram_overlap_is_caught_despite_case_and_punctuation(eval_file: Path) -> None:
    planted = Record(
        "planted",
        "Please WRITE a short story, about a robot who learns to paint landscapes in the "
        "mountains; keep it under 200 words.",
    )
    clean = Record("clean", "Write a poem about the sea and the sailors who cross it at night.")
    stage = Decontaminator(eval_files=[eval_file])
    result = stage.run([planted, clean])
    assert [r.id for r in result.kept] == ["clean"]
    assert result.kept[0].scores == {"decontam_ngrams": 0}
    (rej,) = result.rejected
    assert rej.record.id == "planted" and rej.score >= 1
    assert "eval.jsonl#0" in rej.reason and "n=13" in rej.reason


def test_short_eval_items_match_as_a_whole(eval_file: Path) -> None:
    # "List the planets ... from the sun" has 11 words (< 13 but >= 8): matched as a whole.
    row = Record("r", "Quiz time: list the planets of the solar system in order from the sun!")
    # "Classify the sentiment of this movie review." has 7 words: too short to match at all.
    short = Record("s", "Classify the sentiment of this movie review.")
    result = Decontaminator(eval_files=[eval_file]).run([row, short])
    assert [r.record.id for r in result.rejected] == ["r"]
    assert [r.id for r in result.kept] == ["s"]


def test_rouge_l_threshold_catches_a_paraphrase_and_equals_rouge_score(eval_file: Path) -> None:
    from rouge_score import rouge_scorer

    para = Record("p", "Classify the sentiment expressed in this movie review.")
    stage = Decontaminator(eval_files=[eval_file], rouge_threshold=0.7)
    (rej,) = stage.run([para]).rejected
    ref = rouge_scorer.RougeScorer(["rougeL"]).score(EVAL[1]["instruction"], para.instruction)
    assert rej.record.scores["decontam_rouge_l"] == pytest.approx(ref["rougeL"].fmeasure)
    assert rej.score > 0.7 and "ROUGE-L" in rej.reason and "eval.jsonl#1" in rej.reason


def test_eval_texts_fields_and_errors() -> None:
    stage = Decontaminator(eval_texts=["one two three four five six"], n=3, field="output")
    result = stage.run([Record("a", "x", output="... three four five ..."), Record("b", "x")])
    assert [r.record.id for r in result.rejected] == ["a"]
    with pytest.raises(ConfigError):
        Decontaminator().setup()
    with pytest.raises(ConfigError):
        Decontaminator(eval_texts=["a"], field="title")
    with pytest.raises(ConfigError):
        Decontaminator(eval_texts=["a"], rouge_threshold=1.5)


def test_planted_overlap_with_a_real_eval_set() -> None:
    path = shared_file("self_instruct_user_oriented_252", "user_oriented_instructions.jsonl")
    first = read_records(path)[0]
    planted = Record("planted", "Task: " + first.instruction.upper())
    clean = Record("clean", "Name three primary colors.")
    result = Decontaminator(eval_files=[path], eval_field="instruction").run([planted, clean])
    assert [r.record.id for r in result.rejected] == ["planted"]
    assert [r.id for r in result.kept] == ["clean"]
