"""The training run folder: the one place a trainer's files are written.

Layout::

    manifest.json      resolved config, versions, status, summary (the shared run manifest)
    train_log.jsonl    one row per optimizer step: step, loss, lr, grad_norm (pre-clip), tokens
    step_rows.jsonl    which record ids made each optimizer step (SeDi's feedback reads these)
    checkpoints/       the trainer's checkpoints; a rerun resumes from the newest complete one
    model/             the tuned model and tokenizer (loads in the ``transformers`` backend)

Resuming follows the same rule as every run folder: only an identical resolved config continues
(:class:`~tunesmith.errors.ConfigError` names the first differing setting otherwise).
"""

from __future__ import annotations

import json
import os
import re
import shutil
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from tunesmith.errors import ConfigError
from tunesmith.io import append_jsonl
from tunesmith.runs import RunDir

TRAIN_LOG = "train_log.jsonl"
STEP_ROWS = "step_rows.jsonl"
CHECKPOINTS = "checkpoints"
MODEL = "model"
#: Written into a checkpoint folder once the trainer has finished saving it (a kill mid-save
#: leaves a folder without it, which resume ignores).
COMPLETE = "tunesmith_complete"


class TrainFolder:
    """Opens (or resumes) a training run folder and writes its logs, side files and model."""

    def __init__(self, run: RunDir) -> None:
        self.run = run
        self.path = run.path

    @classmethod
    def open(
        cls, out: str | os.PathLike[str], *, method: str, config: Mapping[str, Any]
    ) -> TrainFolder:
        """Create ``out`` or resume it; refuses a folder whose resolved config differs."""
        config = json.loads(json.dumps(dict(config), default=str))
        manifest = Path(out) / "manifest.json"
        if manifest.exists():
            try:
                old = json.loads(manifest.read_text(encoding="utf-8")).get("config", {})
            except json.JSONDecodeError:
                old = None  # RunDir.open reports the corrupt manifest
            if old is not None:
                _check_same(old, config, Path(out))
        return cls(RunDir.open(out, method=method, config=config))

    # -- status ---------------------------------------------------------------------------------
    @property
    def is_done(self) -> bool:
        summary = self.run.manifest.get("summary") or {}
        return bool(summary.get("trained")) and (self.model_dir / "config.json").exists()

    def finish(self, status: str = "done", **summary: Any) -> None:
        self.run.finish(status, **summary)

    def log_event(self, **data: Any) -> None:
        self.run.log_event(**data)

    # -- step log -------------------------------------------------------------------------------
    def log_step(self, row: Mapping[str, Any]) -> None:
        append_jsonl(self.path / TRAIN_LOG, [row])

    def log_step_rows(self, step: int, ids: Iterable[str]) -> None:
        append_jsonl(self.path / STEP_ROWS, [{"step": step, "ids": list(ids)}])

    def append(self, name: str, rows: Iterable[Mapping[str, Any]]) -> None:
        """Append rows to a JSONL side file of the run (e.g. ``seed_history.jsonl``)."""
        append_jsonl(self.path / name, rows)

    def read_log(self, name: str = TRAIN_LOG) -> list[dict[str, Any]]:
        p = self.path / name
        if not p.exists():
            return []
        rows = []
        for line in p.read_text(encoding="utf-8").splitlines():
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError:
                continue  # a torn last line from a kill
        return rows

    def truncate_logs(self, step: int) -> None:
        """Drop step rows after ``step``: a resumed trainer redoes those steps and logs them again."""
        for name in (TRAIN_LOG, STEP_ROWS):
            p = self.path / name
            if p.exists():
                keep = [r for r in self.read_log(name) if int(r.get("step", 0)) <= step]
                tmp = p.with_name(p.name + ".tmp")
                tmp.write_text("".join(json.dumps(r) + "\n" for r in keep), encoding="utf-8")
                os.replace(tmp, p)

    def write_artifact(self, name: str, data: Any) -> Path:
        p = self.path / name
        tmp = p.with_name(p.name + ".tmp")
        tmp.write_text(json.dumps(data, indent=2, ensure_ascii=False), encoding="utf-8")
        os.replace(tmp, p)
        return p

    # -- checkpoints and model ----------------------------------------------------------------
    @property
    def checkpoints_dir(self) -> Path:
        return self.path / CHECKPOINTS

    @property
    def model_dir(self) -> Path:
        return self.path / MODEL

    def last_checkpoint(self) -> Path | None:
        """The newest checkpoint folder the trainer finished writing, or None."""
        if not self.checkpoints_dir.exists():
            return None
        done = [
            p
            for p in self.checkpoints_dir.iterdir()
            if re.fullmatch(r"checkpoint-\d+", p.name) and (p / COMPLETE).exists()
        ]
        return max(done, key=lambda p: int(p.name.split("-")[1]), default=None)

    def staging_model_dir(self) -> Path:
        """A fresh temp folder next to ``model/``; :meth:`publish_model` renames it into place."""
        tmp = self.path / f".{MODEL}.tmp"
        if tmp.exists():
            shutil.rmtree(tmp)
        return tmp

    def publish_model(self, staged: Path) -> Path:
        if self.model_dir.exists():
            shutil.rmtree(self.model_dir)
        staged.rename(self.model_dir)
        return self.model_dir


def _check_same(
    old: Mapping[str, Any], new: Mapping[str, Any], out: Path, prefix: str = ""
) -> None:
    """Raise naming the first setting (dotted path) whose value differs."""
    for key in sorted(set(old) | set(new)):
        a, b = old.get(key), new.get(key)
        if isinstance(a, Mapping) and isinstance(b, Mapping):
            _check_same(a, b, out, f"{prefix}{key}.")
        elif a != b:
            raise ConfigError(
                f"{out} holds a run with {prefix}{key}={a!r}, not {b!r}: rerun with the same "
                "settings to resume, or use another --out"
            )
