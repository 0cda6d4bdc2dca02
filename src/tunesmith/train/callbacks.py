"""Trainer callbacks: the per-step log, checkpoint completion markers, and live progress.

They hook into ``transformers.Trainer`` (its callback events) and write through
:class:`~tunesmith.train.folder.TrainFolder`, never to files of their own.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from transformers import TrainerCallback

from tunesmith.train.folder import COMPLETE, TrainFolder


class StepLog(TrainerCallback):  # type: ignore[misc]
    """Writes one ``train_log.jsonl`` row per optimizer step.

    ``logging_steps=1`` makes the Trainer log every step; its ``grad_norm`` is the value
    ``clip_grad_norm_`` returned, i.e. the norm *before* clipping, and ``learning_rate`` the rate
    the step used. ``tokens`` (non-pad tokens) and ``rows`` come from the trainer's step record.
    """

    def __init__(self, folder: TrainFolder, step_info: Callable[[int], dict[str, Any]]) -> None:
        self.folder = folder
        self.step_info = step_info
        self._t0 = time.monotonic()

    def on_log(self, args: Any, state: Any, control: Any, logs: Any = None, **kwargs: Any) -> None:
        if not logs or "loss" not in logs or "train_runtime" in logs:
            return
        step = int(state.global_step)
        info = self.step_info(step)
        self.folder.log_step(
            {
                "step": step,
                "epoch": round(float(state.epoch or 0.0), 6),
                "loss": float(logs["loss"]),
                "lr": float(logs.get("learning_rate", 0.0)),
                "grad_norm": None if logs.get("grad_norm") is None else float(logs["grad_norm"]),
                "tokens": int(info.get("tokens", 0)),
                "t": round(time.monotonic() - self._t0, 3),
            }
        )
        if "rows" in info:
            self.folder.log_step_rows(step, info["rows"])


class CheckpointMarker(TrainerCallback):  # type: ignore[misc]
    """Marks a checkpoint folder complete once the Trainer has written all of it.

    ``Trainer._save_checkpoint`` writes model, optimizer, RNG and state files into the folder one
    after the other; a kill in between leaves a folder that must not be resumed from.
    """

    def __init__(self, folder: TrainFolder) -> None:
        self.folder = folder

    def on_save(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        ckpt = self.folder.checkpoints_dir / f"checkpoint-{state.global_step}"
        if ckpt.exists():
            (ckpt / COMPLETE).write_text(str(state.global_step), encoding="utf-8")


class RichProgress(TrainerCallback):  # type: ignore[misc]
    """A live bar on stderr: step M/N, loss, tokens/s and ETA (replaces the Trainer's tqdm bar)."""

    def __init__(
        self, step_info: Callable[[int], dict[str, Any]], description: str = "sft"
    ) -> None:
        self.step_info = step_info
        self.description = description
        self._progress: Any = None
        self._task: Any = None
        self._tokens = 0
        self._t0 = 0.0

    def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeRemainingColumn,
        )

        from tunesmith.progress import STDERR

        self._progress = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[stats]}"),
            TimeRemainingColumn(),
            console=STDERR,
            disable=not STDERR.is_terminal,
        )
        self._progress.start()
        self._task = self._progress.add_task(
            self.description, total=state.max_steps, completed=state.global_step, stats=""
        )
        self._t0 = time.monotonic()

    def on_log(self, args: Any, state: Any, control: Any, logs: Any = None, **kwargs: Any) -> None:
        if self._progress is None or not logs or "loss" not in logs:
            return
        self._tokens += int(self.step_info(int(state.global_step)).get("tokens", 0))
        tok_s = self._tokens / max(1e-6, time.monotonic() - self._t0)
        self._progress.update(
            self._task,
            completed=state.global_step,
            stats=f"loss {logs['loss']:.4f} · {tok_s:,.0f} tok/s",
        )

    def on_train_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if self._progress is not None:
            self._progress.stop()
            self._progress = None
