"""Run a generation method into a run folder: the glue behind ``tunesmith generate``.

``run_generation("self-instruct" | "alpaca" | "sedi", seeds=..., out=..., config=...)`` takes the
generator from :data:`tunesmith.registry.generators` (explicit keyword parameters), opens (or
resumes) the run folder through the run driver, builds the cached and budgeted LLM client with
the run's ledger, runs the method, and writes the manifest summary (calls, tokens and cost per
kept instruction).
"""

from __future__ import annotations

import inspect
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from tunesmith import registry
from tunesmith.driver import RunDriver, fingerprint
from tunesmith.errors import ConfigError
from tunesmith.generate.loop import LoopState
from tunesmith.generate.seeds import load_seeds, resolve_seeds_path
from tunesmith.llm.base import Backend
from tunesmith.llm.client import LLM
from tunesmith.llm.factory import LLMConfig
from tunesmith.progress import live_progress
from tunesmith.runs import RunDir

METHODS = ("self-instruct", "alpaca", "sedi")
#: Options that may change between a run and its resume (the replayed rounds stay identical).
RESUMABLE_CHANGES = ("num_instructions", "max_rounds", "patience")


def generator_class(method: str) -> type[Any]:
    """The registered generator for ``method`` (ConfigError with "did you mean" if unknown)."""
    return registry.generators.get(method)  # type: ignore[no-any-return]


def check_params(method: str, params: Mapping[str, Any]) -> None:
    """Reject option names the method does not take (one line, closest name suggested)."""
    cls = generator_class(method)
    allowed = set(inspect.signature(cls).parameters)
    for key in params:
        if key not in allowed:
            raise ConfigError(f"option '{key}' does not apply to {method}")


def run_method(
    method: str,
    seeds_arg: Any,
    llm: LLM,
    sink: Any,
    params: Mapping[str, Any],
    on_round: Any = None,
) -> dict[str, Any]:
    """Build the method's generator from ``params`` and run it, reporting to ``sink``."""
    seeds = seeds_arg if isinstance(seeds_arg, list) else load_seeds(seeds_arg)
    gen = generator_class(method)(**params)
    gen.on_round = on_round
    return gen.run(seeds, llm, sink)  # type: ignore[no-any-return]


def run_generation(
    method: str,
    *,
    seeds: str | os.PathLike[str] | None,
    out: str | Path,
    config: LLMConfig,
    params: Mapping[str, Any] | None = None,
    backend: Backend | None = None,
    force_new: bool = False,
    retry_failed: bool = False,
) -> RunDir:
    """Run ``method`` into run folder ``out`` (resuming it if it exists).

    Args:
        method: ``self-instruct``, ``alpaca`` or ``sedi`` (any registered generator).
        seeds: ``None``/``"default"`` (packaged seed tasks), the Self-Instruct seed file, or any
            dataset tunesmith reads.
        out: the run folder; rerun the same call to resume a killed or budget-stopped run.
        config: the LLM client settings (backend, model, cache, budget ...).
        params: the method's options (see the generator classes), e.g. ``num_instructions``.
        backend: an already-built backend (tests, notebooks); overrides ``config.backend``.
        force_new: set a run already in ``out`` aside and start over.
        retry_failed: resend rows whose request failed for good in an earlier attempt.
    """
    params = dict(params or {})
    check_params(method, params)
    seeds_path = resolve_seeds_path(seeds)
    tasks = load_seeds(seeds_path)  # bad seed files fail before a run folder is created
    gen = generator_class(method)(**params)
    run_config = {
        "method": method,
        "seeds": str(seeds_path),
        "params": {k: _jsonable(v) for k, v in params.items()},
        "llm": config.to_manifest(),
    }
    driver = RunDriver.open(out, method=method, config=run_config, inputs=fingerprint(tasks),
                            prompts=gen.full_prompt_hashes(), force_new=force_new,
                            retry_failed=retry_failed, resumable=RESUMABLE_CHANGES)  # fmt: skip
    with driver:
        summary = _generate(method, gen, tasks, driver, config, backend, params)
        driver.finish("done", **summary)
    return driver.run


def _generate(
    method: str,
    gen: Any,
    tasks: list[Any],
    driver: RunDriver,
    config: LLMConfig,
    backend: Backend | None,
    params: Mapping[str, Any],
) -> dict[str, Any]:
    """Run ``gen`` with live progress; returns its summary."""
    llm = driver.make_llm(config, backend)
    target = int(params.get("num_instructions", 100))
    try:
        with live_progress(f"{method} instructions", target, driver.ledger) as progress:
            llm.on_progress = progress.refresh
            seen = [0]

            def on_round(state: LoopState) -> None:
                progress.advance(max(0, min(target, len(state.kept)) - seen[0]))
                seen[0] = min(target, len(state.kept))

            gen.on_round = on_round
            return gen.run(tasks, llm, driver)  # type: ignore[no-any-return]
    finally:
        llm.close()


def _jsonable(value: Any) -> Any:
    if isinstance(value, str | int | float | bool | type(None)):
        return value
    return getattr(value, "__qualname__", None) or str(value)


#: Settings that let the 135M embedded model finish a demo in a few minutes on one CPU thread
#: (shorter completions than the papers' 1024/3072 tokens; everything else as published).
DEMO_PARAMS: dict[str, dict[str, Any]] = {
    "self-instruct": {
        "prompts_per_batch": 4,
        "max_tokens": 160,
        "instance_max_tokens": 150,
        "max_rounds": 10,
        "patience": 4,
    },
    "sedi": {"prompts_per_batch": 4, "max_tokens": 400, "max_rounds": 10, "patience": 4},
    "alpaca": {"prompts_per_batch": 4, "max_tokens": 400, "max_rounds": 10, "patience": 4},
}
