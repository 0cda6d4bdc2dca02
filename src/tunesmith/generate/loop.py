"""The bootstrapping loop shared by Self-Instruct, Alpaca and SeDi-Instruct.

Each round builds ``prompts_per_batch`` prompts from a seeded RNG, sends them as one batch
through :class:`~tunesmith.llm.client.LLM` (request cache, ledger, budget), parses the
completions, applies the heuristic rules and then the ROUGE-L novelty filter in order, and
reports each round's kept and rejected rows and its event to a :class:`~tunesmith.driver.RunSink`
(the run driver writes them; the loop never touches files).

Resume is deterministic replay: prompt construction depends only on the seed and on earlier
decisions, every completion of a finished round is in the request cache, and rows are written by
stable ids, so rerunning a killed run into the same folder replays the finished rounds for free
and continues where it stopped without repeating or duplicating anything.
"""

from __future__ import annotations

import dataclasses
import random
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from tunesmith.driver import RunSink
from tunesmith.generate.instruction_rules import check_instruction
from tunesmith.generate.parsing import ParsedItem
from tunesmith.llm.base import Completion, Request, SamplingParams
from tunesmith.llm.client import LLM
from tunesmith.records import Record, stable_id
from tunesmith.stages import Rejected, StageResult


@dataclasses.dataclass
class PromptPlan:
    """One prompt of a round: its text and the tasks shown in it (for provenance and scores)."""

    text: str
    seed_ids: list[str]
    machine_ids: list[str] = dataclasses.field(default_factory=list)


@dataclasses.dataclass
class LoopState:
    """What the loop has decided so far (rebuilt identically on replay)."""

    kept: list[Record] = dataclasses.field(default_factory=list)
    generated: int = 0
    rounds: int = 0
    idle_rounds: int = 0


def make_request(prompt: str, params: SamplingParams, *, tag: str, style: str = "raw") -> Request:
    """A raw completion request (as the papers used), or the prompt as one user turn."""
    if style == "chat":
        return Request.chat([{"role": "user", "content": prompt}], params, tag=tag)
    return Request.raw(prompt, params, tag=tag)


def usage_totals(llm: LLM) -> dict[str, Any]:
    """The ledger's usage totals (kept for callers written before ``Ledger.totals``)."""
    return llm.ledger.totals()


@dataclasses.dataclass(kw_only=True, eq=False)
class LoopSettings:
    """The options every bootstrapping generator takes, declared once (Self-Instruct, Alpaca,
    SeDi-Instruct). Generators are dataclasses that add their own options and set their
    method's published sampling defaults; the generated ``__init__`` takes explicit keywords
    only and stores them verbatim, so ``pipeline.check_params`` reads the options from the
    signature. Derived state (templates, blacklists) is built in ``__post_init__``.

    Args:
        num_instructions: stop once this many instructions (tasks) are kept.
        prompts_per_batch: prompts sent together in one request batch (5 in the reference code).
        temperature, top_p, max_tokens: sampling (each method sets its paper's values).
        threshold: ROUGE-L F above which a candidate is a near-duplicate (0.7).
        seed: RNG seed for sampling in-context examples (and per-request sampling seeds).
        max_rounds / patience: stop after this many rounds / this many rounds keeping nothing.
        top_k: store this many most similar pool texts per candidate (0 = off).
        prompt_style: ``raw`` completion prompts (as the papers) or ``chat`` (one user turn).
        prompts_dir: a folder overriding the packaged templates.
    """

    num_instructions: int = 100
    prompts_per_batch: int = 5
    temperature: float
    top_p: float
    max_tokens: int
    threshold: float = 0.7
    seed: int = 42
    max_rounds: int | None = None
    patience: int = 10
    top_k: int = 0
    prompt_style: str = "raw"
    prompts_dir: str | Path | None = None


