"""A tiny DiffTune model trained once per session on a 24-instruction corpus (~30 s on 1 thread)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tunesmith.generate.diff_tune.config import DiffTuneConfig
from tunesmith.generate.diff_tune.train import train_difftune
from tunesmith.records import Record

CORPUS = [
    "Write a short poem about the sea.", "Summarize the article in two sentences.",
    "Translate the sentence into French.", "List three benefits of regular exercise.",
    "Explain how a rainbow forms.", "Give an example of a renewable energy source.",
    "Classify the review as positive or negative.", "Suggest a name for a coffee shop.",
    "Describe the water cycle for a child.", "Rewrite the sentence in the passive voice.",
    "Find the capital city of Canada.", "Generate a haiku about autumn leaves.",
    "Compare cats and dogs as pets.", "Create a shopping list for a picnic.",
    "Explain why the sky is blue.", "Write a tweet about a new phone.",
    "Calculate the area of a circle with radius two.", "Name five fruits that are red.",
    "Convert the temperature to Celsius.", "Edit the paragraph for grammar mistakes.",
    "Propose a title for a mystery novel.", "Outline the steps to bake bread.",
    "Identify the verb in the sentence.", "Recommend a book for a long flight.",
]  # fmt: skip
OVERRIDES = {"ae_steps": 240, "steps": 80, "save_steps": 20, "ae_batch_size": 12,
             "batch_size": 12, "vocab_size": 400}  # fmt: skip


def records() -> list[Record]:
    return [Record(id=str(i), instruction=t) for i, t in enumerate(CORPUS)]


def config() -> DiffTuneConfig:
    return DiffTuneConfig.from_preset("tiny", **OVERRIDES)


@pytest.fixture(scope="session")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One uninterrupted tiny training run shared by the difftune tests (~30 s)."""
    out = tmp_path_factory.mktemp("difftune") / "run"
    train_difftune(records(), out, config(), data_source="corpus", progress=False)
    return out
