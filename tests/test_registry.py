"""The registry: snake_case keys, short aliases, "did you mean", plugins, the one-to-many contract."""

from __future__ import annotations

import inspect
from collections.abc import Sequence

import pytest

from tunesmith import registry
from tunesmith.errors import ConfigError
from tunesmith.llm.base import Completion, Request
from tunesmith.llm.client import LLM
from tunesmith.llm.fake import FakeBackend
from tunesmith.records import Record
from tunesmith.stages import LLMStage, Rejected, Stage


def test_stage_keys_are_their_class_in_snake_case() -> None:
    for key in registry.stages:
        cls = registry.stages.get(key)
        assert registry.snake_case(cls.__name__) == key
        assert issubclass(cls, Stage) and isinstance(cls.per_record, bool | property)


def test_generator_keys_are_their_module_file_and_take_explicit_keywords() -> None:
    for key in registry.generators:
        cls = registry.generators.get(key)
        assert cls.__module__ == f"tunesmith.generate.{key}"
        kinds = {p.kind for p in inspect.signature(cls).parameters.values()}
        assert kinds == {inspect.Parameter.KEYWORD_ONLY}, f"{key} takes **kwargs"


def test_short_names_resolve_and_unknown_names_suggest() -> None:
    assert registry.stages.get("dedup") is registry.stages.get("novelty_stage")
    assert registry.generators.key("self-instruct") == "self_instruct"
    with pytest.raises(ConfigError, match="did you mean 'heuristics'"):
        registry.stages.get("heuristic")
    with pytest.raises(
        ConfigError, match=r"unknown generation method 'sedii'.*did you mean 'sedi'"
    ):
        registry.generators.get("sedii")


def test_snake_case() -> None:
    assert registry.snake_case("HeuristicFilter") == "heuristic_filter"
    assert registry.snake_case("IFDStage") == "ifd_stage"


class MyStage(Stage):
    name = "my_stage"


class _EntryPoint:
    def __init__(self, name: str, value: str) -> None:
        self.name, self.value = name, value


def test_plugins_register_through_entry_points(monkeypatch: pytest.MonkeyPatch) -> None:
    eps = [_EntryPoint("stages.my_stage", f"{__name__}:MyStage")]
    monkeypatch.setattr(registry, "entry_points", lambda group: eps)
    monkeypatch.setattr(registry.stages, "_entries", dict(registry.stages._entries))
    assert registry.load_plugins() == ["stages.my_stage"]
    assert registry.stages.get("my_stage") is MyStage
    monkeypatch.setattr(registry, "entry_points", lambda group: [_EntryPoint("bad", "x:y")])
    with pytest.raises(ConfigError, match=r"<kind>\.<key>"):
        registry.load_plugins()


class Splits(LLMStage):
    """One record in, one record per line of the answer out (or rejected when there is none)."""

    name = "splits"

    def format_input(self, record: Record) -> Request:
        from tunesmith.llm.base import SamplingParams

        return Request.raw(record.instruction, SamplingParams(max_tokens=8), tag=self.name)

    def format_output(self, completion: Completion, record: Record) -> list[Record] | Rejected:
        parts = [p for p in completion.text.split(";") if p]
        if not parts:
            return Rejected(record, 0, "no parts")
        return [Record(id=f"{record.id}-{i}", instruction=p) for i, p in enumerate(parts)]


def test_the_base_runner_takes_one_to_many_stages() -> None:
    answers = {"two": "a;b", "none": ""}

    def respond(request: Request, sample: int) -> str:
        return answers[str(request.prompt)]

    rows: Sequence[Record] = [Record(id="x", instruction="two"), Record(id="y", instruction="none")]
    result = Splits().run(rows, LLM(FakeBackend(responses=respond)))
    assert [r.id for r in result.kept] == ["x-0", "x-1"]
    assert [r.record.id for r in result.rejected] == ["y"]
