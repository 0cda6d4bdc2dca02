"""Run folders: manifest, kept and rejected rows, the usage ledger, events and resume.

Layout of a run folder::

    manifest.json   resolved config, versions, model, prompt-template hashes, seed, timings, status
    kept.jsonl      kept records (native rows), appended and fsynced as they are decided
    rejected.jsonl  rejected rows with ``rejected_by`` (stage), ``score`` and ``reason``
    failed.jsonl    rows whose request failed for good, with the HTTP ``status`` and ``message``
    ledger.json     calls, cache hits, tokens, latency and cost per stage and in total
    events.jsonl    a time series (generated, kept, calls, cost ...) for curves in the report
    state.json      a method's own checkpoint, if it keeps one
    report.html     written at the end by ``tunesmith report``

Opening an existing folder resumes it: rows already written are not written again (by id), the
ledger continues, and LLM calls replay from the request cache instead of being paid again.
Only a torn *last* line of a JSONL file (a kill mid-write) is dropped on resume, and its row is
redone; an undecodable line anywhere else is a :class:`~tunesmith.errors.DataError` with
``file:line``, so rows never vanish without notice. Which folders may be resumed at all is decided
by :class:`tunesmith.driver.RunDriver`.
"""

from __future__ import annotations

import json
import os
import platform
import sys
import time
from collections.abc import Iterable, Mapping
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

from tunesmith.errors import DataError
from tunesmith.io import append_jsonl
from tunesmith.llm.usage import Ledger
from tunesmith.records import Record

KEY_PACKAGES = (
    "tunesmith",
    "llama-cpp-python",
    "transformers",
    "torch",
    "httpx",
    "sentence-transformers",
    "rapidfuzz",
    "nltk",
)


def package_versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for name in KEY_PACKAGES:
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            continue
    return out


class RunDir:
    """One run's folder. Use :meth:`open`; it creates the folder or resumes the one there."""

    def __init__(self, path: Path, manifest: dict[str, Any]) -> None:
        self.path = path
        self.manifest = manifest
        self._kept_ids: set[str] | None = None
        self._rejected_ids: set[str] | None = None
        self._failed_ids: set[str] | None = None

    @classmethod
    def open(
        cls, path: str | os.PathLike[str], *, method: str, config: Mapping[str, Any] | None = None
    ) -> RunDir:
        """Create ``path`` as a new run, or resume it if it already holds a run's manifest."""
        p = Path(path)
        manifest_path = p / "manifest.json"
        if manifest_path.exists():
            try:
                manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
            except json.JSONDecodeError as exc:
                raise DataError(
                    manifest_path, exc.lineno, f"corrupt manifest ({exc.msg})"
                ) from None
            manifest["resumed"] = int(manifest.get("resumed", 0)) + 1
            manifest["status"] = "running"
        else:
            p.mkdir(parents=True, exist_ok=True)
            manifest = {
                "method": method,
                "config": dict(config or {}),
                "versions": package_versions(),
                "argv": [a for a in sys.argv if "key" not in a.lower()],
                "prompts": {},
                "started": time.time(),
                "resumed": 0,
                "status": "running",
            }
        run = cls(p, manifest)
        for name in ROW_FILES:
            drop_torn_tail(p / name)
        run.save_manifest()
        return run

    @property
    def is_resumed(self) -> bool:
        return int(self.manifest.get("resumed", 0)) > 0

    # -- manifest ---------------------------------------------------------------------------
    def save_manifest(self) -> None:
        _atomic_write_json(self.path / "manifest.json", self.manifest)

    def note_prompt(self, name: str, sha256: str) -> None:
        """Record the hash of a prompt template the run used."""
        if self.manifest["prompts"].get(name) != sha256:
            self.manifest["prompts"][name] = sha256
            self.save_manifest()

    def finish(self, status: str = "done", **summary: Any) -> None:
        self.manifest["status"] = status
        self.manifest["finished"] = time.time()
        self.manifest["elapsed_s"] = self.manifest["finished"] - self.manifest["started"]
        self.manifest.setdefault("summary", {}).update(summary)
        self.save_manifest()

    # -- rows -------------------------------------------------------------------------------
    @property
    def kept_path(self) -> Path:
        return self.path / "kept.jsonl"

    @property
    def rejected_path(self) -> Path:
        return self.path / "rejected.jsonl"

    def kept_ids(self) -> set[str]:
        if self._kept_ids is None:
            self._kept_ids = _ids_in(self.kept_path)
        return self._kept_ids

    def rejected_ids(self) -> set[str]:
        if self._rejected_ids is None:
            self._rejected_ids = _ids_in(self.rejected_path)
        return self._rejected_ids

    def write_kept(self, records: Iterable[Record]) -> int:
        """Append records not written before (by id); returns how many were new."""
        seen = self.kept_ids()
        new = [r for r in records if r.id not in seen]
        if new:
            append_jsonl(self.kept_path, (r.to_dict() for r in new))
            seen.update(r.id for r in new)
        return len(new)

    def write_rejected(
        self,
        records: Iterable[Record],
        *,
        stage: str,
        scores: Iterable[Any] | None = None,
        reasons: Iterable[str] | None = None,
    ) -> int:
        """Append rejected records with the stage that removed them and its score/reason."""
        seen = self.rejected_ids()
        recs = list(records)
        score_list = list(scores) if scores is not None else [None] * len(recs)
        reason_list = list(reasons) if reasons is not None else [""] * len(recs)
        rows = []
        for rec, score, reason in zip(recs, score_list, reason_list, strict=True):
            if rec.id in seen:
                continue
            seen.add(rec.id)
            rows.append({**rec.to_dict(), "rejected_by": stage, "score": score, "reason": reason})
        if rows:
            append_jsonl(self.rejected_path, rows)
        return len(rows)

    @property
    def failed_path(self) -> Path:
        return self.path / "failed.jsonl"

    def failed_ids(self) -> set[str]:
        if self._failed_ids is None:
            self._failed_ids = _ids_in(self.failed_path)
        return self._failed_ids

    def write_failed(self, records: Iterable[Record], *, stage: str,
                     statuses: Iterable[int | None], messages: Iterable[str]) -> int:  # fmt: skip
        """Append rows whose request failed for good (not written again while they stay failed)."""
        seen = self.failed_ids()
        rows = []
        for rec, status, message in zip(records, statuses, messages, strict=True):
            if rec.id in seen:
                continue
            seen.add(rec.id)
            rows.append({**rec.to_dict(), "failed_in": stage, "status": status, "message": message})
        if rows:
            append_jsonl(self.failed_path, rows)
        return len(rows)

    def read_failed(self) -> list[dict[str, Any]]:
        return list(_rows_in(self.failed_path))

    def read_kept(self) -> list[Record]:
        return [_record_from_row(r) for r in _rows_in(self.kept_path)]

    def read_rejected(self) -> list[dict[str, Any]]:
        return list(_rows_in(self.rejected_path))

    # -- ledger, events, state ----------------------------------------------------------------
    def load_ledger(self) -> Ledger:
        # Ledger.load gives a new folder a run id derived from its path, so calls paid before
        # the first save still count for this run after a kill (see tunesmith.llm.usage).
        return Ledger.load(self.path / "ledger.json")

    def save_ledger(self, ledger: Ledger) -> None:
        ledger.save(self.path / "ledger.json")

    def log_event(self, **data: Any) -> None:
        append_jsonl(self.path / "events.jsonl", [{"t": time.time(), **data}])

    def read_events(self) -> list[dict[str, Any]]:
        return list(_rows_in(self.path / "events.jsonl"))

    def load_state(self) -> dict[str, Any]:
        p = self.path / "state.json"
        return json.loads(p.read_text(encoding="utf-8")) if p.exists() else {}

    def save_state(self, state: Mapping[str, Any]) -> None:
        _atomic_write_json(self.path / "state.json", state)


