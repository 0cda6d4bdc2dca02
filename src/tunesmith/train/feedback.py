"""SeDi-Instruct's iterative feedback task generation (Kim, Kim & Lee 2025, Algorithm 1).

Generation and training interleave. The training data is a stream: whenever the trainer needs
more rows, the SeDi generator keeps another chunk of instructions (with responses) from the
*current* seed set; the chunk is split into diverse batches (PCA-quadrant clusters, one
instruction per cluster per batch, batch size = number of clusters, :mod:`.batching`) and fed
to the trainer in that order: no shuffling, no packing, no gradient accumulation.

Every ``every`` (10) optimizer steps, skipping the first ``every``, the step with the highest
pre-clip gradient norm in the last ``every`` steps is chosen; its instructions whose ROUGE-L to
every current seed is below 0.7 become seeds, and as many lowest-scoring seeds (SeedKept /
SeedGen) are evicted (:meth:`Sedi.replace_seeds`). Later chunks sample their in-context
seeds from the updated set. Each replacement is journaled in ``seed_history.jsonl`` (step,
chosen step and its grad norm, added, evicted with scores, and ``chunks_done``).

Resume: the trainer restarts from its newest complete checkpoint and re-reads the stream from
the start; the generation replays from the request cache (no LLM call is paid twice) and the
journaled replacements are re-applied before the same chunk as in the first run, so the stream,
and hence every trained batch, is identical.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Any

from torch.utils.data import IterableDataset
from transformers import TrainerCallback

from tunesmith.filters.rouge import rouge_l_f, rouge_tokenize
from tunesmith.generate.seeds import SeedTask
from tunesmith.records import Record
from tunesmith.train.config import FeedbackConfig
from tunesmith.train.data import Example, encode
from tunesmith.train.folder import STEP_ROWS, TRAIN_LOG, TrainFolder

SEED_HISTORY = "seed_history.jsonl"
__all__ = ["FeedbackCallback", "FeedbackConfig", "FeedbackStream", "SeedFeedback"]


class SeedFeedback:
    """Decides, applies and journals seed replacements (and replays them on resume)."""

    def __init__(
        self, generator: Any, folder: TrainFolder, cfg: FeedbackConfig, rows: dict[str, Record]
    ) -> None:
        self.gen = generator
        self.folder = folder
        self.cfg = cfg
        self.rows = rows  # every kept record by id, filled by the stream
        self.journal = {int(r["step"]): r for r in folder.read_log(SEED_HISTORY)}
        self.applied: set[int] = set()
        self.chunks_done = 0

    def replay_before_chunk(self, chunk: int) -> None:
        """Re-apply journaled replacements that the first run made before generating ``chunk``."""
        for step in sorted(self.journal):
            entry = self.journal[step]
            if step not in self.applied and int(entry["chunks_done"]) <= chunk:
                self._apply(step, _seed_tasks(entry), replay=True)

    def on_step(self, step: int, window: Sequence[tuple[int, float, list[str]]]) -> None:
        """Called after optimizer step ``step`` with the last ``every`` steps' (step, norm, ids)."""
        every = self.cfg.every
        if step % every or step <= every:
            return
        if step in self.journal:  # decided before a kill: re-apply, never re-decide
            if step not in self.applied:
                self._apply(step, _seed_tasks(self.journal[step]), replay=True)
            return
        chosen_step, norm, ids = max(window, key=lambda w: w[1])
        new = self.candidates([self.rows[i] for i in ids if i in self.rows])
        evicted = self._apply(step, new)
        entry = {
            "step": step,
            "chosen_step": chosen_step,
            "grad_norm": norm,
            "batch": ids,
            "added": [s.to_row() for s in new],
            "evicted": evicted,
            "chunks_done": self.chunks_done,
            "round": self.gen.state.rounds,  # generation rounds from here on use the new seeds
            "live_seeds": len(self.gen.table.rows),
        }
        self.journal[step] = entry
        self.folder.append(SEED_HISTORY, [entry])

    def candidates(self, batch: Sequence[Record]) -> list[SeedTask]:
        """The batch's instructions not similar (ROUGE-L >= threshold) to any live seed or to
        each other, as seed tasks."""
        pool = [rouge_tokenize(s.instruction) for s in self.gen.table.live()]
        out: list[SeedTask] = []
        for rec in batch:
            toks = rouge_tokenize(rec.instruction)
            if all(rouge_l_f(p, toks) < self.cfg.rouge_threshold for p in pool):
                out.append(SeedTask(f"fb-{rec.id}", rec.instruction, ((rec.input, rec.output),)))
                pool.append(toks)
        return out

    def _apply(
        self, step: int, new: list[SeedTask], *, replay: bool = False
    ) -> list[dict[str, Any]]:
        """``replace_seeds`` (it logs a ``seed_replacement`` event and saves the seed table).

        A replay re-applies a journaled replacement with the generator's sink detached, so the
        event logged the first time is not logged again.
        """
        table = self.gen.table
        before = {sid: row.to_row() for sid, row in table.rows.items()}
        sink = self.gen._sink
        if replay:
            self.gen._sink = None
        try:
            evicted_ids = self.gen.replace_seeds(new) if new else []
        finally:
            self.gen._sink = sink
        self.applied.add(step)
        return [before[sid] for sid in evicted_ids]


