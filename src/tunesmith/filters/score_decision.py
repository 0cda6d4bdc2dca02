"""Keep/drop decisions on a stored score: a range, or the top share of the rows given.

Scoring and deciding are separate (data-juicer's rule): a stage writes its score on every
record, then one of these decides, and every removal carries the score and a reason.

A missing score (None or NaN: nothing could be scored) is never in range and never among the
best: the row is rejected with the reason the scorer recorded in ``meta["missing_scores"]``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import ClassVar

from tunesmith.errors import ConfigError
from tunesmith.llm.client import LLM
from tunesmith.records import Record
from tunesmith.stages import Rejected, Stage, StageResult


def check_range(
    min_value: float | None, max_value: float | None, top_share: float | None = None
) -> None:
    """Validate decision parameters (ConfigError on nonsense)."""
    if min_value is not None and max_value is not None and min_value > max_value:
        raise ConfigError(f"min ({min_value}) is larger than max ({max_value})")
    if top_share is not None and not 0.0 < top_share <= 1.0:
        raise ConfigError(f"top share must be in (0, 1], got {top_share}")


def is_missing(value: object) -> bool:
    """True for a score that was not computed (None) or could not be (NaN)."""
    return value is None or (isinstance(value, float) and math.isnan(value))


def note_missing(record: Record, reasons: Mapping[str, str | None]) -> Record:
    """``record`` with the reasons of its missing scores noted in ``meta["missing_scores"]``
    (keys whose reason is None are cleared: they have a score now)."""
    old = dict(record.meta.get("missing_scores") or {})
    new = {**old, **{k: v for k, v in reasons.items() if v}}
    for key in (k for k, v in reasons.items() if not v):
        new.pop(key, None)
    if new == old:
        return record
    return record.with_meta(missing_scores=new)


def missing_reason(record: Record, key: str) -> str | None:
    """Why ``record`` has no ``key`` score, as the scorer noted it (None if not noted)."""
    notes = record.meta.get("missing_scores") or {}
    return notes.get(key) if isinstance(notes, Mapping) else None


def decide_by_score(
    records: Sequence[Record],
    key: str,
    *,
    min_value: float | None = None,
    max_value: float | None = None,
    top_share: float | None = None,
    largest: bool = True,
) -> StageResult:
    """Keep records whose ``scores[key]`` lies in [min_value, max_value], then the top share.

    Args:
        records: scored records (a missing or NaN score is rejected, with the noted reason).
        key: the score to decide on.
        min_value, max_value: inclusive bounds (None = open).
        top_share: keep only the best ceil(share * n) of the in-range rows *given here*
            (largest scores first when ``largest``, else smallest); ties broken by input order.
        largest: direction of "best" for top_share.
    """
    check_range(min_value, max_value, top_share)
    result = StageResult()
    in_range: list[Record] = []
    for rec in records:
        out = _out_of_range(rec, key, min_value, max_value)
        if out is None:
            in_range.append(rec)
        else:
            result.rejected.append(out)
    if top_share is None or not in_range:
        result.kept.extend(in_range)
        return result
    _keep_top_share(result, in_range, key, top_share, largest)
    return result


def _out_of_range(
    rec: Record, key: str, min_value: float | None, max_value: float | None
) -> Rejected | None:
    """The rejection of a row whose score is missing or outside the bounds, else None."""
    value = rec.scores.get(key)
    if value is None or is_missing(value):
        why = missing_reason(rec, key)
        reason = f"no {key} score ({why})" if why else f"no {key} score"
        return Rejected(rec, score=None, reason=reason)
    if min_value is not None and value < min_value:
        return Rejected(rec, value, f"{key} {value:.4g} < min {min_value}")
    if max_value is not None and value > max_value:
        return Rejected(rec, value, f"{key} {value:.4g} > max {max_value}")
    return None


def _keep_top_share(
    result: StageResult, in_range: list[Record], key: str, top_share: float, largest: bool
) -> None:
    """Keep the best ceil(share * n) rows of ``in_range`` (ties: input order), reject the rest
    with the cutoff score; both go into ``result`` in input order."""
    n_keep = math.ceil(top_share * len(in_range))
    sign = -1.0 if largest else 1.0
    order = sorted(range(len(in_range)), key=lambda i: (sign * in_range[i].scores[key], i))
    keep = set(order[:n_keep])
    cutoff = in_range[order[n_keep - 1]].scores[key]
    side = "top" if largest else "bottom"
    for i, rec in enumerate(in_range):
        if i in keep:
            result.kept.append(rec)
        else:
            value = rec.scores[key]
            reason = f"{key} {value:.4g} outside the {side} {top_share:g} (cutoff {cutoff:.4g})"
            result.rejected.append(Rejected(rec, value, reason))


class ScoreDecision(Stage):
    """A model-free stage that keeps rows by a score already on them (range and/or top share).

    Used to filter a scored file again without rescoring, and for global top-share decisions
    after a resumable scoring pass (give it all rows in one ``run`` call).

    Args:
        key: the score to decide on.
        min_value, max_value: inclusive bounds.
        top_share: keep the best share of the rows given in one call.
        largest: True if larger scores are better (for top_share).
    """

    name: ClassVar[str] = "score_decision"

    def __init__(
        self,
        *,
        key: str,
        min_value: float | None = None,
        max_value: float | None = None,
        top_share: float | None = None,
        largest: bool = True,
    ) -> None:
        check_range(min_value, max_value, top_share)
        self.key = key
        self.min_value = min_value
        self.max_value = max_value
        self.top_share = top_share
        self.largest = largest

    @property
    def per_record(self) -> bool:  # type: ignore[override]  # depends on parameters
        """A range decision is per row; a top share needs all rows in one call."""
        return self.top_share is None

    def run(self, records: Sequence[Record], llm: LLM | None = None) -> StageResult:
        return decide_by_score(
            records,
            self.key,
            min_value=self.min_value,
            max_value=self.max_value,
            top_share=self.top_share,
            largest=self.largest,
        )
