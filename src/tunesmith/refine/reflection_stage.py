"""Reflection-Tuning (Li et al. 2023) and selective reflection (Li et al. 2024).

Reflection-Tuning recycles an existing dataset with an oracle LLM at temperature 0:

- *instruction reflection*: a picky-checker system role; the model analyses why the instruction
  (complexity of the topic, level of detail required, knowledge required, ambiguity, logical
  reasoning / problem solving) and the answer (helpfulness, relevance, accuracy, level of detail)
  fall short, then writes a new, harder, self-contained instruction and its detailed answer in
  marked sections;
- *response reflection*: a critique on the four response criteria, then a better answer.

``mode="both"`` chains them (the new pair's answer is reflected again), as in the paper.

Selective Reflection-Tuning ("Student-Selected Data Recycling", Li et al. 2024) builds four
variants per row — original, instruction-reflected (Q), response-reflected (A) and
both-reflected (QA) — scores IFD and reverse IFD for each with the student model, and keeps the
variant chosen by :func:`select_variant` (the rule of the authors' ``get_select_data.py``).

A row the model failed on (no section, placeholder, cut off, unchanged) keeps its original text
and carries ``meta["reflection"]["status"] == "failed"`` with the reason; nothing is dropped
silently or written half-parsed.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar

from tunesmith.errors import ConfigError
from tunesmith.llm.base import Completion, Request, SamplingParams
from tunesmith.llm.client import LLM
from tunesmith.llm.logprob import LogProbModel
from tunesmith.prompts import PromptTemplate
from tunesmith.records import Record
from tunesmith.refine.sections import extract_section, marker_pattern
from tunesmith.stages import Rejected, Stage, StageResult

MODES = ("instruction", "response", "both")
VARIANTS = ("original", "instruction", "response", "both")


@dataclasses.dataclass(frozen=True)
class Markers:
    """Section marker words; change them together with a custom prompt template."""

    instruction: str = "New Instruction"
    answer: str = "New Answer"
    response: str = "Better Answer"
    end: str = "End"


@dataclasses.dataclass(frozen=True)
class Reflected:
    """One parsed reflection: the new pair (or a failure reason) plus the model's critique."""

    instruction: str | None = None
    output: str | None = None
    critique: str = ""
    failure: str | None = None

    @property
    def ok(self) -> bool:
        return self.failure is None


def _critique(text: str, names: Sequence[str]) -> str:
    starts = [m.start() for n in names if (m := marker_pattern(n).search(text))]
    return text[: min(starts)].strip() if starts else text.strip()


def parse_instruction_reflection(
    completion: Completion, original: Record, markers: Markers = Markers()
) -> Reflected:
    """New instruction + answer from an instruction-reflection output, or a failure."""
    text, names = completion.text, (markers.instruction, markers.answer)
    ins = extract_section(text, markers.instruction, others=names[1:], end=markers.end,
                          finish_reason=completion.finish_reason)  # fmt: skip
    ans = extract_section(text, markers.answer, others=names[:1], end=markers.end,
                          finish_reason=completion.finish_reason)  # fmt: skip
    critique = _critique(text, names)
    failure = ins.failure or ans.failure
    if failure is None and _same(ins.text, original.instruction):
        failure = "new instruction repeats the original"
    if failure is not None:
        return Reflected(critique=critique, failure=failure)
    return Reflected(ins.text, ans.text, critique)


def parse_response_reflection(
    completion: Completion, original: Record, markers: Markers = Markers()
) -> Reflected:
    """A better answer from a response-reflection output, or a failure."""
    text = completion.text
    ans = extract_section(text, markers.response, end=markers.end,
                          finish_reason=completion.finish_reason)  # fmt: skip
    critique = _critique(text, (markers.response,))
    if ans.failure is None and _same(ans.text, original.output):
        return Reflected(critique=critique, failure="better answer repeats the original")
    if ans.failure is not None:
        return Reflected(critique=critique, failure=ans.failure)
    return Reflected(original.instruction, ans.text, critique)


def _same(a: str | None, b: str) -> bool:
    return a is not None and " ".join(a.split()).lower() == " ".join(b.split()).lower()


