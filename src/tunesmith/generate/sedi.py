"""SeDi-Instruct (Kim, Kim, Lee 2025): Alpaca-style generation with diversity-based filtering.

- The ROUGE-L threshold is relaxed to 0.85 (about 20% of candidates discarded instead of ~50%).
- A seed score table: after each prompt built from seeds a, b, c that generated g instructions
  of which k were kept, each of a, b, c gets SeedGen += g and SeedKept += k;
  score = SeedKept / SeedGen. It is persisted as ``seed_scores.json`` in the run folder.
- :meth:`Sedi.replace_seeds` screens candidate seeds (instructions of high-gradient-norm
  training batches) at ROUGE-L 0.7 against the current seeds, evicts the lowest-scoring seeds and
  adds the accepted ones; it also works before the first round (after ``setup_seeds``).
- Kept instructions get a diverse batch order (:mod:`tunesmith.train.batching`), ``batches.json``.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

from tunesmith.driver import RunSink
from tunesmith.errors import ConfigError
from tunesmith.generate.alpaca import Alpaca
from tunesmith.generate.loop import PromptPlan
from tunesmith.generate.seeds import SeedTask
from tunesmith.llm.client import LLM

SEED_SCORES_FILE = "seed_scores.json"
#: SeDi-Instruct screens candidate seeds at ROUGE-L 0.7 against the current seeds.
SEED_SIMILARITY = 0.7
BATCHES_FILE = "batches.json"


@dataclasses.dataclass
class SeedScore:
    id: str
    instruction: str
    seed_gen: int = 0
    seed_kept: int = 0

    @property
    def score(self) -> float | None:
        """SeedKept / SeedGen, or None before the seed has produced anything."""
        return self.seed_kept / self.seed_gen if self.seed_gen else None

    def to_row(self) -> dict[str, Any]:
        return {**dataclasses.asdict(self), "score": self.score}


class SeedScoreTable:
    """Per-seed generated/kept counts (SeDi-Instruct Sec. 3); the order of seeds is kept."""

    def __init__(self, seeds: Iterable[SeedTask] = ()) -> None:
        self.rows: dict[str, SeedScore] = {}
        self.tasks: dict[str, SeedTask] = {}
        self.add(seeds)

    def add(self, seeds: Iterable[SeedTask]) -> None:
        for s in seeds:
            self.rows.setdefault(s.id, SeedScore(s.id, s.instruction))
            self.tasks[s.id] = s

    def update(self, seed_ids: Sequence[str], generated: int, kept: int) -> None:
        """One prompt built from ``seed_ids`` generated ``generated`` candidates, ``kept`` kept."""
        if kept > generated or kept < 0:
            raise ValueError(f"kept ({kept}) must be between 0 and generated ({generated})")
        for sid in seed_ids:
            row = self.rows[sid]
            row.seed_gen += generated
            row.seed_kept += kept

    def score(self, seed_id: str) -> float | None:
        return self.rows[seed_id].score

    def lowest(self, count: int) -> list[str]:
        """Ids of the ``count`` lowest-scoring seeds (seeds without a score yet are never picked)."""
        scored = [r for r in self.rows.values() if r.score is not None]
        scored.sort(key=lambda r: (r.score, -r.seed_gen))
        return [r.id for r in scored[:count]]

    def evict(self, seed_ids: Iterable[str]) -> None:
        for sid in seed_ids:
            self.rows.pop(sid, None)
            self.tasks.pop(sid, None)

    def live(self) -> list[SeedTask]:
        return [self.tasks[sid] for sid in self.rows]

    def to_rows(self) -> list[dict[str, Any]]:
        return [r.to_row() for r in self.rows.values()]

    def save(self, path: str | Path) -> None:
        p = Path(path)
        tmp = p.with_name(p.name + ".tmp")
        tmp.write_text(json.dumps(self.to_rows(), indent=2, ensure_ascii=False), encoding="utf-8")
        tmp.replace(p)


@dataclasses.dataclass(kw_only=True, eq=False)
class Sedi(Alpaca):
    """SeDi-Instruct generation: Alpaca prompts, ROUGE-L 0.85, seed scores, diverse batches.

    Args:
        threshold: ROUGE-L near-duplicate threshold (0.85).
        train_batch_size: the batch size the diverse batch order is built for (16 in the paper).
        embedder: texts -> vectors for the batch order (default: the packaged MiniLM).
        The others: as for :class:`Alpaca`.
    """

    method = "sedi"

    threshold: float = 0.85
    train_batch_size: int = 16
    embedder: Callable[[list[str]], Any] | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        self.table = SeedScoreTable()
        self._seed_ids: list[str] = []
        self._sink: RunSink | None = None
        self._pending_events: list[dict[str, Any]] = []
        self.last_refused: list[dict[str, Any]] = []

    def setup_seeds(self, seeds: Sequence[SeedTask]) -> None:
        super().setup_seeds(seeds)
        ids = [s.id for s in seeds]
        # A table prepared for these seeds before the first round (replace_seeds) is kept; a
        # generator that already ran starts a new run from a fresh table.
        if ids != self._seed_ids or hasattr(self, "state"):
            self.table = SeedScoreTable(seeds)
            self._seed_ids = ids

    def start(self, pool: Sequence[str]) -> None:
        """The novelty pool also holds seeds added by :meth:`replace_seeds` before this run."""
        known = set(pool)
        super().start(
            [*pool, *(t.instruction for t in self.table.live() if t.instruction not in known)]
        )

    def prompt_pool(self) -> Sequence[SeedTask]:
        return self.table.live()

    def on_prompt_done(self, plan: PromptPlan, generated: int, kept: int) -> None:
        self.table.update(plan.seed_ids, generated, kept)
        if self._sink is not None:
            self._sink.write_artifact(SEED_SCORES_FILE, self.table.to_rows())

    def screen_seeds(
        self, candidates: Sequence[SeedTask], threshold: float = SEED_SIMILARITY
    ) -> tuple[list[SeedTask], list[dict[str, Any]]]:
        """Split candidate seeds into accepted ones and refused ones (SeDi-Instruct Sec. 3).

        A candidate is refused when its ROUGE-L F to a current seed (or to a candidate accepted
        before it) is above ``threshold`` (0.7; exactly 0.7 passes, as in the Self-Instruct
        filter), or when its id is already a seed. Refused rows say why:
        ``{id, instruction, rouge_l, nearest, reason}``.
        """
        from tunesmith.filters.novelty import NoveltyFilter

        novelty = NoveltyFilter(threshold, pool=[t.instruction for t in self.table.live()])
        accepted: list[SeedTask] = []
        refused: list[dict[str, Any]] = []
        for cand in candidates:
            if cand.id in self.table.rows or cand.id in {a.id for a in accepted}:
                refused.append({"id": cand.id, "instruction": cand.instruction, "rouge_l": None,
                                "nearest": None, "reason": "id is already a seed"})  # fmt: skip
                continue
            (dec,) = novelty.check([cand.instruction])  # an accepted one joins the pool
            if dec.kept:
                accepted.append(cand)
                continue
            nearest = novelty.pool_texts[dec.nearest] if dec.nearest is not None else None
            refused.append({"id": cand.id, "instruction": cand.instruction,
                            "rouge_l": round(dec.max_score, 6), "nearest": nearest,
                            "reason": f"ROUGE-L {dec.max_score:.3f} > {threshold} to a seed"})  # fmt: skip
        return accepted, refused

    def replace_seeds(
        self,
        new_seeds: Sequence[SeedTask],
        count: int | None = None,
        *,
        threshold: float = SEED_SIMILARITY,
    ) -> list[str]:
        """Screen ``new_seeds`` against the current seeds, then swap the accepted ones in.

        Candidates more similar than ``threshold`` (ROUGE-L 0.7, the paper's rule) to a current
        seed are refused (see :meth:`screen_seeds`; ``last_refused`` holds them). The ``count``
        (default: the number accepted) lowest-scoring seeds are evicted; seeds without a score
        are never evicted, so before the first round nothing is evicted and the accepted seeds
        join the set. New seeds start at 0/0, join the novelty pool and the prompts drawn after
        this call, also when it is made before :meth:`run` (after :meth:`setup_seeds`). The
        replacement is logged as an event. Returns the evicted ids.
        """
        if not self.table.rows:
            raise ConfigError(
                "replace_seeds needs the current seeds: call setup_seeds(seeds) first"
            )
        accepted, self.last_refused = self.screen_seeds(new_seeds, threshold)
        evicted = self.table.lowest(len(accepted) if count is None else count)
        self.table.evict(evicted)
        self.table.add(accepted)
        if getattr(self, "novelty", None) is not None:
            self.novelty.add_pool([s.instruction for s in accepted])
        started = hasattr(self, "state")
        event = {"stage": "seed_replacement", "evicted": evicted,
                 "added": [s.id for s in accepted], "refused": self.last_refused,
                 "round": self.state.rounds if started else 0}  # fmt: skip
        # Before the first round the event waits for the run; once generation started, a
        # detached sink (a journaled replacement replayed on resume) means: log nothing.
        if self._sink is not None or not started:
            self._pending_events.append(event)
        self._flush_seed_events()
        return evicted

    def _flush_seed_events(self) -> None:
        """Report seed_scores.json and pending replacement events once there is a run."""
        if self._sink is None:
            return
        self._sink.write_artifact(SEED_SCORES_FILE, self.table.to_rows())
        for event in self._pending_events:
            self._sink.log_event(**event)
        self._pending_events = []

    def run(self, seeds: Sequence[SeedTask], llm: LLM, sink: RunSink) -> dict[str, Any]:
        """Generate, reporting to ``sink``: kept rows, seed_scores.json and batches.json."""
        self._sink = sink
        self.setup_seeds(seeds)
        self._flush_seed_events()  # replacements made before the first round
        summary = super().run(seeds, llm, sink)
        sink.write_artifact(SEED_SCORES_FILE, self.table.to_rows())
        summary["batches_file"] = str(self.write_batches(sink))
        return summary

    def extend(self, more: int, llm: LLM, sink: RunSink) -> dict[str, Any]:
        """Keep ``more`` instructions beyond those kept so far, continuing the same generation
        (same RNG, novelty pool and seed table, e.g. after :meth:`replace_seeds`); updates
        kept.jsonl, seed_scores.json and batches.json and returns the new summary."""
        from tunesmith.generate.loop import run_summary

        self._sink = sink
        self.num_instructions = len(self.state.kept) + more
        kept = self.continue_generation(llm, sink)
        sink.write_artifact(SEED_SCORES_FILE, self.table.to_rows())
        summary = run_summary(
            llm, generated=self.state.generated, kept_instructions=len(kept), kept_records=len(kept)
        )
        summary["batches_file"] = str(self.write_batches(sink))
        return summary

    def write_batches(self, sink: RunSink) -> Path:
        """Embed the kept instructions and report their diverse batch order (``batches.json``)."""
        from tunesmith.train.batching import batch_order

        kept = sink.read_kept()
        if not kept:
            return sink.write_artifact(
                BATCHES_FILE, {"batch_size": self.train_batch_size, "batches": []}
            )
        vectors = self.embedder([r.instruction for r in kept]) if self.embedder else None
        order = batch_order(kept, self.train_batch_size, seed=self.seed, vectors=vectors)
        return sink.write_artifact(BATCHES_FILE, order)