def failed_step(meta: Mapping[str, Any]) -> str | None:
    """The stage whose LLM step failed on a kept row, or None.

    A stage that cannot improve a row (a reflection the model did not follow) keeps it unchanged
    and marks ``meta[<stage>]["status"] == "failed"`` with the ``failure``: such a row is kept,
    but not improved, and the console and the report count it as such.
    """
    return next(
        (k for k, v in meta.items() if isinstance(v, Mapping) and v.get("status") == "failed"),
        None,
    )


def _atomic_write_json(path: Path, data: Any) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=2, ensure_ascii=False, default=str), encoding="utf-8")
    os.replace(tmp, path)


#: The row files of a run folder whose torn tail is dropped when the folder is opened.
ROW_FILES = ("kept.jsonl", "rejected.jsonl", "failed.jsonl", "events.jsonl")


def drop_torn_tail(path: Path) -> bool:
    """Cut a torn last line (no final newline, not valid JSON) off ``path``; True if one was cut.

    A kill mid-append leaves at most the last line incomplete; cutting it before the next append
    keeps it from becoming an undecodable line in the middle of the file.
    """
    if not path.exists() or path.stat().st_size == 0:
        return False
    data = path.read_bytes()
    if data.endswith(b"\n"):
        return False
    start = data.rfind(b"\n") + 1
    try:
        json.loads(data[start:].decode("utf-8"))
        return False  # a complete row that only lacks its newline
    except (UnicodeDecodeError, json.JSONDecodeError):
        pass
    with path.open("r+b") as fh:
        fh.truncate(start)
        fh.flush()
        os.fsync(fh.fileno())
    return True


def _rows_in(path: Path) -> Iterable[dict[str, Any]]:
    """Rows of a JSONL file. Only a torn last line (no newline after it) is skipped; any other
    undecodable line raises DataError naming ``file:line``."""
    if not path.exists():
        return
    lines = path.read_bytes().split(b"\n")
    last = len(lines) - 1  # the text after the final newline ("" when the file ends cleanly)
    for i, raw in enumerate(lines):
        if not raw.strip():
            continue
        try:
            yield json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            if i == last:
                return  # torn by a kill mid-write: the row is redone on resume
            raise DataError(path, i + 1, f"undecodable JSON line ({exc})") from None


def _ids_in(path: Path) -> set[str]:
    return {str(r["id"]) for r in _rows_in(path) if "id" in r}


def _record_from_row(row: Mapping[str, Any]) -> Record:
    return Record(
        id=str(row["id"]),
        instruction=row.get("instruction", ""),
        input=row.get("input", ""),
        output=row.get("output", ""),
        meta=row.get("meta") or {},
        scores=row.get("scores") or {},
    )
