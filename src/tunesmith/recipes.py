"""Recipes: a YAML file that chains curation stages over one dataset, resumably.

Example (``examples/recipes/alpaca_curate.yaml``)::

    data: ../../src/tunesmith/data/seed_tasks.jsonl   # relative to this file
    limit: 200
    # map: {instruction: prompt, output: response}   # as --map, for columns no reader knows
    llm: {backend: embedded, options: {threads: 1}}
    stages:
      - heuristics: {}
      - dedup: {threshold: 0.7}
      - reflect: {mode: response, max_tokens: 512}
      - ifd: {max_value: 1.0}
      - select: {k: 50, score: ifd}

The file is read with ``yaml.safe_load``; every stage name and parameter is checked before
anything runs, and errors name the file and line. The run folder holds the usual files
(:mod:`tunesmith.runs`) plus ``stages/<i>-<name>/{kept,rejected}.jsonl`` per stage: a finished
stage is never run again, a per-record stage resumes after its last written batch, and LLM
calls in flight when a run was killed replay from the request cache.
"""

from __future__ import annotations

import dataclasses
import difflib
import inspect
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from tunesmith import registry
from tunesmith.driver import RunDriver, fingerprint
from tunesmith.errors import ConfigError
from tunesmith.fieldmap import FieldMap
from tunesmith.jobs import llm_concurrency, stage_prompts
from tunesmith.llm.base import Backend
from tunesmith.llm.client import LLM
from tunesmith.llm.factory import LLMConfig
from tunesmith.records import Record
from tunesmith.runs import RunDir
from tunesmith.stages import Stage, StageResult, run_stage_batches

#: The stage registry (:mod:`tunesmith.registry`); recipes name stages by key or short alias.
STAGES = registry.stages
TOP_KEYS = ("name", "description", "data", "map", "allow_empty_instruction", "limit", "out",
            "batch_size", "llm", "stages", "engine")  # fmt: skip
LLM_KEYS = tuple(f.name for f in dataclasses.fields(LLMConfig))


@dataclasses.dataclass
class StageSpec:
    """One step of a recipe: registry name, parameters, and where it is in the file."""

    name: str
    params: dict[str, Any]
    where: str

    def build(self) -> Stage:
        """Instantiate the stage (ConfigError with the file:line on bad values)."""
        cls = _stage_class(self.name, self.where)
        try:
            return cls(**self.params)
        except ConfigError as exc:
            raise ConfigError(f"{self.where}: {exc}") from None
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"{self.where}: stage '{self.name}': {exc}") from None

    def per_record(self, stage: Stage) -> bool:
        """Whether the stage decides row by row (then it runs in resumable batches)."""
        return bool(stage.per_record)


@dataclasses.dataclass
class Recipe:
    """A parsed, validated recipe."""

    path: Path
    data: Path
    stages: list[StageSpec]
    llm: LLMConfig | None = None
    limit: int | None = None
    out: Path | None = None
    batch_size: int = 16
    raw: dict[str, Any] = dataclasses.field(default_factory=dict)
    #: where per-record stages run: "local" (this process) or "ray" (:mod:`tunesmith.engines`)
    engine: str | None = None
    #: which column feeds which field, as ``--map`` (a mapping or "instruction=prompt,...")
    field_map: FieldMap = dataclasses.field(default_factory=FieldMap)
    allow_empty_instruction: bool = False


def load_recipe(path: str | Path) -> Recipe:
    """Read and validate a recipe file (``yaml.safe_load``; errors name file and line)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
        doc = yaml.safe_load(text)
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read recipe ({exc.strerror})") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f":{mark.line + 1}" if mark else ""
        raise ConfigError(f"{path}{line}: invalid YAML ({getattr(exc, 'problem', exc)})") from None
    if not isinstance(doc, dict):
        raise ConfigError(f"{path}:1: a recipe is a mapping with 'data' and 'stages'")
    lines = _LineMap(path, node)
    _check_keys(doc, TOP_KEYS, "recipe key", lines, ())
    for key in ("data", "stages"):
        if key not in doc:
            raise ConfigError(f"{path}:1: missing required key '{key}'")
    stages = _parse_stages(doc["stages"], lines)
    llm = _parse_llm(doc.get("llm"), lines)
    base = path.parent
    return Recipe(
        path=path,
        data=_resolve(base, doc["data"]),
        stages=stages,
        llm=llm,
        limit=_as_int(doc.get("limit"), lines.where(("limit",)), "limit"),
        out=_resolve(base, doc["out"]) if doc.get("out") else None,
        batch_size=_as_int(doc.get("batch_size", 16), lines.where(("batch_size",)), "batch_size")
        or 16,
        raw=doc,
        engine=str(doc["engine"]) if doc.get("engine") else None,
        field_map=_field_map(doc.get("map"), lines.where(("map",))),
        allow_empty_instruction=bool(doc.get("allow_empty_instruction", False)),
    )


def _field_map(value: Any, where: str) -> FieldMap:
    """The recipe's ``map:`` as a FieldMap; a mistake is an error naming the file and line."""
    try:
        return FieldMap.of(value)
    except ConfigError as exc:
        raise ConfigError(f"{where}: {exc}") from None