def _seed_tasks(entry: dict[str, Any]) -> list[SeedTask]:
    """The seeds a journal entry added, rebuilt from their rows."""
    return [
        SeedTask(
            id=row["id"],
            instruction=row["instruction"],
            instances=tuple((i["input"], i["output"]) for i in row.get("instances", [])),
            is_classification=bool(row.get("is_classification", False)),
            name=row.get("name", ""),
        )
        for row in entry["added"]
    ]


class FeedbackStream(IterableDataset):  # type: ignore[type-arg]
    """Training examples in diverse-batch order, generated chunk by chunk on demand.

    Args:
        generate_chunk: ``(chunk_index) -> new kept records`` ([] when generation is over).
        encode_row: record -> :class:`Example` (None when the row has nothing to learn).
        batch_order: records -> batches of records (diverse, all of size ``batch_size`` but
            possibly the last).
        feedback: replays journaled replacements before each chunk.
    """

    def __init__(
        self,
        generate_chunk: Callable[[int], list[Record]],
        encode_row: Callable[[Record], Example | None],
        batch_order: Callable[[list[Record]], list[list[Record]]],
        batch_size: int,
        feedback: SeedFeedback,
    ) -> None:
        self.generate_chunk = generate_chunk
        self.encode_row = encode_row
        self.batch_order = batch_order
        self.batch_size = batch_size
        self.feedback = feedback
        self._used = False

    def __iter__(self) -> Iterator[Example]:
        if self._used:  # one pass only: a second epoch would regenerate from scratch
            return
        self._used = True
        pending: list[Record] = []
        chunk = 0
        while True:
            self.feedback.replay_before_chunk(chunk)
            new = self.generate_chunk(chunk)
            chunk += 1
            self.feedback.chunks_done = chunk
            if not new:
                return
            for rec in new:
                self.feedback.rows[rec.id] = rec
            pending += [r for r in new if self.encode_row(r) is not None]
            batches = self.batch_order(pending)
            full = [b for b in batches if len(b) == self.batch_size]
            # a short last batch waits for the next chunk, so every step has batch_size rows
            pending = [r for b in batches if len(b) != self.batch_size for r in b]
            for batch in full:
                for rec in batch:
                    ex = self.encode_row(rec)
                    assert ex is not None
                    yield ex


class FeedbackCallback(TrainerCallback):  # type: ignore[misc]
    """Feeds each logged step's grad norm and rows to :class:`SeedFeedback`."""

    def __init__(self, feedback: SeedFeedback, step_info: Callable[[int], dict[str, Any]]) -> None:
        self.feedback = feedback
        self.step_info = step_info
        self.window: list[tuple[int, float, list[str]]] = []

    def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        """On resume, refill the window with the logged steps up to the checkpoint, so the
        first decision after it sees the same ``every`` steps as an uninterrupted run."""
        folder = self.feedback.folder
        ids = {int(r["step"]): list(r["ids"]) for r in folder.read_log(STEP_ROWS)}
        logged = [
            (int(r["step"]), float(r["grad_norm"]), ids.get(int(r["step"]), []))
            for r in folder.read_log(TRAIN_LOG)
            if r.get("grad_norm") is not None
        ]
        self.window = logged[-self.feedback.cfg.every :]

    def on_log(self, args: Any, state: Any, control: Any, logs: Any = None, **kwargs: Any) -> None:
        if not logs or "grad_norm" not in logs or logs.get("grad_norm") is None:
            return
        step = int(state.global_step)
        rows = list(self.step_info(step).get("rows", []))
        self.window = [*self.window, (step, float(logs["grad_norm"]), rows)][
            -self.feedback.cfg.every :
        ]
        self.feedback.on_step(step, self.window)


def encoder_for(
    tokenizer: Any, template: str, max_length: int
) -> Callable[[Record], Example | None]:
    """A memoised record -> Example function (the stream asks twice per row)."""
    cache: dict[str, Example | None] = {}

    def encode_row(rec: Record) -> Example | None:
        if rec.id not in cache:
            cache[rec.id] = encode(rec, tokenizer, template, max_length)
        return cache[rec.id]

    return encode_row


def diverse_order(
    batch_size: int, seed: int, embedder: Callable[[list[str]], Any] | None
) -> Callable[[list[Record]], list[list[Record]]]:
    """Records -> SeDi's diverse batches (PCA quadrants of the instruction embeddings)."""
    from tunesmith.train.batching import diverse_batches, quadrant_clusters

    def order(records: list[Record]) -> list[list[Record]]:
        if not records:
            return []
        if embedder is None:
            from tunesmith.embeddings import embed

            vectors = embed([r.instruction for r in records])
        else:
            vectors = embedder([r.instruction for r in records])
        clusters = quadrant_clusters(vectors, batch_size, seed=seed)
        return [
            [records[i] for i in b] for b in diverse_batches(clusters.tolist(), batch_size, seed)
        ]

    return order
