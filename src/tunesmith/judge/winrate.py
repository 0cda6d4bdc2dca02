"""AlpacaEval's win-rate statistics and the position-bias numbers of a pairwise judge.

Win rate = mean(preference - 1) x 100 over the judged examples, standard error = the sample
standard deviation (ddof=1) / sqrt(n) x 100, discrete win rate = (wins + ties / 2) / n x 100 with
a win when the preference is above 1.5 (Dubois et al. 2023, AlpacaFarm/AlpacaEval; the same
numbers as ``alpaca_eval.metrics.get_winrate``). Unreadable judgments (None/NaN) are left out and
counted as ``failed``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from tunesmith.judge.rules import LOSE, TIE, WIN, for_model, outcome


def _valid(prefs: Iterable[float | None]) -> list[float]:
    return [float(p) for p in prefs if p is not None and not math.isnan(p) and 1 <= p <= 2]


def win_rate(prefs: Sequence[float | None]) -> dict[str, Any]:
    """``win_rate``, ``standard_error``, ``discrete_win_rate``, ``n``, wins/ties/losses, failed."""
    vals = _valid(prefs)
    n = len(vals)
    wins = sum(p > 1.5 for p in vals)
    ties = sum(p == 1.5 for p in vals)
    out: dict[str, Any] = {
        "n": n,
        "wins": wins,
        "ties": ties,
        "losses": n - wins - ties,
        "failed": len(prefs) - n,
        "win_rate": math.nan,
        "standard_error": math.nan,
        "discrete_win_rate": math.nan,
    }
    if n == 0:
        return out
    x = [p - 1 for p in vals]
    mean = sum(x) / n
    out["win_rate"] = mean * 100
    out["discrete_win_rate"] = (wins + ties / 2) / n * 100
    if n > 1:
        var = sum((v - mean) ** 2 for v in x) / (n - 1)
        out["standard_error"] = math.sqrt(var / n) * 100
    return out


def by_category(
    prefs: Sequence[float | None], categories: Sequence[str | None]
) -> dict[str, dict[str, Any]]:
    """Win-rate tables per category (SeDi-Instruct's Win/Tie/Lose per test set)."""
    groups: dict[str, list[float | None]] = {}
    for p, cat in zip(prefs, categories, strict=True):
        groups.setdefault(cat or "(none)", []).append(p)
    return {cat: win_rate(ps) for cat, ps in sorted(groups.items())}


def position_bias(orders: Sequence[Sequence[Mapping[str, Any]]]) -> dict[str, Any]:
    """How often each shown position wins, and how often the two orders of a pair disagree.

    Args:
        orders: per judgment, its parsed calls as ``{"pref_second": float | None,
            "model_is_second": bool}`` (two for a both-orders judge, one otherwise).
    """
    first = second = ties = calls = pairs = disagree = 0
    for calls_of_one in orders:
        prefs = [o for o in calls_of_one if o.get("pref_second") is not None]
        for o in prefs:
            calls += 1
            kind = outcome(float(o["pref_second"]))
            first += kind == LOSE  # the second output lost: the first position won
            second += kind == WIN
            ties += kind == TIE
        if len(prefs) == 2:
            pairs += 1
            a, b = (
                outcome(for_model(float(o["pref_second"]), o["model_is_second"])) for o in prefs
            )
            disagree += a != b
    return {
        "calls": calls,
        "first_position_wins": first / calls if calls else math.nan,
        "second_position_wins": second / calls if calls else math.nan,
        "position_ties": ties / calls if calls else math.nan,
        "pairs_judged_both_orders": pairs,
        "order_disagreement_rate": disagree / pairs if pairs else math.nan,
    }
