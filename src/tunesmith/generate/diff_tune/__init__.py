"""``generate difftune``: sample, filter by perplexity, resample until enough, then respond.

DiffTune (Wang & Liu 2023, section 2.3): sampled instructions whose perplexity under a causal LM
exceeds 150 are dropped (the threshold was set for GPT2-Large; tunesmith scores with the embedded
SmolLM2 unless another model is named, so check the distribution before trusting the number),
and sampling repeats until the target count passes (about 2 rounds in the paper). An optional
ROUGE-L novelty filter drops near-duplicates of earlier kept rows (and, if asked, of the
training set). Responses come from any LLM backend; responses that refuse or say the
instruction is not self-contained are dropped, as the paper does.

Run folder: ``kept.jsonl`` (instructions with responses), ``rejected.jsonl`` (``rejected_by``
``ppl`` with the score, ``novelty``, ``duplicate``, ``respond``, ``invalid_response``),
``state.json`` (rounds done, instructions awaiting responses), ``ledger.json``, ``events.jsonl``.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from tunesmith.filters.heuristic_filter import HeuristicFilter
from tunesmith.filters.novelty import NoveltyFilter
from tunesmith.filters.perplexity_filter import PerplexityFilter
from tunesmith.generate.diff_tune.sample import (
    DiffTuneModel,
    SamplingSettings,
    load_model,
    model_folder,
    sample_instructions,
)
from tunesmith.generate.response_generator import ResponseGenerator
from tunesmith.llm.client import LLM
from tunesmith.records import Record
from tunesmith.stages import Rejected, StageResult

#: Phrases that mark a response as invalid: a refusal, or the model saying it lacks context.
INVALID_RESPONSE_PHRASES = (
    "not self-contained", "provide more context", "provide more information",
    "need more information", "need more context", "please provide the", "could you provide",
    "could you please provide", "i'm sorry, but", "i am sorry, but", "i cannot answer",
    "i can't answer", "unclear what you",
)  # fmt: skip


class DiffTune:
    """Samples a trained DiffTune model into kept instructions, then asks an LLM to respond.

    Args:
        model: a folder written by ``tunesmith train difftune``.
        num_instructions: target count of instructions that pass the filters.
        sampling: noise strategy, diffusion steps and decoding settings.
        ppl_threshold: drop instructions above this perplexity (None = score only).
        ppl_model: causal LM for perplexity (None = embedded SmolLM2).
        novelty: ROUGE-L threshold of the optional novelty filter (None = off).
        novelty_vs_train: also compare against the training instructions.
        max_rounds: stop resampling after this many rounds.
        respond: ask the LLM for responses (False leaves outputs empty).
        seed: sampling seed (round r uses seed + r).
    """

    name = "difftune"

    def __init__(
        self, *, model: str, num_instructions: int = 100, sampling: SamplingSettings | None = None,
        ppl_threshold: float | None = 150.0, ppl_model: str | None = None,
        novelty: float | None = None, novelty_vs_train: bool = False, max_rounds: int = 10,
        respond: bool = True, max_tokens: int = 512, seed: int = 42,
    ) -> None:  # fmt: skip
        self.model = model
        self.num_instructions = num_instructions
        self.sampling = sampling or SamplingSettings()
        self.ppl_threshold = ppl_threshold
        self.ppl_model = ppl_model
        self.novelty = novelty
        self.novelty_vs_train = novelty_vs_train
        self.max_rounds = max_rounds
        self.respond = respond
        self.max_tokens = max_tokens
        self.seed = seed
        self._model: DiffTuneModel | None = None

    def config(self) -> dict[str, Any]:
        """The resolved settings (what a resumed run must match)."""
        out = {k: v for k, v in vars(self).items() if not k.startswith("_") and k != "sampling"}
        out["model"] = str(model_folder(self.model).resolve())
        return {**out, "sampling": dataclasses.asdict(self.sampling)}

    def setup(self) -> None:
        self.sampling.check()
        if self._model is None:
            self._model = load_model(self.model)
            self._ppl = PerplexityFilter(model=self.ppl_model, threshold=self.ppl_threshold)

    def candidates(self, round_no: int, need: int) -> list[Record]:
        """``need`` freshly sampled instructions of round ``round_no`` as records."""
        assert self._model is not None
        rows = sample_instructions(self._model, need, self.sampling, seed=self.seed + round_no)
        meta = {"method": "difftune", "strategy": self.sampling.strategy, "round": round_no}
        return [
            Record(id=f"difftune-r{round_no:03d}-{i:05d}", instruction=row["text"],
                   meta={**meta, "latent_length": row["length"], "redrawn": row["redrawn"]})
            for i, row in enumerate(rows)
        ]  # fmt: skip

    def curate(self, records: list[Record], kept_texts: list[str]) -> StageResult:
        """Drop empty/repeated texts, then perplexity, then novelty (each rejection names it)."""
        out = StageResult()
        seen, fresh = set(kept_texts), []
        for rec in records:
            key = rec.instruction.strip().lower()
            if not key or key in seen:
                out.rejected.append(
                    Rejected(rec, None, "empty or repeated instruction", "duplicate")
                )
            else:
                seen.add(key)
                fresh.append(rec)
        result = self._ppl.run(fresh) if fresh else StageResult()
        out.rejected += [dataclasses.replace(r, stage="ppl") for r in result.rejected]
        kept = result.kept
        if self.novelty is not None and kept:
            assert self._model is not None
            pool = kept_texts + (self._model.train_texts if self.novelty_vs_train else [])
            decisions = NoveltyFilter(self.novelty, pool=pool).check([r.instruction for r in kept])
            for rec, d in zip(kept, decisions, strict=True):
                if not d.kept:
                    out.rejected.append(
                        Rejected(rec, d.max_score, "ROUGE-L above threshold", "novelty")
                    )
            kept = [r.with_scores(rouge_l_max=d.max_score)
                    for r, d in zip(kept, decisions, strict=True) if d.kept]  # fmt: skip
        out.kept = kept
        return out

    def responses(self, records: list[Record], llm: LLM) -> StageResult:
        """LLM responses, then the invalid-response filter."""
        answered = ResponseGenerator(max_tokens=self.max_tokens).run(records, llm)
        checked = HeuristicFilter(output_blacklist=INVALID_RESPONSE_PHRASES, english_only=False,
                                  drop_duplicate_outputs=False).run(answered.kept)  # fmt: skip
        rejected = [dataclasses.replace(r, stage="invalid_response") for r in checked.rejected]
        return StageResult(kept=checked.kept, rejected=answered.rejected + rejected,
                           failed=answered.failed)  # fmt: skip
