"""Instruction-Following Difficulty (IFD) and reverse IFD under a causal LM.

Cherry LLM (Li et al. 2023, "From Quantity to Quality: Boosting LLM Performance with
Self-Guided Data Selection for Instruction Tuning"):

    IFD(Q, A)   = ppl(A | prompt(Q)) / ppl(A)

a ratio near or above 1 means the instruction barely helps the model produce the answer.
Selective Reflection-Tuning (Li et al. 2024) adds the reverse direction:

    r-IFD(Q, A) = ppl(Q | reverse_prompt(A)) / ppl(Q)

(how well the response lets the model guess its instruction; lower = more feasible pair).
Perplexities follow the one rule of :mod:`tunesmith.llm.logprob` (Cherry LLM's tokenization;
both passes over the same answer tokens). Where the papers' code writes 0 when nothing could be
scored (an empty text, a prompt that fills the window), a ratio here is None with the reason in
``meta["missing_scores"]``: a 0 would read as the best possible score. The prompts are the templates
``prompts/ifd/prompt.j2`` (variable ``instruction``) and ``prompts/ifd/reverse.j2`` (variable
``response``), replaceable with ``--prompts-dir``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import ClassVar

from tunesmith.filters.score_decision import check_range, decide_by_score, note_missing
from tunesmith.llm.client import LLM
from tunesmith.llm.logprob import LogProbModel, TextScore, UsesLogProbModel
from tunesmith.prompts import PromptTemplate
from tunesmith.records import Record
from tunesmith.stages import Stage, StageResult


@dataclasses.dataclass(frozen=True)
class IFDScore:
    """Perplexities and ratios for one (instruction, answer) pair.

    A value is None when it could not be computed (``missing`` says why, per ratio); the reverse
    ones are also None when the reverse direction was skipped.
    """

    ppl_answer_given_instruction: float | None
    ppl_answer: float | None
    ifd: float | None
    ppl_instruction_given_answer: float | None = None
    ppl_instruction: float | None = None
    rifd: float | None = None
    missing: Mapping[str, str] = dataclasses.field(default_factory=dict)

    def as_scores(self) -> dict[str, float | None]:
        """The score fields (the reasons go to ``meta["missing_scores"]``)."""
        return {
            f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name != "missing"
        }


def ppl_ratio(cond: TextScore, alone: TextScore, what: str) -> tuple[float | None, str | None]:
    """ppl(text | prompt) / ppl(text) over the same tokens, or (None, why) when either is missing.

    Never 0 for "could not score": the papers' 0 on an empty denominator reads as the best IFD.
    """
    if cond.ppl is None:
        return None, f"{what} after its prompt: {cond.reason}"
    if alone.ppl is None:
        return None, f"{what} alone: {alone.reason}"
    return cond.ppl / alone.ppl, None


def ifd_prefixes(
    pairs: Sequence[tuple[str, str]],
    *,
    prompt: PromptTemplate | None = None,
    reverse_prompt: PromptTemplate | None = None,
) -> tuple[list[str], list[str]]:
    """The rendered forward prefixes (from instructions) and reverse prefixes (from answers)."""
    fwd = prompt or PromptTemplate("ifd", "prompt")
    rev = reverse_prompt or PromptTemplate("ifd", "reverse")
    return (
        [fwd.render(instruction=q) for q, _ in pairs],
        [rev.render(response=a) for _, a in pairs],
    )


def score_ifd(
    pairs: Sequence[tuple[str, str]],
    scorer: LogProbModel,
    *,
    reverse: bool = True,
    prompt: PromptTemplate | None = None,
    reverse_prompt: PromptTemplate | None = None,
) -> list[IFDScore]:
    """IFD (and reverse IFD) for ``(instruction_text, answer)`` pairs, in one batched call.

    Args:
        pairs: (instruction text incl. any input, answer) per row.
        scorer: a loaded or loadable :class:`~tunesmith.llm.logprob.LogProbModel`.
        reverse: also compute the reverse direction (2 more passes per row).
        prompt, reverse_prompt: templates (default ``prompts/ifd/{prompt,reverse}.j2``).
    """
    if not pairs:
        return []
    fwd, rev = ifd_prefixes(pairs, prompt=prompt, reverse_prompt=reverse_prompt)
    n = len(pairs)
    prompts, texts = list(fwd), [a for _, a in pairs]
    if reverse:  # one call, so all 2n (4n) sequences are batched by length together
        prompts += rev
        texts += [q for q, _ in pairs]
    scored = scorer.score_pairs(prompts, texts)
    out = []
    for i in range(n):
        cond, alone = scored[i]
        ifd, why = ppl_ratio(cond, alone, "answer")
        missing = {"ifd": why} if why else {}
        if not reverse:
            out.append(IFDScore(cond.ppl, alone.ppl, ifd, missing=missing))
            continue
        rcond, ralone = scored[n + i]
        rifd, rwhy = ppl_ratio(rcond, ralone, "instruction")
        if rwhy:
            missing["rifd"] = rwhy
        out.append(IFDScore(cond.ppl, alone.ppl, ifd, rcond.ppl, ralone.ppl, rifd, missing))
    return out


class IFDStage(UsesLogProbModel, Stage):
    """Scores IFD / r-IFD on every record and keeps a range or the top share.

    Writes ``scores["ifd"]``, ``scores["rifd"]`` and the four perplexities. Records that already
    carry an ``ifd`` score are not rescored unless ``rescore`` (so a scored file can be filtered
    again instantly).

    Args:
        model: causal LM (HF folder/id; None = embedded SmolLM2). Ignored when ``scorer`` given.
        scorer: an existing scorer to share (e.g. with Reflection-Tuning's selection).
        batch_size, max_length, threads: scorer settings.
        reverse: compute r-IFD as well.
        key: the score the decision uses ("ifd" or "rifd").
        min_value, max_value: keep rows with key in [min, max] (inclusive). Cherry LLM first
            discards pairs with IFD > 1 (the instruction does not help): ``max_value=1.0``.
        top_share: keep the best share of the rows in each ``run`` call (highest IFD first for
            "ifd", lowest first for "rifd"); the CLI passes the whole set in one call.
        prompts_dir: folder overriding ``ifd/prompt.j2`` / ``ifd/reverse.j2``.
        rescore: score again even if the record already has the key.
    """

    name: ClassVar[str] = "ifd"

    def __init__(
        self,
        *,
        model: str | None = None,
        scorer: LogProbModel | None = None,
        batch_size: int = 8,
        max_length: int = 1024,
        threads: int | None = None,
        reverse: bool = True,
        key: str = "ifd",
        min_value: float | None = None,
        max_value: float | None = None,
        top_share: float | None = None,
        prompts_dir: str | Path | None = None,
        rescore: bool = False,
    ) -> None:
        check_range(min_value, max_value, top_share)
        self.model = model
        self.batch_size = batch_size
        self.max_length = max_length
        self.threads = threads
        self.reverse = reverse
        self.key = key
        self.min_value = min_value
        self.max_value = max_value
        self.top_share = top_share
        self.prompts_dir = str(prompts_dir) if prompts_dir else None
        self.rescore = rescore
        self._scorer = scorer
        self._prompt = PromptTemplate("ifd", "prompt", prompts_dir)
        self._reverse_prompt = PromptTemplate("ifd", "reverse", prompts_dir)

    @property
    def per_record(self) -> bool:  # type: ignore[override]  # depends on parameters
        """True when each row's decision depends only on that row (no top share): recipes may
        then run this stage in resumable batches."""
        return self.top_share is None

    @property
    def prompt_hashes(self) -> dict[str, str]:
        return {t.key: t.sha256 for t in (self._prompt, self._reverse_prompt)}

    def score(self, records: Sequence[Record]) -> list[Record]:
        """The records with IFD scores written (existing ones reused unless ``rescore``)."""
        todo = [i for i, r in enumerate(records) if self.rescore or self.key not in r.scores]
        if not todo:
            return list(records)
        self.setup()
        assert self._scorer is not None
        pairs = [(records[i].prompt_text(), records[i].output) for i in todo]
        scores = score_ifd(
            pairs,
            self._scorer,
            reverse=self.reverse,
            prompt=self._prompt,
            reverse_prompt=self._reverse_prompt,
        )
        out = list(records)
        for i, s in zip(todo, scores, strict=True):
            scored = records[i].with_scores(**s.as_scores())
            out[i] = note_missing(scored, {k: s.missing.get(k) for k in ("ifd", "rifd")})
        return out

    def run(self, records: Sequence[Record], llm: LLM | None = None) -> StageResult:
        return decide_by_score(
            self.score(records),
            self.key,
            min_value=self.min_value,
            max_value=self.max_value,
            top_share=self.top_share,
            largest=self.key != "rifd",
        )