class _LineMap:
    """Line numbers of keys and list items in the composed YAML tree."""

    def __init__(self, path: Path, root: yaml.Node | None) -> None:
        self.path = path
        self.root = root

    def where(self, keys: tuple[Any, ...]) -> str:
        node, line = self.root, 1
        for key in keys:
            if isinstance(node, yaml.MappingNode):
                match = [(k, v) for k, v in node.value if k.value == key]
                if not match:
                    break
                line, node = match[0][0].start_mark.line + 1, match[0][1]
            elif isinstance(node, yaml.SequenceNode) and isinstance(key, int):
                node = node.value[key]
                line = node.start_mark.line + 1
        return f"{self.path}:{line}"


def _check_keys(
    doc: Mapping[str, Any], allowed: tuple[str, ...], what: str, lines: _LineMap, at: tuple
) -> None:
    for key in doc:
        if key not in allowed:
            close = difflib.get_close_matches(str(key), allowed, n=1)
            hint = f" (did you mean '{close[0]}'?)" if close else ""
            raise ConfigError(f"{lines.where((*at, key))}: unknown {what} '{key}'{hint}")


def _parse_stages(raw: Any, lines: _LineMap) -> list[StageSpec]:
    if not isinstance(raw, list) or not raw:
        raise ConfigError(f"{lines.where(('stages',))}: 'stages' must be a non-empty list")
    specs = []
    for i, item in enumerate(raw):
        where = lines.where(("stages", i))
        if isinstance(item, str):
            item = {item: {}}
        if not isinstance(item, dict) or len(item) != 1:
            raise ConfigError(f"{where}: each stage is '- name: {{params}}'")
        name, params = next(iter(item.items()))
        params = params or {}
        if not isinstance(params, dict):
            raise ConfigError(f"{where}: parameters of stage '{name}' must be a mapping")
        cls = _stage_class(str(name), where)
        allowed = _init_params(cls)
        if allowed is not None:
            _check_keys(params, allowed, f"parameter of stage '{name}'", lines, ("stages", i, name))
        spec = StageSpec(str(name), dict(params), where)
        spec.build()  # value errors surface now, before any work
        specs.append(spec)
    return specs


def _stage_class(name: str, where: str) -> type[Stage]:
    try:
        return STAGES.get(name)  # type: ignore[no-any-return]
    except ConfigError as exc:
        raise ConfigError(f"{where}: {exc}") from None
    except ImportError as exc:
        raise ConfigError(f"{where}: stage '{name}' is not available ({exc})") from None


def _init_params(cls: type) -> tuple[str, ...] | None:
    """Keyword parameters of ``cls.__init__`` (None if it takes ``**kwargs``)."""
    params = list(inspect.signature(cls).parameters.values())
    if any(p.kind is p.VAR_KEYWORD for p in params):
        return None
    return tuple(p.name for p in params if p.kind is not p.VAR_POSITIONAL)


def _parse_llm(raw: Any, lines: _LineMap) -> LLMConfig | None:
    if raw is None:
        return None
    if not isinstance(raw, dict):
        raise ConfigError(f"{lines.where(('llm',))}: 'llm' must be a mapping")
    _check_keys(raw, LLM_KEYS, "llm key", lines, ("llm",))
    config = LLMConfig(**raw)
    try:
        config.resolved_model()
    except ConfigError as exc:
        raise ConfigError(f"{lines.where(('llm',))}: {exc}") from None
    return config


def _resolve(base: Path, value: Any) -> Path:
    p = Path(str(value)).expanduser()
    return p if p.is_absolute() else base / p


