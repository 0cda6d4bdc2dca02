"""The run driver: the one place that opens, resumes, writes and closes a run folder.

Every run goes through :class:`RunDriver`: generation, per-record jobs, recipes, dedup and
scoring. Generators, stages, trainers and judges report what they made (kept, rejected and
failed rows, events, side files) to it and never touch files themselves.

Resume is guarded: reopening a folder continues it only when the resolved config (method,
parameters, model, prompt hashes, input data fingerprint) is the same; otherwise a one-line
:class:`~tunesmith.errors.ConfigError` names the setting that differs. Budgets, caches, rate
limits and concurrency may change between a run and its resume; they never change an answer.

Used as a context manager, the driver records how a run ended: ``stopped (budget)`` on
BudgetExceeded (resumable with a larger budget), ``failed`` with the error on any other error.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import time
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any, Protocol

from tunesmith.errors import BudgetExceeded, ConfigError
from tunesmith.llm.client import LLM
from tunesmith.llm.factory import LLMConfig, make_llm
from tunesmith.llm.usage import Ledger
from tunesmith.records import Record
from tunesmith.runs import RunDir, _atomic_write_json
from tunesmith.stages import StageResult

#: LLM settings that never change an answer: a resume may change them freely.
LLM_COMPARED = ("backend", "model")
#: Config keys that name where the inputs live; the input fingerprint stands for their content.
INPUT_PATHS = ("data", "seeds", "recipe", "scored_run")


class RunSink(Protocol):
    """What a generator or stage may report to (the driver; a list collector in tests)."""

    def report(
        self,
        result: StageResult,
        stage: str,
        *,
        event: Mapping[str, Any] | None = None,
        log: bool = True,
        keep: bool = True,
    ) -> None: ...

    def log_event(self, **data: Any) -> None: ...

    def write_artifact(self, name: str, data: Any) -> Path: ...

    def note_prompt(self, name: str, sha256: str) -> None: ...

    def read_kept(self) -> list[Record]: ...

    def skip_ids(self) -> set[str]: ...


def fingerprint(items: Iterable[Any]) -> str:
    """A short content hash of the input rows (records, seed tasks, texts) for the resume guard."""
    h = hashlib.sha256()
    for item in items:
        if isinstance(item, Record):
            row: Any = item.to_dict()
        elif dataclasses.is_dataclass(item) and not isinstance(item, type):
            row = dataclasses.asdict(item)
        else:
            row = item
        h.update(json.dumps(row, sort_keys=True, default=str).encode("utf-8"))
        h.update(b"\n")
    return h.hexdigest()[:16]


class RunDriver:
    """One run folder, opened for writing. Use :meth:`open`."""

    def __init__(
        self,
        run: RunDir,
        *,
        retry_failed: bool = False,
        keeps_ledger: bool = True,
        parent: RunDriver | None = None,
    ) -> None:
        self.run = run
        self.retry_failed = retry_failed
        self.keeps_ledger = keeps_ledger
        self.parent = parent
        self.ledger: Ledger = parent.ledger if parent is not None else run.load_ledger()
        self._logged: set[tuple[Any, Any]] | None = None

    @classmethod
    def open(
        cls,
        out: str | os.PathLike[str],
        *,
        method: str,
        config: Mapping[str, Any],
        inputs: str | None = None,
        prompts: Mapping[str, str] | None = None,
        force_new: bool = False,
        retry_failed: bool = False,
        resumable: Sequence[str] = (),
        keeps_ledger: bool = True,
    ) -> RunDriver:
        """Create ``out`` as a new run, or resume it when its resolved config is the same.

        Args:
            out: the run folder.
            method: what runs (``respond``, ``sedi``, ``recipe`` ...).
            config: the resolved config written to the manifest and compared on resume.
            inputs: a fingerprint of the input data (:func:`fingerprint`).
            prompts: prompt template hashes (key -> sha256).
            force_new: set an existing run in ``out`` aside (renamed) and start a new one.
            retry_failed: resend rows that failed for good in an earlier attempt.
            resumable: config keys (last dotted component) that may change on resume.
            keeps_ledger: write ``ledger.json`` (runs without LLM calls may skip it).
        """
        path = Path(out)
        config = json.loads(json.dumps(dict(config), default=str))
        if force_new:
            set_aside(path)
        else:
            check_resume(path, method, config, inputs, prompts or {}, resumable)
        run = RunDir.open(path, method=method, config=config)
        if inputs is not None and run.manifest.get("inputs") != inputs:
            run.manifest["inputs"] = inputs
            run.save_manifest()
        for key, sha in (prompts or {}).items():
            run.note_prompt(key, sha)
        return cls(run, retry_failed=retry_failed, keeps_ledger=keeps_ledger)

    def child(self, subpath: str, *, method: str, config: Mapping[str, Any]) -> RunDriver:
        """A sub-folder (a recipe stage) sharing this run's ledger; its rejected and failed rows
        are written to both folders, its ledger to this run's."""
        sub = RunDir.open(self.path / subpath, method=method, config=dict(config))
        return RunDriver(sub, retry_failed=self.retry_failed, keeps_ledger=False, parent=self)

    # -- what the folder holds ------------------------------------------------------------
    @property
    def path(self) -> Path:
        return self.run.path

    @property
    def manifest(self) -> dict[str, Any]:
        return self.run.manifest

    def done_ids(self) -> set[str]:
        """Ids not to run again: kept, rejected, and failed ones unless ``retry_failed``."""
        return self.run.kept_ids() | self.run.rejected_ids() | self.skip_ids()

    def skip_ids(self) -> set[str]:
        """Ids of rows that failed for good before (empty when ``retry_failed``)."""
        return set() if self.retry_failed else set(self.run.failed_ids())

    def read_kept(self) -> list[Record]:
        return self.run.read_kept()

    def read_events(self) -> list[dict[str, Any]]:
        return self.run.read_events()

    def counts(self) -> dict[str, int]:
        """Kept and rejected rows in the folder, and failed ones when there are any."""
        out = {"kept": len(self.run.kept_ids()), "rejected": len(self.run.rejected_ids())}
        failed = self.run.failed_ids() - self.run.kept_ids() - self.run.rejected_ids()
        if failed:
            out["failed"] = len(failed)
        return out

    # -- writing ----------------------------------------------------------------------------
    def make_llm(self, config: LLMConfig, backend: Any = None) -> LLM:
        """The cached, budgeted client for ``config``, counting into this run's ledger."""
        return make_llm(config, ledger=self.ledger, backend=backend)

    def save_ledger(self) -> None:
        if self.parent is not None:
            self.parent.save_ledger()
        elif self.keeps_ledger:
            self.run.save_ledger(self.ledger)

    def write_kept(self, records: Iterable[Record]) -> int:
        return self.run.write_kept(records)

    def report(
        self,
        result: StageResult,
        stage: str,
        *,
        event: Mapping[str, Any] | None = None,
        log: bool = True,
        keep: bool = True,
    ) -> None:
        """Write a batch's rows and one event (ledger first: no visible row without its cost).

        Args:
            result: kept rows (written unless ``keep=False``), rejected rows (``rejected_by``
                is the row's own ``stage`` or ``stage``) and failed rows (``failed.jsonl``).
            stage: the stage that produced them.
            event: the event's fields (default: running kept/rejected counts); usage totals are
                added. An event with a ``batch`` already logged for ``stage`` is not repeated.
            log: write an event at all.
            keep: write the kept rows (False when they feed a later stage of the same run).
        """
        self.save_ledger()
        if keep:
            self.run.write_kept(result.kept)
        self._write_rejected(result, stage)
        if result.failed:
            for folder in self._folders():
                folder.write_failed([f.record for f in result.failed], stage=stage,
                                    statuses=[f.status for f in result.failed],
                                    messages=[f.message for f in result.failed])  # fmt: skip
        if log:
            self._event(stage, dict(event) if event is not None else self.counts())

    def _folders(self) -> list[RunDir]:
        return [self.run] if self.parent is None else [self.run, self.parent.run]

    def _write_rejected(self, result: StageResult, stage: str) -> None:
        by_stage: dict[str, list[Any]] = {}
        for rej in result.rejected:
            by_stage.setdefault(rej.stage or stage, []).append(rej)
        for name, rows in by_stage.items():  # one append (and fsync) per stage
            for folder in self._folders():
                folder.write_rejected([r.record for r in rows], stage=name,
                                      scores=[r.score for r in rows],
                                      reasons=[r.reason for r in rows])  # fmt: skip

    def _event(self, stage: str, data: dict[str, Any]) -> None:
        if self._logged is None:
            self._logged = {(e.get("stage"), e.get("batch")) for e in self.run.read_events()}
        if "batch" in data:
            if (stage, data["batch"]) in self._logged:
                return  # a replayed round or batch (resume)
            self._logged.add((stage, data["batch"]))
        self.log_event(stage=stage, **{**self.ledger.totals(), **data})

    def log_event(self, **data: Any) -> None:
        self.run.log_event(**data)

    def write_artifact(self, name: str, data: Any) -> Path:
        """Write a JSON side file (``seed_scores.json``, ``batches.json`` ...) atomically."""
        path = self.path / name
        _atomic_write_json(path, data)
        return path

    def note_prompt(self, name: str, sha256: str) -> None:
        old = self.run.manifest["prompts"].get(name)
        if old and self.run.is_resumed and not (old.startswith(sha256) or sha256.startswith(old)):
            raise _differs(self.path, f"prompt '{name}'", old[:16], sha256[:16])
        self.run.note_prompt(name, sha256)

    def finish(self, status: str = "done", **summary: Any) -> None:
        self.save_ledger()
        self.run.finish(status, **summary)

    # -- ending -----------------------------------------------------------------------------
    def __enter__(self) -> RunDriver:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc is None:
            return
        if isinstance(exc, BudgetExceeded):
            self.finish("stopped (budget)", **self.counts())
        elif isinstance(exc, Exception):
            self.run.manifest["error"] = f"{type(exc).__name__}: {exc}"
            self.finish("failed", **self.counts())
        else:  # KeyboardInterrupt: rows and ledger are saved; rerun to resume
            self.finish("stopped (interrupted)", **self.counts())


