"""The registry of stages and generators (later judges and trainers), with "did you mean" errors.

One registry per kind, all here: ``registry.stages``, ``registry.generators``, ``registry.judges``,
``registry.trainers``. One naming rule for every built-in (data-juicer's): **key = module file =
snake_case class**. A stage is named by what it is (``HeuristicFilter`` in
``filters/heuristic_filter.py``, key ``heuristic_filter``); a generator is named by its method,
without a suffix (``SelfInstruct`` in ``generate/self_instruct.py``, key ``self_instruct``;
``DiffTune``, a package, in ``generate/diff_tune/__init__.py``, key ``diff_tune``); a trainer is
a run function keyed by its module (``train/sft.py`` -> ``sft``). The short names recipes and the
CLI use (``heuristics``, ``dedup``, ``self-instruct``, ``difftune``) are aliases. Adding a stage,
generator or judge is one file plus one line in ``BUILTINS`` below, nothing else.

Built-ins are registered as ``"module:Class"`` strings and imported only when used, so a plain
install never imports torch or llama.cpp just to print ``--help``. Third-party packages add
entries through the entry-point group ``tunesmith.plugins``: an entry point named
``<kind>.<key>`` (``stages.my_filter``) pointing at the class.
"""

from __future__ import annotations

import difflib
import importlib
import re
from collections.abc import Iterator
from importlib.metadata import entry_points
from typing import Any, Generic, TypeVar

from tunesmith.errors import ConfigError

T = TypeVar("T")
PLUGIN_GROUP = "tunesmith.plugins"


def snake_case(name: str) -> str:
    """``HeuristicFilter`` -> ``heuristic_filter``; ``IFDStage`` -> ``ifd_stage``."""
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])", "_", name).lower()


class Registry(Generic[T]):
    """Maps names to objects (or lazy ``module:attr`` import paths) of one kind."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._entries: dict[str, T | str] = {}
        self._aliases: dict[str, str] = {}

    def register(self, name: str, target: T | str, *, aliases: tuple[str, ...] = ()) -> None:
        """Add ``target`` under ``name`` (and short ``aliases`` that resolve to it)."""
        self._entries[name] = target
        for alias in aliases:
            self._aliases[alias] = name

    def key(self, name: str) -> str:
        """The canonical key for a name or alias (ConfigError with a suggestion if unknown)."""
        if name in self._entries:
            return name
        if name in self._aliases:
            return self._aliases[name]
        known = sorted({*self._entries, *self._aliases})
        close = difflib.get_close_matches(name, known, n=1)
        hint = f" (did you mean '{close[0]}'?)" if close else ""
        raise ConfigError(f"unknown {self.kind} '{name}'{hint}; known: {', '.join(known)}")

    def get(self, name: str) -> T:
        key = self.key(name)
        target = self._entries[key]
        if isinstance(target, str):
            module, _, attr = target.partition(":")
            target = getattr(importlib.import_module(module), attr)
            self._entries[key] = target
        return target  # type: ignore[return-value]

    def names(self) -> list[str]:
        return sorted(self._entries)

    def aliases(self) -> dict[str, str]:
        return dict(self._aliases)

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __contains__(self, name: object) -> bool:
        return name in self._entries or name in self._aliases

    def describe(self) -> dict[str, Any]:
        return {
            name: (t if isinstance(t, str) else f"{t.__module__}:{getattr(t, '__name__', t)}")
            for name, t in self._entries.items()
        }


stages: Registry[Any] = Registry("stage")
generators: Registry[Any] = Registry("generation method")
judges: Registry[Any] = Registry("judge")
trainers: Registry[Any] = Registry("trainer")
KINDS: dict[str, Registry[Any]] = {
    "stages": stages,
    "generators": generators,
    "judges": judges,
    "trainers": trainers,
}

#: kind -> [(key, "module:Class", aliases)]; key == module file == the class in snake_case
#: (tests/test_registry.py checks it for every entry).
BUILTINS: dict[str, list[tuple[str, str, tuple[str, ...]]]] = {
    "stages": [
        ("heuristic_filter", "tunesmith.filters.heuristic_filter:HeuristicFilter", ("heuristics",)),
        ("novelty_stage", "tunesmith.filters.novelty_stage:NoveltyStage", ("novelty", "dedup")),
        ("decontaminator", "tunesmith.filters.decontaminator:Decontaminator", ("decontam",)),
        ("perplexity_filter", "tunesmith.filters.perplexity_filter:PerplexityFilter", ("ppl",)),
        ("ifd_stage", "tunesmith.filters.ifd_stage:IFDStage", ("ifd",)),
        ("quality_scorer", "tunesmith.filters.quality_scorer:QualityScorer", ("quality",)),
        ("reflection_stage", "tunesmith.refine.reflection_stage:ReflectionStage", ("reflect",)),
        ("response_generator", "tunesmith.generate.response_generator:ResponseGenerator", ("respond",)),
        ("select_stage", "tunesmith.select.select_stage:SelectStage", ("select",)),
        ("instruction_predictor", "tunesmith.generate.instruction_predictor:InstructionPredictor",
         ("backtranslate",)),
        ("self_curation", "tunesmith.generate.self_curation:SelfCuration", ()),
    ],
    "generators": [
        ("self_instruct", "tunesmith.generate.self_instruct:SelfInstruct",
         ("self-instruct",)),
        ("alpaca", "tunesmith.generate.alpaca:Alpaca", ()),
        ("sedi", "tunesmith.generate.sedi:Sedi", ()),
        ("backtranslation", "tunesmith.generate.backtranslation:Backtranslation",
         ("backtranslate",)),
        ("dynosaur", "tunesmith.generate.dynosaur:Dynosaur", ()),
        ("diff_tune", "tunesmith.generate.diff_tune:DiffTune", ("difftune",)),
    ],
    # trainers: keyed by module file, like generators; the entry is the run function
    "trainers": [
        ("sft", "tunesmith.train.sft:train_sft", ()),
        ("sedi_loop", "tunesmith.train.sedi_loop:run_sedi_feedback", ("sedi-loop",)),
    ],
}  # fmt: skip


def _register_builtins() -> None:
    for kind, entries in BUILTINS.items():
        for key, target, aliases in entries:
            KINDS[kind].register(key, target, aliases=aliases)


def load_plugins() -> list[str]:
    """Register third-party entries from the ``tunesmith.plugins`` entry-point group.

    An entry point is named ``<kind>.<key>`` (``stages.my_filter``) and points at the class.
    Returns the names registered; a malformed name is a ConfigError naming it.
    """
    added = []
    for ep in entry_points(group=PLUGIN_GROUP):
        kind, _, key = ep.name.partition(".")
        if kind not in KINDS or not key:
            raise ConfigError(
                f"plugin entry point '{ep.name}' must be named <kind>.<key> with kind one of "
                f"{', '.join(KINDS)}"
            )
        KINDS[kind].register(key, ep.value)
        added.append(ep.name)
    return added


_register_builtins()
load_plugins()
