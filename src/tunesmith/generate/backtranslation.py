"""Instruction backtranslation (Li et al. 2023, "Self-Alignment with Instruction Backtranslation").

Humpback makes instruction data from text that already exists:

1. **Self-augmentation.** A backward model M_yx predicts, for every unlabelled segment y, the
   instruction x it answers. Here M_yx is either any LLM prompted with seed (response ->
   instruction) pairs as earlier chat turns (``backward_mode="few-shot"``), or a model fine-tuned
   on the seed pairs reversed (``"finetuned"``: the segment alone is the user turn, exactly the
   layout :func:`reverse_pairs` produces for ``tunesmith train sft``).
2. **Self-curation.** The forward (seed) model M0 rates every (x, y) on the paper's 5-point rubric
   (:mod:`tunesmith.filters.quality_scorer`, ``humpback``: reasoning first, ``Score: n`` last);
   pairs scoring >= k (5: A_5) are kept (:class:`~tunesmith.generate.self_curation.SelfCuration`).
3. **Iteration.** M1 is trained on seed + A_5 and re-curates the whole candidate pool; and so on.
   Training data tags seed rows and augmented rows with different system prompts
   (``meta["system"]``, ``meta["humpback_tag"]``), as the paper does.

Run folder: ``augment/`` (every segment with its predicted instruction), ``iterations/<i>/``
(A_k of iteration i, scored by M_{i-1}), and at the top ``kept.jsonl`` = seed rows + the last
A_k, ``rejected.jsonl`` = unusable documents, failed predictions and the last curation's
rejections, ``backtranslation.json`` = per-phase rows, calls, tokens and cost (from the ledger's
per-tag usage, exact across resumes).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from tunesmith.errors import ConfigError
from tunesmith.generate.instruction_predictor import InstructionPredictor
from tunesmith.generate.segments import Document, SegmentRules, segment_records
from tunesmith.generate.self_curation import SelfCuration
from tunesmith.llm.client import LLM
from tunesmith.llm.factory import LLMConfig
from tunesmith.prompts import PromptTemplate
from tunesmith.records import Record
from tunesmith.stages import Rejected, StageResult, run_stage_batches

SUMMARY_FILE = "backtranslation.json"
#: M_{i-1} for iteration i >= 2: given the training mix (seed + A_k) and i - 1, returns the
#: client config of the model trained on it (``tunesmith train sft`` once it is available).
Trainer = Callable[[list[Record], int], LLMConfig]


# -- the generator --------------------------------------------------------------------------------
class Backtranslation:
    """Humpback: segment, self-augment, self-curate (iterated); reports to a RunDriver.

    Args:
        min_chars, max_chars, min_line_chars, short_lines, split_long: segmenting
            (:class:`~tunesmith.generate.segments.SegmentRules`).
        num_examples, backward_mode, example_chars, backward_max_tokens, temperature:
            the backward model (:class:`InstructionPredictor`).
        min_score: k; keep pairs M_{i-1} rates >= k (5: the paper's A_5).
        iterations: curation rounds; round i >= 2 curates with M_{i-1} (see ``run``); 0 keeps
            every predicted pair uncurated (self-augmentation only).
        judge_max_tokens: room for the rubric's reasoning before ``Score: n``.
        include_seeds: put the seed rows (tagged ``seed``) into ``kept.jsonl`` with A_k, the
            training mix of the paper.
        batch_size: rows per checkpointed batch.
        seed: RNG seed of the few-shot choice.
        prompts_dir: folder overriding ``backtranslation/*.j2`` and ``judge_score/humpback*.j2``.
    """

    method = "backtranslation"

    def __init__(
        self,
        *,
        min_chars: int = 1000,
        max_chars: int = 2200,
        min_line_chars: int = 5,
        short_lines: str = "reject",
        split_long: bool = False,
        num_examples: int = 3,
        backward_mode: str = "few-shot",
        example_chars: int = 600,
        backward_max_tokens: int = 128,
        temperature: float = 0.0,
        min_score: int = 5,
        iterations: int = 1,
        judge_max_tokens: int = 384,
        include_seeds: bool = False,
        batch_size: int = 16,
        seed: int = 42,
        prompts_dir: str | None = None,
    ) -> None:
        if iterations < 0:
            raise ConfigError("iterations must be >= 0")
        self.rules = SegmentRules(min_chars, max_chars, min_line_chars, short_lines, split_long)
        self.predictor = InstructionPredictor(
            num_examples=num_examples, mode=backward_mode, example_chars=example_chars,
            temperature=temperature, max_tokens=backward_max_tokens, seed=seed,
            prompts_dir=prompts_dir,
        )  # fmt: skip
        self.min_score = min_score
        self.iterations = iterations
        self.judge_max_tokens = judge_max_tokens
        self.include_seeds = include_seeds
        self.batch_size = batch_size
        self.prompts_dir = prompts_dir
        self._concurrency = 1
        self._tags = {t: PromptTemplate("backtranslation", f"system_{t}", prompts_dir)
                      for t in ("seed", "augmented")}  # fmt: skip

    def curator(self, iteration: int) -> SelfCuration:
        return SelfCuration(iteration=iteration, min_score=self.min_score,
                            max_tokens=self.judge_max_tokens, prompts_dir=self.prompts_dir)  # fmt: skip

    def prompt_hashes(self) -> dict[str, str]:
        hashes = {**self.predictor.prompt_hashes, **self.curator(1).prompt_hashes}
        return {**hashes, **{t.key: t.sha256 for t in self._tags.values()}}

    def tag(self, records: Sequence[Record], kind: str) -> list[Record]:
        """Mark rows as ``seed`` or ``augmented`` data with that kind's system prompt."""
        system = self._tags[kind].render().strip()
        return [r.with_meta(humpback_tag=kind, system=system) for r in records]

    def run(
        self,
        documents: Sequence[Document],
        seeds: Sequence[Record],
        llm: LLM,
        driver: Any,
        *,
        backward_llm: LLM | None = None,
        curators: Sequence[LLMConfig] = (),
        trainer: Trainer | None = None,
        concurrency: int = 1,
    ) -> dict[str, Any]:
        """Run every phase into ``driver`` (a :class:`~tunesmith.driver.RunDriver`), resumably.

        Args:
            documents: the unlabelled documents.
            seeds: seed (instruction, output) pairs: few-shot examples and the seed tag.
            llm: the forward seed model M0 (curation of iteration 1; also M_yx by default).
            driver: the open run driver.
            backward_llm: a separate backward model M_yx (e.g. a reversed-SFT model).
            curators: client configs of M1, M2 ... for iterations 2, 3 ...
            trainer: trains M_i on seed + A_k when ``curators`` does not name it; it is called
                again on resume, so it must resume or reuse its own training run (as
                ``tunesmith train sft`` does with its run folder).
            concurrency: requests the backend keeps in flight; a batch holds at least this many
                rows (``batch_size`` only sets how often rows are checkpointed).
        """
        self._concurrency = max(1, concurrency)
        self._check_curators(curators, trainer)
        self.predictor.use_examples(seeds)
        segments = self._segment(documents, driver)
        candidates = self._augment(segments, backward_llm or llm, driver)
        seed_rows = self.tag(seeds, "seed")
        kept = self._iterate(candidates, seed_rows, llm, driver, curators, trainer)
        driver.write_kept((seed_rows if self.include_seeds else []) + kept)
        summary = self.summary(driver, len(documents), len(segments), len(candidates), len(kept))
        driver.write_artifact(SUMMARY_FILE, summary)
        return summary

    def _check_curators(self, curators: Sequence[LLMConfig], trainer: Trainer | None) -> None:
        """Every iteration after the first needs its curator M_{i-1}: named, or trained."""
        if self.iterations > 1 + len(curators) and trainer is None:
            raise ConfigError(
                f"iteration {len(curators) + 2} needs M{len(curators) + 1}: pass its model "
                "(--curator-model, trained with tunesmith train sft on the previous kept.jsonl)"
            )

    def _iterate(
        self,
        candidates: list[Record],
        seed_rows: list[Record],
        llm: LLM,
        driver: Any,
        curators: Sequence[LLMConfig],
        trainer: Trainer | None,
    ) -> list[Record]:
        """Self-curation, iterated: M_{i-1} curates the whole candidate pool in iteration i;
        returns the last A_k (every candidate, tagged, when there are no iterations)."""
        kept: list[Record] = self.tag(candidates, "augmented") if self.iterations == 0 else []
        prior: dict[str, dict[str, Any]] = {}
        for i in range(1, self.iterations + 1):
            judge = llm if i == 1 else self._model(i, curators, trainer, seed_rows + kept, driver)
            pool = [c.with_scores(**prior.get(c.id, {})) for c in candidates]
            try:
                kept = self._curate(i, pool, judge, driver, prior)
            finally:
                if judge is not llm:
                    judge.close()
        return kept

    def _segment(self, documents: Sequence[Document], driver: Any) -> list[Record]:
        segments, bad = segment_records(list(documents), self.rules)
        rejected = [Rejected(r, score=len(r.output), reason=why) for r, why in bad]
        event = {"batch": 0, "documents": len(documents), "segments": len(segments),
                 "rejected": len(rejected)}  # fmt: skip
        driver.report(StageResult(rejected=rejected), "segment", event=event)
        return segments

    def _augment(self, segments: list[Record], llm: LLM, driver: Any) -> list[Record]:
        sub = driver.child("augment", method="backtranslate",
                           config={"params": vars_of(self.predictor)})  # fmt: skip
        self._run_batches(self.predictor, segments, llm, sub, "backtranslate", driver)
        sub.finish("done", **sub.counts())
        return sub.read_kept()

    def _curate(
        self, i: int, pool: list[Record], llm: LLM, driver: Any, prior: dict[str, dict[str, Any]]
    ) -> list[Record]:
        scorer = self.curator(i)
        config = {"params": {"iteration": i, "min_score": self.min_score}}
        if i == self.iterations:  # the last curation's rejections are the run's rejections
            sub = driver.child(f"iterations/{i}", method="self_curation", config=config)
        else:
            sub = _detached_child(driver, f"iterations/{i}", config)
        self._run_batches(scorer, pool, llm, sub, scorer.tag, driver)
        sub.finish("done", **sub.counts())
        kept = sub.read_kept()
        for row in [*(r.to_dict() for r in kept), *sub.run.read_rejected()]:
            prior.setdefault(row["id"], {}).update(row.get("scores") or {})
        return self.tag(kept, "augmented")

    def _run_batches(
        self, stage: Any, rows: list[Record], llm: LLM, sub: Any, name: str, driver: Any
    ) -> None:
        counter = [len(sub.read_events())]

        def on_batch(result: StageResult) -> None:
            counter[0] += 1
            driver.save_ledger()  # no visible row without its cost
            sub.report(result, name, event={"batch": counter[0], **sub.counts()})

        size = max(self.batch_size, self._concurrency)
        run_stage_batches(stage, rows, llm=llm, batch_size=size,
                          done_ids=sub.done_ids(), on_batch=on_batch)  # fmt: skip

    def _model(
        self, i: int, curators: Sequence[LLMConfig], trainer: Trainer | None,
        mix: list[Record], driver: Any,
    ) -> LLM:  # fmt: skip
        """M_{i-1}: the given model for iteration i, or one trained on seed + A_k."""
        if i - 2 < len(curators):
            config = curators[i - 2]
        else:
            assert trainer is not None  # checked in run()
            config = trainer(mix, i - 1)
        driver.log_event(stage=f"model_m{i - 1}", model=config.resolved_model())
        return driver.make_llm(config)  # type: ignore[no-any-return]

    def summary(
        self, driver: Any, documents: int, segments: int, candidates: int, kept: int
    ) -> dict[str, Any]:
        """Rows and usage per phase (ledger per-tag totals: exact across resumes)."""
        stages = driver.ledger.to_dict()["stages"]
        phases = [{"phase": "backtranslate", "segments": segments, "kept": candidates,
                   **stages.get("backtranslate", {})}]  # fmt: skip
        for i in range(1, self.iterations + 1):
            sub = Path(driver.path) / "iterations" / str(i)
            n_kept = _count_lines(sub / "kept.jsonl")
            phases.append({"phase": f"curate_m{i - 1}", "iteration": i, "candidates": candidates,
                           "kept": n_kept, "rejected": _count_lines(sub / "rejected.jsonl"),
                           **stages.get(f"curate_m{i - 1}", {})})  # fmt: skip
        return {
            "documents": documents, "segments": segments, "candidates": candidates,
            "augmented_kept": kept, "min_score": self.min_score, "phases": phases,
            **driver.ledger.totals(),
        }  # fmt: skip


def _detached_child(driver: Any, subpath: str, config: dict[str, Any]) -> Any:
    """A sub-folder whose rejected rows stay its own (an earlier iteration's curation), sharing
    the run's ledger."""
    from tunesmith.driver import RunDriver
    from tunesmith.runs import RunDir

    sub = RunDriver(RunDir.open(Path(driver.path) / subpath, method="self_curation",
                                config=config), keeps_ledger=False)  # fmt: skip
    sub.ledger = driver.ledger
    return sub


def _count_lines(path: Path) -> int:
    if not path.exists():
        return 0
    with path.open(encoding="utf-8") as fh:
        return sum(1 for line in fh if line.strip())


def vars_of(stage: Any) -> dict[str, Any]:
    from tunesmith.jobs import stage_params

    return stage_params(stage)
