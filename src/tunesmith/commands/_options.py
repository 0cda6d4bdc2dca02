"""The option groups commands share, each declared once, and the decorator that adds them.

A command takes a group by naming a parameter of the group's type::

    @app.command("respond")
    @options
    def respond(data: Path = DATA, *, llm: LLMOptions, run: RunOptions, rows: DataOptions): ...

:func:`options` replaces each such parameter by the group's fields as typer options (in their own
help panel) and calls the command with one filled-in instance per group, so every LLM command
has every LLM option, spelled and documented the same way.
"""

from __future__ import annotations

import copy
import dataclasses
import functools
import inspect
import typing
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar, TypeVar

import typer

from tunesmith.errors import BudgetExceeded
from tunesmith.fieldmap import FieldMap
from tunesmith.llm.factory import LLMConfig, config_from_options, parse_backend_options
from tunesmith.records import Record

F = TypeVar("F", bound=Callable[..., Any])

_THREADS_HELP = "CPU threads for local models (default 1; $TUNESMITH_THREADS)."


def _option(default: Any, *names: str, help: str | None = None, **extra: Any) -> Any:
    """A dataclass field whose metadata holds its typer option (``default`` is the field's too).

    The option shows in its group's ``panel`` (set by :func:`options`); a group with no panel
    lists its options in the command's own "Options" panel, in signature order, so a group can
    hold a command's own options and the code that turns them into library parameters.
    """
    option = typer.Option(default, *names, help=help, **extra)
    return dataclasses.field(default=default, metadata={"option": option})


class OptionGroup:
    """Base of the option groups: a dataclass whose fields each carry a typer option."""

    panel: ClassVar[str | None] = None


@dataclasses.dataclass(frozen=True)
class LLMOptions(OptionGroup):
    """The LLM client: backend, model, server, limits, cache, prices and budget."""

    panel: ClassVar[str | None] = "LLM options"
    backend: str = _option(
        "embedded", "--backend", "-b",
        help="embedded (offline SmolLM2), openai (any OpenAI-compatible URL), transformers, fake.",
    )  # fmt: skip
    model: str | None = _option(
        None, "--model", "-m", help="Model name (backend default if omitted)."
    )
    base_url: str | None = _option(
        None, "--base-url",
        help="OpenAI-compatible base URL, e.g. http://127.0.0.1:8000/v1 ($OPENAI_BASE_URL).",
    )  # fmt: skip
    api_key_env: str | None = _option(
        None, "--api-key-env",
        help="Environment variable holding the API key (default OPENAI_API_KEY); never the key.",
    )  # fmt: skip
    concurrency: int | None = _option(
        None, "--concurrency", help="Requests in flight at once (openai backend)."
    )
    rpm: float | None = _option(None, "--rpm", help="Requests-per-minute limit (openai backend).")
    tpm: float | None = _option(None, "--tpm", help="Tokens-per-minute limit (openai backend).")
    threads: int | None = _option(None, "--threads", help=_THREADS_HELP)
    backend_option: list[str] | None = _option(
        None, "--backend-option", "-O",
        help="Extra backend option KEY=VALUE (repeatable), e.g. -O n_ctx=4096.",
    )  # fmt: skip
    cache: Path | None = _option(
        None, "--cache", help="Request cache file (default $TUNESMITH_CACHE or ~/.cache/tunesmith)."
    )
    no_cache: bool = _option(False, "--no-cache", help="Do not read or write the request cache.")
    prices: Path | None = _option(
        None, "--prices", help="YAML price table: {model: {input: USD/1M, output: USD/1M}}."
    )
    max_cost: float | None = _option(
        None, "--max-cost", help="Stop cleanly before spending more than this (USD)."
    )
    max_calls: int | None = _option(
        None, "--max-calls", help="Stop cleanly before making more calls than this."
    )

    def config(self) -> LLMConfig:
        """The client config (backend-specific mapping: :func:`llm.factory.config_from_options`)."""
        return config_from_options(
            backend=self.backend, model=self.model, base_url=self.base_url,
            api_key_env=self.api_key_env, threads=self.threads, concurrency=self.concurrency,
            rpm=self.rpm, tpm=self.tpm, backend_options=parse_backend_options(self.backend_option),
            cache_path=self.cache, use_cache=not self.no_cache, prices_path=self.prices,
            max_cost=self.max_cost, max_calls=self.max_calls,
        )  # fmt: skip


@dataclasses.dataclass(frozen=True)
class RunOptions(OptionGroup):
    """How a run folder is resumed or restarted, and whether it gets its report."""

    panel: ClassVar[str | None] = "Run folder options"
    force_new: bool = _option(
        False, "--force-new",
        help="Start the run folder afresh even if it holds a run with other settings.",
    )  # fmt: skip
    retry_failed: bool = _option(
        False, "--retry-failed",
        help="On resume, redo rows that failed (server errors) instead of skipping them.",
    )  # fmt: skip
    report: bool = _option(
        True, "--report/--no-report", help="Write report.html into the run folder."
    )

    def driver_flags(self) -> dict[str, bool]:
        """The resume flags every run entry point (driver) takes."""
        return {"force_new": self.force_new, "retry_failed": self.retry_failed}