def set_aside(path: Path) -> Path | None:
    """Rename an existing run folder to ``<name>.replaced-<time>`` (``--force-new`` keeps it)."""
    if not (path / "manifest.json").exists():
        return None
    stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime())
    target = path.with_name(f"{path.name}.replaced-{stamp}")
    n = 1
    while target.exists():
        n += 1
        target = path.with_name(f"{path.name}.replaced-{stamp}-{n}")
    path.rename(target)
    return target


def check_resume(
    path: Path,
    method: str,
    config: Mapping[str, Any],
    inputs: str | None,
    prompts: Mapping[str, str],
    resumable: Sequence[str] = (),
) -> None:
    """Raise ConfigError when ``path`` holds a run whose resolved config differs from this one."""
    manifest_path = path / "manifest.json"
    if not manifest_path.exists():
        return
    try:
        old = json.loads(manifest_path.read_text(encoding="utf-8"))
    except json.JSONDecodeError:
        return  # RunDir.open reports the corrupt manifest with its line
    if old.get("method") != method:
        raise _differs(path, "'method'", old.get("method"), method)
    skip = set(resumable) | (set(INPUT_PATHS) if inputs is not None else set())
    for key, a, b in _config_diff(old.get("config") or {}, config, skip):
        raise _differs(path, f"'{key}'", a, b)
    if inputs is not None and old.get("inputs") not in (None, inputs):
        raise _differs(path, "input data", old["inputs"], inputs)
    for name, sha in prompts.items():
        had = (old.get("prompts") or {}).get(name)
        if had and not (had.startswith(sha) or sha.startswith(had)):
            raise _differs(path, f"prompt '{name}'", had[:16], sha[:16])


