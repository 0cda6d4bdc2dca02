"""Judge a model's outputs against a baseline's, instruction by instruction, through the LLM client.

Every call goes through :class:`tunesmith.llm.client.LLM` (request cache, ledger, budget), so a
killed or budget-stopped evaluation resumes by running it again and never pays twice. The two
outputs files are aligned by instruction (+ input); rows that do not align are an error naming
them. Identical outputs are a tie without a call (AlpacaEval's rule).
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from tunesmith.errors import DataError
from tunesmith.judge import rules
from tunesmith.judge.parsers import PARSERS, Vote
from tunesmith.judge.spec import JudgeSpec
from tunesmith.llm.base import Completion, Request
from tunesmith.llm.client import LLM
from tunesmith.records import Record, stable_id

EXCERPT_CHARS = 1500


@dataclasses.dataclass(frozen=True)
class Pair:
    """One instruction with the model's and the baseline's outputs."""

    key: str
    instruction: str
    input: str
    model_output: str
    baseline_output: str
    generator: str
    baseline: str
    category: str | None = None
    reference: str | None = None

    @functools.cached_property
    def id(self) -> str:
        return stable_id("pair", self.key)


def _key(record: Record) -> str:
    return f"{record.instruction.strip()}\x1f{record.input.strip()}"


def align(
    model: Sequence[Record], baseline: Sequence[Record], model_path: str, baseline_path: str
) -> list[Pair]:
    """Pair rows by instruction (+ input), in the model file's order.

    Raises:
        DataError: naming the first rows that have no partner (and how many more), or a
            duplicated instruction.
    """
    base_by_key = _index(baseline, baseline_path)
    model_by_key = _index(model, model_path)
    for rows, other, path, other_path in (
        (model, base_by_key, model_path, baseline_path),
        (baseline, model_by_key, baseline_path, model_path),
    ):
        missing = [r for r in rows if _key(r) not in other]
        if missing:
            first = missing[0]
            more = f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""
            raise DataError(
                path,
                int(first.meta.get("row", 0)) + 1,
                f"instruction {first.instruction[:60]!r} is not in {other_path}{more}",
            )
    return [_pair(r, base_by_key[_key(r)]) for r in model]


def _index(records: Sequence[Record], path: str) -> dict[str, Record]:
    out: dict[str, Record] = {}
    for r in records:
        if _key(r) in out:
            raise DataError(
                path,
                int(r.meta.get("row", 0)) + 1,
                f"duplicated instruction {r.instruction[:60]!r}",
            )
        out[_key(r)] = r
    return out


def _pair(m: Record, b: Record) -> Pair:
    category = m.meta.get("category") or b.meta.get("category") or m.meta.get("dataset")
    reference = m.meta.get("reference") or b.meta.get("reference")
    return Pair(
        key=_key(m),
        instruction=m.instruction,
        input=m.input,
        model_output=m.output,
        baseline_output=b.output,
        generator=str(m.meta.get("generator") or m.meta.get("source") or "model"),
        baseline=str(b.meta.get("generator") or b.meta.get("source") or "baseline"),
        category=str(category) if category else None,
        reference=str(reference) if reference else None,
    )


def model_is_second(spec: JudgeSpec, pair: Pair, seed: int) -> list[bool]:
    """The orders to show: both (baseline first, then model first), one seeded random order
    (AlpacaEval 2: seeded on the instruction), or the model second (AlpacaEval's output_2)."""
    if spec.both_orders:
        return [True, False]
    if spec.randomize_order:
        digest = hashlib.sha256(f"{seed}\x1f{pair.instruction}".encode()).digest()
        return [digest[0] % 2 == 0]
    return [True]


def requests_for(spec: JudgeSpec, pair: Pair, seed: int) -> list[tuple[Request, bool]]:
    """(request, model_is_second) per call; for a grading judge the flag says 'is the model's'."""
    # every judge template may use the reference answer and the category (None when absent)
    common: dict[str, Any] = {"instruction": pair.instruction, "input": pair.input,
              "reference": pair.reference, "category": pair.category}  # fmt: skip
    if not spec.is_pairwise:
        return [
            (spec.request(output=out, **common), is_model)
            for out, is_model in ((pair.model_output, True), (pair.baseline_output, False))
        ]
    out = []
    for second in model_is_second(spec, pair, seed):
        first_out, second_out = (
            (pair.baseline_output, pair.model_output)
            if second
            else (pair.model_output, pair.baseline_output)
        )
        out.append((spec.request(output_1=first_out, output_2=second_out, **common), second))
    return out


@dataclasses.dataclass
class Plan:
    """The calls one group of pairs needs from one judge (built before any call is sent)."""

    spec: JudgeSpec
    pairs: Sequence[Pair]
    calls: list[list[tuple[Request, bool]]]
    annotator: str

    @property
    def requests(self) -> list[Request]:
        return [req for calls in self.calls for req, _ in calls]


def plan_pairs(
    spec: JudgeSpec, pairs: Sequence[Pair], *, seed: int = 0, annotator: str = ""
) -> Plan:
    """Render every call the pairs need (identical outputs need none: a tie)."""
    calls = [
        [] if p.model_output.strip() == p.baseline_output.strip() else requests_for(spec, p, seed)
        for p in pairs
    ]
    return Plan(spec, pairs, calls, annotator or spec.name)


def conclude(plan: Plan, completions: Sequence[Sequence[Completion]]) -> list[dict[str, Any]]:
    """One judgment row per pair from the plan's completions (in request order)."""
    answers = iter(completions)
    rows = []
    for pair, calls in zip(plan.pairs, plan.calls, strict=True):
        got = [(next(answers)[0], flag) for _, flag in calls]
        rows.append(_judgment(plan.spec, pair, got, plan.annotator))
    return rows


def judge_pairs(
    spec: JudgeSpec, llm: LLM, pairs: Sequence[Pair], *, seed: int = 0, annotator: str = ""
) -> list[dict[str, Any]]:
    """Judge every pair (one batch of LLM calls) and return one judgment row per pair."""
    plan = plan_pairs(spec, pairs, seed=seed, annotator=annotator)
    requests = plan.requests
    return conclude(plan, llm.complete(requests) if requests else [])


def _judgment(
    spec: JudgeSpec, pair: Pair, calls: list[tuple[Completion, bool]], annotator: str
) -> dict[str, Any]:
    parser = PARSERS.get(spec.parser)
    votes = [_read(parser, spec, c) for c, _ in calls]
    details = [
        {
            "model_is_second": flag,
            "pref_second": v.pref,
            "scores": list(v.scores),
            "reason": v.reason,
            "text": c.text[:EXCERPT_CHARS],
        }
        for (c, flag), v in zip(calls, votes, strict=True)
    ]
    failed = next((v.reason for v in votes if not v.ok), None)
    pref: float | None = None
    if not calls:
        pref = 1.5  # identical outputs: a tie, no call
    elif failed is None:
        pref = _combine(spec, votes, [flag for _, flag in calls])
    return {
        "id": pair.id,
        "instruction": pair.instruction,
        "input": pair.input,
        "category": pair.category,
        "generator": pair.generator,
        "baseline": pair.baseline,
        "model_output": pair.model_output,
        "baseline_output": pair.baseline_output,
        "judge": spec.name,
        "annotator": annotator,
        "preference": pref,
        "outcome": rules.outcome(pref) if pref is not None else None,
        "failed": failed,
        "status": next(
            (getattr(c, "error_status", None) for c, _ in calls if getattr(c, "error", None)), None
        ),
        "calls": details,
    }


def _read(parser: Any, spec: JudgeSpec, completion: Completion) -> Vote:
    error = getattr(completion, "error", None)  # a request the server refused (HTTP 4xx)
    if error:
        return Vote(reason=f"request failed: {error}")
    vote: Vote = parser(completion, spec)
    return vote


def _combine(spec: JudgeSpec, votes: list[Vote], flags: list[bool]) -> float:
    if not spec.is_pairwise:
        by_side = {flag: v.scores[0] for v, flag in zip(votes, flags, strict=True)}
        return rules.grade(by_side[True], by_side[False])
    prefs = [
        rules.for_model(float(v.pref), flag)
        for v, flag in zip(votes, flags, strict=True)
        if v.pref is not None
    ]
    return rules.COMBINE[spec.rule](prefs)


def output_name(path: str | Path) -> str:
    """A generator name for an outputs file without a ``generator`` field."""
    p = Path(path)
    return p.parent.name if p.name in ("outputs.json", "kept.jsonl") else p.stem