@dataclasses.dataclass(frozen=True)
class DataOptions(OptionGroup):
    """How the input dataset is read: a field map for unknown layouts, and a row limit."""

    panel: ClassVar[str | None] = "Data options"
    map: list[str] | None = _option(
        None, "--map", metavar="FIELD=COLUMN",
        help="Read a field from this column (comma-separated or repeated), e.g. instruction=prompt",
    )  # fmt: skip
    allow_empty_instruction: bool = _option(
        False, "--allow-empty-instruction", help="Keep rows whose instruction is empty."
    )
    limit: int | None = _option(None, "--limit", help="Only the first N rows.")

    def field_map(self) -> FieldMap:
        """The parsed ``--map`` values (empty when none was given)."""
        return FieldMap.of(self.map)

    def read(self, path: Path) -> list[Record]:
        """The rows of ``path`` (any supported format) under the field map, up to ``limit``."""
        from tunesmith.io import read_records

        records = read_records(
            path, field_map=self.field_map(), allow_empty_instruction=self.allow_empty_instruction
        )
        return records[: self.limit] if self.limit else records


@dataclasses.dataclass(frozen=True)
class ScorerOptions(OptionGroup):
    """The local causal LM that computes log-prob scores (IFD, perplexity)."""

    panel: ClassVar[str | None] = "Scoring model options"
    model: str | None = _option(
        None, "--model", "-m", help="Causal LM: HF folder/id or .gguf (default: embedded SmolLM2)."
    )
    runtime: str = _option(
        "transformers", "--runtime", help="transformers (batched torch) or llama-cpp (GGUF)."
    )
    lm_batch_size: int = _option(8, "--lm-batch-size", help="Sequences per forward pass.")
    max_length: int = _option(1024, "--max-length", help="Longest prefix+text in tokens.")
    threads: int | None = _option(None, "--threads", help=_THREADS_HELP)


def options(func: F) -> F:
    """Expand the command's :class:`OptionGroup` parameters into typer options (see module doc)."""
    hints = typing.get_type_hints(func)
    groups: dict[str, type[OptionGroup]] = {}
    params: list[inspect.Parameter] = []
    for p in inspect.signature(func).parameters.values():
        kind = hints.get(p.name)
        if isinstance(kind, type) and issubclass(kind, OptionGroup):
            groups[p.name] = kind
            params += _group_params(kind)
        else:
            params.append(p.replace(kind=p.KEYWORD_ONLY, annotation=hints.get(p.name, Any)))
    names = [p.name for p in params]
    if len(names) != len(set(names)):  # a programming error: caught by the CLI tests at import
        raise TypeError(f"{func.__name__}: option names repeat: {sorted(names)}")

    @functools.wraps(func)
    def command(**kwargs: Any) -> Any:
        for name, kind in groups.items():
            fields = dataclasses.fields(kind)  # type: ignore[arg-type]
            kwargs[name] = kind(**{f.name: kwargs.pop(f.name) for f in fields})
        try:
            return func(**kwargs)
        except BudgetExceeded:
            _report_stopped_run(kwargs)
            raise

    del command.__wrapped__  # typer must read the signature below, not the original's
    command.__signature__ = inspect.Signature(params)  # type: ignore[attr-defined]
    command.__annotations__ = {p.name: p.annotation for p in params}
    return command  # type: ignore[return-value]


def _report_stopped_run(kwargs: dict[str, Any]) -> None:
    """A run stopped by its budget still gets its report.html (before the error is printed)."""
    run = next((v for v in kwargs.values() if isinstance(v, RunOptions)), None)
    out = kwargs.get("out")
    if run is None or not run.report or out is None or not (Path(out) / "manifest.json").exists():
        return
    from tunesmith.report import write_run_report

    typer.echo(f"report -> {write_run_report(Path(out))}")


def _group_params(kind: type[OptionGroup]) -> list[inspect.Parameter]:
    """The group's fields as keyword-only typer parameters, each shown in the group's panel."""
    hints = typing.get_type_hints(kind)
    params = []
    for f in dataclasses.fields(kind):  # type: ignore[arg-type]
        option = copy.copy(f.metadata["option"])  # fields a subclass inherits are shared
        option.rich_help_panel = kind.panel
        params.append(
            inspect.Parameter(f.name, inspect.Parameter.KEYWORD_ONLY, default=option,
                              annotation=hints[f.name])
        )  # fmt: skip
    return params