# -- the selective rule ----------------------------------------------------------------------
Pair = tuple[float | None, float | None]


def select_variant(
    scores: Mapping[str, Pair | None], *, fallback: bool = False
) -> tuple[str | None, str]:
    """Pick a variant from ``{variant: (ifd, rifd) or None}`` (None = reflection failed).

    A score that could not be computed (None in the pair: an empty text, a prompt that fills the
    scorer's window) is "not better" in every comparison and never feasible, so a missing r-IFD
    can never win as if it were 0.

    Selective Reflection-Tuning: if the reflected instruction is harder for the student
    (IFD(Q) > IFD(original)), keep the both-reflected pair when its r-IFD is below the
    instruction-only variant's and both its IFD and r-IFD are < 1. Otherwise keep the
    response-reflected pair when its r-IFD is below the original's and both its scores are < 1.
    The authors' script counts but does not keep the remaining cases (the Q pair, the original);
    ``fallback=True`` keeps them when their own two scores are < 1.

    Returns:
        (variant or None to drop the row, the branch taken in words).
    """
    ori, q, a, qa = (scores.get(v) for v in VARIANTS)
    if ori is None:
        raise ValueError("the original variant needs scores")
    if q is not None and _above(q[0], ori[0]):
        if qa is not None and _above(q[1], qa[1]):
            if _feasible(qa):
                return "both", "harder instruction; reflected answer lowers r-IFD"
            return None, "harder instruction; both-reflected pair has IFD or r-IFD >= 1"
        if fallback and _feasible(q):
            return "instruction", "harder instruction; reflected answer does not lower r-IFD"
        return None, "harder instruction; reflected answer does not lower r-IFD"
    if a is not None and _above(ori[1], a[1]):
        if _feasible(a):
            return "response", "instruction not harder; reflected answer lowers r-IFD"
        return None, "instruction not harder; response-reflected pair has IFD or r-IFD >= 1"
    if fallback and _feasible(ori):
        return "original", "no reflection improves the pair"
    return None, "no reflection improves the pair"


def _above(x: float | None, y: float | None) -> bool:
    """x > y, False when either score is missing (a missing score is never better)."""
    return x is not None and y is not None and x > y


def _feasible(pair: Pair) -> bool:
    return _above(1.0, pair[0]) and _above(1.0, pair[1])