def _as_int(value: Any, where: str, key: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(f"{where}: '{key}' must be an integer, got {value!r}")
    return value


# -- running -----------------------------------------------------------------------------------
def run_recipe(
    recipe: Recipe,
    *,
    out: str | Path | None = None,
    backend: Backend | None = None,
    report: bool = True,
    force_new: bool = False,
    retry_failed: bool = False,
    engine: str | None = None,
    ray_address: str | None = None,
) -> RunDir:
    """Run every stage of ``recipe`` into a run folder (resuming one that is there).

    Args:
        recipe: from :func:`load_recipe`.
        out: the run folder (default: the recipe's ``out``).
        backend: an LLM backend to use instead of the recipe's (tests, the Python API).
        report: write ``report.html`` at the end (when :mod:`tunesmith.report` is installed).
        force_new: set a run already in the folder aside and start over.
        retry_failed: resend rows whose request failed for good in an earlier attempt.
        engine: ``local`` or ``ray`` (default: the recipe's ``engine``, else local); the engine
            never changes the folder's content, so a run may resume on another engine.
        ray_address: the Ray cluster to join (default ``$RAY_ADDRESS``, else a local one).
    """
    from tunesmith.engines import make_runner
    from tunesmith.io import read_records

    target = out or recipe.out
    if target is None:
        raise ConfigError(f"{recipe.path}: no run folder: give --out or 'out:' in the recipe")
    llm_config = recipe.llm or LLMConfig()
    records = read_records(recipe.data, field_map=recipe.field_map,
                           allow_empty_instruction=recipe.allow_empty_instruction)  # fmt: skip
    records = records[: recipe.limit] if recipe.limit else records
    driver = RunDriver.open(target, method="recipe", config=_manifest_config(recipe, llm_config),
                            inputs=fingerprint(records), force_new=force_new,
                            retry_failed=retry_failed)  # fmt: skip
    # the cluster starts only once the data and the folder are known to be good
    runner = make_runner(engine or recipe.engine, address=ray_address, llm_config=llm_config)
    with driver:
        records = _run_stages(driver, recipe, llm_config, records, backend, runner)
        driver.write_kept(records)
        driver.finish("done", **driver.counts(), usage=driver.ledger.to_dict()["total"])
    if report:
        write_report(driver.run)
    return driver.run


def _run_stages(
    driver: RunDriver,
    recipe: Recipe,
    llm_config: LLMConfig,
    records: list[Record],
    backend: Backend | None,
    runner: Any = None,
) -> list[Record]:
    """Each stage in turn (a finished one is reloaded, not rerun); returns the last kept rows."""
    state = driver.run.load_state()
    completed: list[int] = list(state.get("completed", []))
    llm: LLM | None = None
    try:
        for i, spec in enumerate(recipe.stages):
            stage = spec.build()
            for key, sha in stage_prompts(stage).items():
                driver.note_prompt(key, sha)
            if stage.uses_llm and llm is None:
                llm = driver.make_llm(llm_config, backend)
            # an LLM stage keeps ``concurrency`` requests in flight; batch_size sets checkpoints
            batch_size = recipe.batch_size
            if stage.uses_llm:
                batch_size = max(batch_size, llm_concurrency(llm_config))
            records = _run_one(driver, i, spec, stage, records, llm, batch_size, completed,
                               runner)  # fmt: skip
            completed = sorted({*completed, i})
            driver.run.save_state({**state, "completed": completed})
    finally:
        if llm is not None:
            llm.close()
    return records


def _run_one(
    driver: RunDriver,
    i: int,
    spec: StageSpec,
    stage: Stage,
    records: list[Record],
    llm: LLM | None,
    batch_size: int,
    completed: list[int],
    runner: Any = None,
) -> list[Record]:
    """Run stage ``i`` (or reload its output when it already finished) and return its kept rows."""
    sub = driver.child(f"stages/{i:02d}-{spec.name}", method=spec.name,
                       config={"params": spec.params})  # fmt: skip
    if i in completed:
        return sub.read_kept()

    def on_batch(result: StageResult) -> None:
        sub.report(result, spec.name, log=False)

    if spec.per_record(stage) and runner is not None:  # on a cluster (tunesmith.engines)
        runner.run_stage((spec.name, spec.params), stage, records, batch_size=batch_size,
                         done_ids=sub.done_ids(), ledger=driver.ledger, on_batch=on_batch,
                         staging=sub.path / "staging")  # fmt: skip
    elif spec.per_record(stage):
        run_stage_batches(stage, records, llm=llm, batch_size=batch_size,
                          done_ids=sub.done_ids(), on_batch=on_batch)  # fmt: skip
    else:
        stage.setup()
        whole = runner.run_whole(stage, records) if runner is not None else None
        on_batch(whole if whole is not None else stage.run(records, llm))
    # Keep the input order for per-record stages (batches are appended in order).
    kept = sub.read_kept()
    counts = sub.counts()
    sub.finish("done", **counts)
    driver.log_event(stage=spec.name, index=i, **counts)
    return kept


def _manifest_config(recipe: Recipe, llm: LLMConfig) -> dict[str, Any]:
    config: dict[str, Any] = {
        "recipe": str(recipe.path),
        "data": str(recipe.data),
        "limit": recipe.limit,
        "stages": [{s.name: s.params} for s in recipe.stages],
        "llm": llm.to_manifest(),
    }
    # only when given, so runs started before recipes had a map still resume
    if recipe.field_map:
        config["map"] = dict(recipe.field_map)
    if recipe.allow_empty_instruction:
        config["allow_empty_instruction"] = True
    return config


def write_report(run: RunDir) -> Path | None:
    """The HTML report hook: calls ``tunesmith.report.write_run_report`` when it exists."""
    try:
        from tunesmith.report import write_run_report  # type: ignore[attr-defined]
    except ImportError:
        return None
    return write_run_report(run.path)  # type: ignore[no-any-return]