class BootstrapLoop:
    """Base class: subclasses build prompts and parse completions; the loop does the rest.

    Subclasses set ``method``, ``stage``, and the attributes read here: ``num_instructions``,
    ``prompts_per_batch``, ``threshold``, ``seed``, ``max_rounds``, ``patience``,
    ``prompt_style``, ``blacklist``, ``top_k``.
    """

    method = "bootstrap"
    stage = "bootstrap"
    #: write kept candidates to kept.jsonl as each round is decided (complete records only)
    writes_kept = False
    num_instructions: int
    prompts_per_batch: int
    threshold: float
    seed: int
    max_rounds: int | None
    patience: int
    prompt_style: str
    blacklist: tuple[str, ...]
    top_k: int
    state: LoopState
    novelty: Any
    rng: random.Random
    #: called after every round (live progress); not part of the method
    on_round: Callable[[LoopState], None] | None = None

    # -- to implement ------------------------------------------------------------------------
    def build_prompt(self, rng: random.Random, state: LoopState) -> PromptPlan:
        raise NotImplementedError

    def sampling_params(self, round_index: int, prompt_index: int) -> SamplingParams:
        raise NotImplementedError

    def parse(self, completion: Completion) -> list[ParsedItem]:
        raise NotImplementedError

    def on_prompt_done(self, plan: PromptPlan, generated: int, kept: int) -> None:
        """Called after each prompt's candidates are decided (SeDi updates seed scores here)."""

    # -- the loop ---------------------------------------------------------------------------
    def max_rounds_for(self) -> int:
        if self.max_rounds is not None:
            return self.max_rounds
        return max(20, 4 * self.num_instructions // max(1, self.prompts_per_batch) + 10)

    def generate(self, pool: Sequence[str], llm: LLM, sink: RunSink) -> list[Record]:
        """Start from ``pool`` (the seed texts) and run rounds until ``num_instructions`` are kept,
        the round limit, or ``patience`` rounds in a row keep nothing. Returns the kept records."""
        self.start(pool)
        return self.continue_generation(llm, sink)

    def start(self, pool: Sequence[str]) -> None:
        """Fresh state: the novelty pool holds ``pool``, the RNG is reseeded."""
        from tunesmith.filters.novelty import NoveltyFilter

        self.novelty = NoveltyFilter(threshold=self.threshold, pool=list(pool), top_k=self.top_k)
        self.rng = random.Random(self.seed)
        self.state = LoopState()

    def continue_generation(self, llm: LLM, sink: RunSink) -> list[Record]:
        """Run more rounds on the current state (after :meth:`start`, or to extend a finished
        generation once ``num_instructions`` was raised); the round limit counts per call.
        Each round's rows and event go to ``sink``."""
        state, rng, novelty = self.state, self.rng, self.novelty
        state.idle_rounds = 0
        last_round = state.rounds + self.max_rounds_for()
        while len(state.kept) < self.num_instructions and state.rounds < last_round:
            plans = [self.build_prompt(rng, state) for _ in range(self.prompts_per_batch)]
            requests = [
                make_request(
                    p.text,
                    self.sampling_params(state.rounds, i),
                    tag=self.stage,
                    style=self.prompt_style,
                )
                for i, p in enumerate(plans)
            ]
            completions = llm.complete(requests)
            before = len(state.kept)
            result = self._decide_round(plans, [c[0] for c in completions], novelty, state)
            event = {"batch": state.rounds, "generated": state.generated, "kept": len(state.kept),
                     "prompts": (state.rounds + 1) * self.prompts_per_batch}  # fmt: skip
            sink.report(result, self.stage, event=event, keep=self.writes_kept)
            state.rounds += 1
            if self.on_round is not None:
                self.on_round(state)
            state.idle_rounds = state.idle_rounds + 1 if len(state.kept) == before else 0
            if state.idle_rounds >= self.patience:
                break
        return state.kept

    def _decide_round(
        self,
        plans: list[PromptPlan],
        completions: list[Completion],
        novelty: Any,
        state: LoopState,
    ) -> StageResult:
        """Parse, rule-check and novelty-check one round; returns its new kept and rejected rows
        (each rejected row names the rule that removed it)."""
        candidates: list[tuple[int, Record]] = []
        rejected: list[Rejected] = []
        generated = [0] * len(plans)
        for pi, (plan, comp) in enumerate(zip(plans, completions, strict=True)):
            for ii, item in enumerate(self.parse(comp)):
                rec = self.to_record(item, plan, state.rounds, pi, ii, comp)
                if item.reason:
                    rejected.append(Rejected(rec, None, item.reason, stage="parse"))
                    continue
                generated[pi] += 1
                rule = check_instruction(item.instruction, blacklist=self.blacklist)
                if rule.kept:
                    candidates.append((pi, rec))
                else:
                    rejected.append(Rejected(rec, rule.score, rule.reason, stage=rule.rule))
        decisions = (
            novelty.check([r.instruction for _, r in candidates], commit=True) if candidates else []
        )
        pool = novelty.pool_texts if candidates else []
        kept_per_prompt = [0] * len(plans)
        for (pi, rec), dec in zip(candidates, decisions, strict=True):
            nearest = pool[dec.nearest] if dec.nearest is not None else None
            scores: dict[str, Any] = {"rouge_l_max": dec.max_score, "rouge_l_nearest": nearest}
            if dec.top:
                scores["rouge_l_top"] = [[pool[i], f] for i, f in dec.top]
                scores["rouge_l_mean"] = dec.mean_score
            rec = rec.with_scores(**scores)
            if dec.kept:
                state.kept.append(rec)
                kept_per_prompt[pi] += 1
            else:
                reason = f"ROUGE-L {dec.max_score:.3f} > {self.threshold} vs: {nearest}"
                rejected.append(Rejected(rec, dec.max_score, reason, stage="rouge_l"))
        state.generated += sum(generated)
        for plan, g, k in zip(plans, generated, kept_per_prompt, strict=True):
            self.on_prompt_done(plan, g, k)
        new_kept = state.kept[len(state.kept) - sum(kept_per_prompt) :]
        return StageResult(kept=list(new_kept), rejected=rejected)

    def to_record(
        self, item: ParsedItem, plan: PromptPlan, rnd: int, pi: int, ii: int, comp: Completion
    ) -> Record:
        """A candidate as a Record with a stable id and its provenance."""
        return Record(
            id=stable_id(self.method, self.seed, rnd, pi, ii),
            instruction=item.instruction,
            input=item.input,
            output=item.output,
            meta={
                "method": self.method,
                "round": rnd,
                "seed_ids": plan.seed_ids,
                "machine_ids": plan.machine_ids,
                "finish_reason": comp.finish_reason,
                "prompts": self.prompt_hashes(),
            },
        )

    def prompt_hashes(self) -> dict[str, str]:
        return {}


def run_summary(
    llm: LLM, *, generated: int, kept_instructions: int, kept_records: int
) -> dict[str, Any]:
    """Calls, tokens and cost in total and per kept instruction (SeDi-Instruct's cost measure).

    The per-kept numbers follow compare-generators' definitions (one function computes them), so
    the manifest says what the console and the report say.
    """
    # compare imports the generators, which import this module: import it when called
    from tunesmith.generate.compare import cost_numbers

    totals = llm.ledger.totals()
    numbers = cost_numbers(generated, kept_instructions, totals)
    return {
        "generated": generated,
        "kept_instructions": kept_instructions,
        "kept_records": kept_records,
        **totals,
        **{k: numbers[k] for k in ("calls_per_kept", "tokens_per_kept", "cost_per_kept")},
        "by_stage": llm.ledger.to_dict()["stages"],
    }