# -- the stage -------------------------------------------------------------------------------
class ReflectionStage(Stage):
    """Reflect every record's instruction and/or answer with the LLM (optionally selectively).

    Args:
        mode: "instruction", "response" or "both" (instruction reflection, then response
            reflection of the new pair). Ignored when ``selective`` (all variants are built).
        selective: build all four variants, score IFD / r-IFD with a causal LM and keep the one
            :func:`select_variant` picks; rows it picks none for are rejected with the scores.
        fallback: with ``selective``, keep the Q pair / the original in the branches the
            authors' script leaves out.
        temperature, max_tokens: sampling (the paper uses temperature 0).
        scorer_model, scorer_batch_size, scorer_max_length: the student LM for IFD (None = the
            embedded SmolLM2 through transformers).
        scorer: a log-prob model to use instead (either runtime, e.g. shared with an IFD stage:
            :func:`tunesmith.llm.logprob.make_logprob_model`).
        prompts_dir: folder overriding ``reflection/{system,instruction,response}.j2``.
        instruction_marker, answer_marker, response_marker, end_marker: section markers.

    Writes ``meta["reflection"]`` (status, variant, failure reasons, critique, the original
    pair) and ``scores["reflected"]`` (1.0 / 0.0); selective runs add ``scores["ifd"]``,
    ``scores["rifd"]`` of the kept variant and ``scores["reflection_ifd"]`` for all variants.
    """

    name: ClassVar[str] = "reflect"
    uses_llm: ClassVar[bool] = True
    per_record: ClassVar[bool] = True

    def __init__(
        self,
        *,
        mode: str = "both",
        selective: bool = False,
        fallback: bool = False,
        temperature: float = 0.0,
        max_tokens: int = 1024,
        scorer_model: str | None = None,
        scorer_batch_size: int = 8,
        scorer_max_length: int = 1024,
        scorer: LogProbModel | None = None,
        prompts_dir: str | Path | None = None,
        instruction_marker: str = "New Instruction",
        answer_marker: str = "New Answer",
        response_marker: str = "Better Answer",
        end_marker: str = "End",
    ) -> None:
        if mode not in MODES:
            raise ConfigError(f"reflect: mode must be one of {', '.join(MODES)}, got '{mode}'")
        self.mode = mode
        self.selective = selective
        self.fallback = fallback
        self.temperature = temperature
        self.max_tokens = max_tokens
        self.scorer_model = scorer_model
        self.scorer_batch_size = scorer_batch_size
        self.scorer_max_length = scorer_max_length
        self.prompts_dir = str(prompts_dir) if prompts_dir else None
        self.instruction_marker = instruction_marker
        self.answer_marker = answer_marker
        self.response_marker = response_marker
        self.end_marker = end_marker
        self._markers = Markers(instruction_marker, answer_marker, response_marker, end_marker)
        self._templates = {
            n: PromptTemplate("reflection", n, prompts_dir)
            for n in ("system", "instruction", "response")
        }
        self._scorer: LogProbModel | None = scorer

    @property
    def prompt_hashes(self) -> dict[str, str]:
        return {t.key: t.sha256 for t in self._templates.values()}

    def setup(self) -> None:
        if self.selective and self._scorer is None:
            from tunesmith.llm.logprob import make_logprob_model

            self._scorer = make_logprob_model(
                "transformers",
                self.scorer_model,
                batch_size=self.scorer_batch_size,
                max_length=self.scorer_max_length,
            )
        if self._scorer is not None:
            self._scorer.setup()

    def format_input(self, record: Record, kind: str) -> Request:
        """The chat request for reflecting ``record`` ("instruction" or "response")."""
        m = self._markers
        user = self._templates[kind].render(
            instruction=record.instruction,
            input=record.input,
            output=record.output,
            instruction_marker=m.instruction,
            answer_marker=m.answer,
            response_marker=m.response,
            end_marker=m.end,
        )
        messages = [
            {"role": "system", "content": self._templates["system"].render().strip()},
            {"role": "user", "content": user},
        ]
        params = SamplingParams(temperature=self.temperature, top_p=1.0, max_tokens=self.max_tokens)
        return Request.chat(messages, params, tag=f"{self.name}:{kind}")

    def reflect(
        self, records: Sequence[Record], llm: LLM, kind: str
    ) -> list[tuple[Record, Reflected]]:
        """One reflection call per record; returns (variant record, parse result) pairs.

        A failed parse returns the input record unchanged next to its failure.
        """
        parse = parse_instruction_reflection if kind == "instruction" else parse_response_reflection
        completions = llm.complete([self.format_input(r, kind) for r in records])
        out = []
        for rec, comps in zip(records, completions, strict=True):
            res = parse(comps[0], rec, self._markers)
            if res.ok:
                assert res.instruction is not None and res.output is not None
                new_input = "" if kind == "instruction" else rec.input
                out.append((rec.evolve(instruction=res.instruction, input=new_input,
                                       output=res.output), res))  # fmt: skip
            else:
                out.append((rec, res))
        return out

    def run(self, records: Sequence[Record], llm: LLM | None = None) -> StageResult:
        if llm is None:
            raise ConfigError("stage reflect needs an LLM")
        variants = self.build_variants(records, llm)
        if self.selective:
            return self.choose(records, variants)
        want = {"instruction": "instruction", "response": "response", "both": "both"}[self.mode]
        result = StageResult()
        for i, rec in enumerate(records):
            result.kept.append(self._finish(rec, variants, i, want))
        return result

    def build_variants(
        self, records: Sequence[Record], llm: LLM
    ) -> dict[str, list[tuple[Record, Reflected]]]:
        """The reflected variants this stage needs, each aligned with ``records``."""
        need_q = self.selective or self.mode in ("instruction", "both")
        need_a = self.selective or self.mode == "response"
        need_qa = self.selective or self.mode == "both"
        out: dict[str, list[tuple[Record, Reflected]]] = {}
        if need_q:
            out["instruction"] = self.reflect(records, llm, "instruction")
        if need_a:
            out["response"] = self.reflect(records, llm, "response")
        if need_qa:
            # Only rows whose instruction reflection worked get a second (response) call.
            ok = [i for i, (_, r) in enumerate(out["instruction"]) if r.ok]
            chained = self.reflect([out["instruction"][i][0] for i in ok], llm, "response")
            both: list[tuple[Record, Reflected]] = [
                (rec, Reflected(failure=f"instruction reflection failed: {res.failure}"))
                for rec, res in out["instruction"]
            ]
            for i, pair in zip(ok, chained, strict=True):
                both[i] = pair
            out["both"] = both
        return out

    def _finish(
        self,
        rec: Record,
        variants: Mapping[str, list[tuple[Record, Reflected]]],
        i: int,
        want: str,
    ) -> Record:
        new, res = variants[want][i]
        failures = {k: v[i][1].failure for k, v in variants.items() if v[i][1].failure}
        info: dict[str, Any] = {
            "mode": self.mode,
            "critique": {k: v[i][1].critique for k, v in variants.items()},
            "failures": failures,
            "original": rec.to_alpaca(),
        }
        if res.ok:
            out = new.with_meta(reflection={**info, "status": "reflected", "variant": want})
            return out.with_scores(reflected=1.0)
        if want == "both" and variants["instruction"][i][1].ok:
            # The new pair parsed but its answer's reflection did not: keep the full new pair.
            new = variants["instruction"][i][0]
            meta = {**info, "status": "reflected", "variant": "instruction"}
            return new.with_meta(reflection=meta).with_scores(reflected=1.0)
        meta = {**info, "status": "failed", "variant": "original", "failure": res.failure}
        return rec.with_meta(reflection=meta).with_scores(reflected=0.0)

    def choose(
        self, records: Sequence[Record], variants: Mapping[str, list[tuple[Record, Reflected]]]
    ) -> StageResult:
        """Score every available variant's IFD / r-IFD and apply :func:`select_variant`."""
        from tunesmith.filters.ifd import score_ifd

        self.setup()
        jobs = [(i, "original", r) for i, r in enumerate(records)]
        for name in ("instruction", "response", "both"):
            jobs += [(i, name, rec) for i, (rec, res) in enumerate(variants[name]) if res.ok]
        pairs = [(rec.prompt_text(), rec.output) for _, _, rec in jobs]
        assert self._scorer is not None  # setup() built it
        ifd = score_ifd(pairs, self._scorer, reverse=True)
        table: list[dict[str, dict[str, Any]]] = [{} for _ in records]
        missing: list[dict[str, Any]] = [{} for _ in records]
        for (i, name, _), s in zip(jobs, ifd, strict=True):
            table[i][name] = s.as_scores()
            if s.missing:
                missing[i][name] = dict(s.missing)
        result = StageResult()
        for i, rec in enumerate(records):
            pick = {v: (t["ifd"], t["rifd"]) for v, t in table[i].items()}
            choice, branch = select_variant(pick, fallback=self.fallback)
            chosen = rec if choice in (None, "original") else variants[str(choice)][i][0]
            failures = {k: v[i][1].failure for k, v in variants.items() if v[i][1].failure}
            meta = {
                "mode": "selective",
                "status": "selected" if choice else "dropped",
                "variant": choice,
                "branch": branch,
                "failures": failures,
                "original": rec.to_alpaca(),
                "variants": {k: v[i][0].to_alpaca() for k, v in variants.items() if v[i][1].ok},
                "missing_scores": missing[i],  # variant -> why its IFD / r-IFD is missing
            }
            out = chosen.with_meta(reflection=meta).with_scores(
                reflection_ifd=table[i], reflected=float(choice not in (None, "original"))
            )
            if choice is None:
                result.rejected.append(Rejected(out, score=table[i], reason=branch))
            else:
                result.kept.append(out.with_scores(**table[i][choice]))
        return result
