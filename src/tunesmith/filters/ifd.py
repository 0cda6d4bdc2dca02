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
``response``), replaceable with ``--prompts-dir``. The filtering stage is
:mod:`tunesmith.filters.ifd_stage`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence

from tunesmith.llm.logprob import LogProbModel, TextScore
from tunesmith.prompts import PromptTemplate


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
