"""On-disk request cache and record of paid calls (one SQLite file in WAL mode).

Every completion is stored the moment it arrives, keyed by a hash of backend, endpoint, model,
prompt or messages, sampling params and the sample index. Rerunning a job therefore makes zero
new calls, and a job killed with SIGKILL pays again only for the requests that were in flight.

Paid calls are recorded where the money is known to be spent, in the same file:

- ``completions(key, value, created)``: answers, shared by every run that uses the cache.
- ``usage(seq, run, tag, key, prompt_tokens, completion_tokens, cost_usd, latency_s, failed,
  created)``: one row per call a server answered, written **in the same transaction** as the
  answer it paid for (a refused request has a usage row and no answer). ``run`` is the
  :class:`~tunesmith.llm.usage.Ledger`'s run id, so the run that paid is the run that counts
  the call; another run reading the same answer later gets it as a free cache hit.
- ``meta(name, value)``: ``cache_id``, a random id that tells one cache file from another.

The ledger file of a run (``ledger.json``) is written later (after a batch) and can lag behind a
kill or an abort. It stores, per cache file, the last ``seq`` it has counted; a resumed run adds
the usage rows of its own run id above that number before it sends anything
(:meth:`RequestCache.paid_since`), so every paid call is counted exactly once however often the
run was killed. See :mod:`tunesmith.llm.usage` for the ledger side.

Answers cached before the endpoint was part of the key (OpenAI-compatible servers only; the
in-process backends' keys did not change) are not reused: a key without the endpoint cannot
tell which server gave the answer.
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import threading
import time
import uuid
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from tunesmith.llm.base import Completion, Request

_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS completions ("
    "key TEXT PRIMARY KEY, value TEXT NOT NULL, created REAL NOT NULL)",
    "CREATE TABLE IF NOT EXISTS usage ("
    "seq INTEGER PRIMARY KEY AUTOINCREMENT, run TEXT NOT NULL, tag TEXT NOT NULL, key TEXT,"
    " prompt_tokens INTEGER NOT NULL, completion_tokens INTEGER NOT NULL,"
    " cost_usd REAL NOT NULL, latency_s REAL NOT NULL, failed INTEGER NOT NULL,"
    " created REAL NOT NULL)",
    "CREATE INDEX IF NOT EXISTS usage_run ON usage (run, seq)",
    "CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value TEXT NOT NULL)",
)


def default_cache_path() -> Path:
    """``$TUNESMITH_CACHE`` or ``~/.cache/tunesmith/requests.sqlite``."""
    env = os.environ.get("TUNESMITH_CACHE")
    if env:
        return Path(env)
    return Path.home() / ".cache" / "tunesmith" / "requests.sqlite"


def request_key(
    backend: str, model: str, request: Request, sample_index: int, endpoint: str = ""
) -> str:
    """The cache key of one sample of one request.

    ``endpoint`` (a server's base URL) is only added when set, so in-process backends keep the
    keys they always had.
    """
    payload: dict[str, Any] = {
        "backend": backend,
        "model": model,
        "sample": sample_index,
        **request.payload(),
    }
    if endpoint:
        payload["endpoint"] = endpoint
    blob = json.dumps(payload, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()


class RequestCache:
    """A thread-safe key -> Completion store plus the usage rows of paid calls. One connection
    per thread; WAL lets readers and a writer work at once and keeps every committed row across
    a kill."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._local = threading.local()
        with self._conn() as conn:
            for statement in _SCHEMA:
                conn.execute(statement)
            conn.execute(
                "INSERT OR IGNORE INTO meta (name, value) VALUES ('cache_id', ?)",
                (uuid.uuid4().hex,),
            )
            row = conn.execute("SELECT value FROM meta WHERE name = 'cache_id'").fetchone()
        #: tells this cache file from another in a ledger's ``synced`` map
        self.cache_id = str(row[0])

    def _conn(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(self.path, timeout=60)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            self._local.conn = conn
        return conn

    def get_many(self, keys: Iterable[str]) -> dict[str, Completion]:
        keys = list(keys)
        found: dict[str, Completion] = {}
        conn = self._conn()
        for start in range(0, len(keys), 500):  # stay under SQLite's variable limit
            chunk = keys[start : start + 500]
            marks = ",".join("?" * len(chunk))
            for key, value in conn.execute(
                f"SELECT key, value FROM completions WHERE key IN ({marks})", chunk
            ):
                found[key] = Completion.from_dict(json.loads(value))
        return found

    def put(
        self, key: str, completion: Completion, *, run: str | None = None, tag: str = ""
    ) -> int:
        """Store an answer and, when ``run`` is given, the usage row of the call that paid for
        it, in one transaction; returns the usage row's ``seq`` (0 without one).

        A refused request (``completion.error`` set) gets its usage row and no answer: it is
        never served from the cache.
        """
        with self._conn() as conn:  # commits on exit: both rows survive a kill from here on
            if completion.error is None:
                value = json.dumps(completion.to_dict(), ensure_ascii=False)
                conn.execute(
                    "INSERT OR REPLACE INTO completions (key, value, created) VALUES (?, ?, ?)",
                    (key, value, time.time()),
                )
            if run is None:
                return 0
            cursor = conn.execute(
                "INSERT INTO usage (run, tag, key, prompt_tokens, completion_tokens, cost_usd,"
                " latency_s, failed, created) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    run,
                    tag,
                    key,
                    completion.prompt_tokens,
                    completion.completion_tokens,
                    completion.cost_usd,
                    completion.latency_s,
                    int(completion.error is not None),
                    time.time(),
                ),
            )
            return int(cursor.lastrowid or 0)

    def paid_since(self, run: str, seq: int) -> list[tuple[int, str, Completion]]:
        """``(seq, tag, usage)`` of every call ``run`` paid for after ``seq``, oldest first."""
        rows = self._conn().execute(
            "SELECT seq, tag, prompt_tokens, completion_tokens, cost_usd, latency_s, failed"
            " FROM usage WHERE run = ? AND seq > ? ORDER BY seq",
            (run, seq),
        )
        out = []
        for row_seq, tag, pt, ct, cost, latency, failed in rows:
            usage = Completion(
                text="",
                prompt_tokens=int(pt),
                completion_tokens=int(ct),
                cost_usd=float(cost),
                latency_s=float(latency),
                error="failed" if failed else None,
            )
            out.append((int(row_seq), str(tag), usage))
        return out

    def __len__(self) -> int:
        return int(self._conn().execute("SELECT COUNT(*) FROM completions").fetchone()[0])

    def close(self) -> None:
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None
