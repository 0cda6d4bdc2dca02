"""The training run folder: the one place a trainer's files are written.

Layout::

    manifest.json      resolved config, versions, status, summary (the shared run manifest)
    train_log.jsonl    one row per optimizer step: step, loss, lr, grad_norm (pre-clip), tokens
    step_rows.jsonl    which record ids made each optimizer step (SeDi's feedback reads these)
    checkpoints/       the trainer's checkpoints; a rerun resumes from the newest complete one
    model/             the tuned model and tokenizer (loads in the ``transformers`` backend)

The folder is opened by :class:`~tunesmith.driver.RunDriver`, so resuming follows the same rule
as every run folder: only an identical resolved config and input data continue (a one-line
:class:`~tunesmith.errors.ConfigError` names the first differing setting otherwise).
"""

from __future__ import annotations

import json
import os
import re
import shutil
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from tunesmith.driver import RunDriver
from tunesmith.io import append_jsonl

TRAIN_LOG = "train_log.jsonl"
STEP_ROWS = "step_rows.jsonl"
CHECKPOINTS = "checkpoints"
MODEL = "model"
#: Written into a checkpoint folder once the trainer has finished saving it (a kill mid-save
#: leaves a folder without it, which resume ignores).
COMPLETE = "tunesmith_complete"


class TrainFolder:
    """A training run folder, written through the run driver (manifest, events, side files)."""

    def __init__(self, driver: RunDriver) -> None:
        self.driver = driver
        self.path = driver.path

    @classmethod
    def open(
        cls,
        out: str | os.PathLike[str],
        *,
        method: str,
        config: Mapping[str, Any],
        inputs: str | None = None,
        force_new: bool = False,
        resumable: Sequence[str] = (),
    ) -> TrainFolder:
        """Create ``out`` or resume it; the driver refuses a folder whose resolved config or
        input fingerprint differs (``force_new`` sets the old run aside instead)."""
        driver = RunDriver.open(
            out, method=method, config=config, inputs=inputs, force_new=force_new,
            resumable=resumable,
        )  # fmt: skip
        return cls(driver)

    # -- status ---------------------------------------------------------------------------------
    @property
    def manifest(self) -> dict[str, Any]:
        return self.driver.manifest

    @property
    def is_done(self) -> bool:
        summary = self.manifest.get("summary") or {}
        return bool(summary.get("trained")) and (self.model_dir / "config.json").exists()

    def finish(self, status: str = "done", **summary: Any) -> None:
        self.driver.finish(status, **summary)

    def log_event(self, **data: Any) -> None:
        self.driver.log_event(**data)

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
        return self.driver.write_artifact(name, data)

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
