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


def module_stem(target: object) -> str:
    """The file name (or package name) a class or function is defined in, without ``.py``."""
    return str(getattr(target, "__module__", "")).rsplit(".", 1)[-1]


def naming_problems(entries: list[tuple[str, str, tuple[str, ...]]]) -> list[str]:
    """Entries whose key, module file and snake_case class name are not all the same."""
    problems = []
    for key, path, _ in entries:
        module, _, attr = path.partition(":")
        stem = module.rsplit(".", 1)[-1]
        named = attr if attr[:1].isupper() else stem  # trainers are functions: key = module
        if not key == stem == registry.snake_case(named):
            problems.append(f"{key}: module {stem}, class {attr}")
    return problems


def test_every_builtin_key_is_its_module_file_and_snake_case_class() -> None:
    assert registry.BUILTINS["stages"] and registry.BUILTINS["generators"]
    for kind, entries in registry.BUILTINS.items():
        assert naming_problems(entries) == [], kind
        for key, path, _ in entries:
            target = registry.KINDS[kind].get(key)
            assert f"{target.__module__}:{target.__name__}" == path  # no re-export shims
            assert module_stem(target) == key


def test_the_naming_check_notices_a_mismatched_entry() -> None:
    bad = [("heuristics", "tunesmith.filters.heuristic_filter:HeuristicFilter", ())]
    assert naming_problems(bad) == ["heuristics: module heuristic_filter, class HeuristicFilter"]
    wrong_class = [("sedi", "tunesmith.generate.sedi:SediGenerator", ())]
    assert naming_problems(wrong_class) == ["sedi: module sedi, class SediGenerator"]


def test_stages_declare_per_record() -> None:
    for key in registry.stages:
        cls = registry.stages.get(key)
        assert issubclass(cls, Stage) and isinstance(cls.per_record, bool | property)


def test_generators_take_explicit_keywords() -> None:
    for key in registry.generators:
        cls = registry.generators.get(key)
        kinds = {p.kind for p in inspect.signature(cls).parameters.values()}
        assert kinds == {inspect.Parameter.KEYWORD_ONLY}, f"{key} takes **kwargs"


def test_short_names_resolve_and_unknown_names_suggest() -> None:
    assert registry.stages.get("dedup") is registry.stages.get("novelty_stage")
    assert registry.generators.key("self-instruct") == "self_instruct"
    assert registry.generators.key("difftune") == "diff_tune"
    for short in (
        "heuristics",
        "novelty",
        "dedup",
        "decontam",
        "ppl",
        "ifd",
        "quality",
        "reflect",
        "respond",
        "select",
        "backtranslate",
    ):
        assert short in registry.stages, short
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