def _config_diff(
    old: Mapping[str, Any], new: Mapping[str, Any], skip: set[str]
) -> list[tuple[str, Any, Any]]:
    """Settings that differ, as (dotted key, old, new). A key set on one side only counts when
    it is truthy, so an option added later and left at its default is no conflict."""
    a, b = _flatten(old), _flatten(new)
    diffs = []
    for key in sorted(set(a) | set(b)):
        parts = key.split(".")
        if parts[-1] in skip or parts[0] in skip:
            continue
        if parts[0] == "llm" and (len(parts) != 2 or parts[1] not in LLM_COMPARED):
            continue
        if key in a and key in b:
            if a[key] != b[key]:
                diffs.append(_first_diff(key, a[key], b[key]))
        elif a.get(key) or b.get(key):
            diffs.append((key, a.get(key), b.get(key)))
    return diffs


def _first_diff(key: str, a: Any, b: Any) -> tuple[str, Any, Any]:
    """Descend into lists and mappings to the innermost setting that differs."""
    if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            if x != y:
                return _first_diff(f"{key}[{i}]", x, y)
    if isinstance(a, Mapping) and isinstance(b, Mapping):
        for k in sorted(set(a) | set(b)):
            if a.get(k) != b.get(k):
                return _first_diff(f"{key}.{k}", a.get(k), b.get(k))
    return key, a, b


def _flatten(d: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in d.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            out.update(_flatten(value, name + "."))
        else:
            out[name] = value
    return out


def _differs(path: Path, what: str, old: Any, new: Any) -> ConfigError:
    def short(v: Any) -> str:
        text = repr(v)
        return text if len(text) <= 60 else text[:57] + "..."

    return ConfigError(
        f"{path} holds a run with a different {what} ({short(old)} there, {short(new)} now); "
        "rerun with the same settings to resume, add --force-new to start over, "
        "or choose another --out"
    )
