"""How per-order votes become one preference for the model over the baseline.

Preferences follow AlpacaEval: in [1, 2], 2 = the model wins, 1 = the baseline wins, 1.5 = tie.

- ``mt_bench`` (Zheng et al. 2023, FastChat's llm_judge): the judge sees both orders; when the
  two verdicts agree that is the result, any disagreement (including win vs tie) is a tie.
- ``sedi`` (SeDi-Instruct, Kim et al. 2025; the Vicuna protocol used by Self-Instruct and
  Reflection-Tuning papers): per order a win (+1), tie (0) or loss (-1) from two scores; the
  sum's sign decides: wins both or wins one and ties the other -> Win; both ties or one win
  and one loss -> Tie; otherwise -> Lose.
- ``preference``: one (randomized) order; the continuous preference is kept as is.
- ``grade``: each output graded alone; the higher grade wins, equal grades tie.
"""

from __future__ import annotations

from collections.abc import Sequence

WIN, TIE, LOSE = "win", "tie", "lose"


def outcome(pref: float) -> str:
    """Win/tie/lose of a preference (AlpacaEval's discrete reading: > 1.5 is a win)."""
    return WIN if pref > 1.5 else LOSE if pref < 1.5 else TIE


def for_model(pref_second: float, model_is_second: bool) -> float:
    """A preference about the shown order, read from the model's side (AlpacaEval's 3 - x)."""
    return pref_second if model_is_second else 3.0 - pref_second


_VALUE = {WIN: 2.0, TIE: 1.5, LOSE: 1.0}
_SIGN = {WIN: 1, TIE: 0, LOSE: -1}


def mt_bench(prefs: Sequence[float]) -> float:
    """Both orders agree -> that outcome; they disagree -> tie."""
    outcomes = {outcome(p) for p in prefs}
    return _VALUE[outcomes.pop()] if len(outcomes) == 1 else 1.5


def sedi(prefs: Sequence[float]) -> float:
    """The sign of the summed per-order outcomes (+1 win, 0 tie, -1 loss)."""
    total = sum(_SIGN[outcome(p)] for p in prefs)
    return 2.0 if total > 0 else 1.0 if total < 0 else 1.5


def preference(prefs: Sequence[float]) -> float:
    """The continuous preference (the mean when a judge is asked more than once)."""
    return sum(prefs) / len(prefs)


def grade(model_score: float, baseline_score: float) -> float:
    """Single-answer grades compared: higher wins, equal ties."""
    if model_score == baseline_score:
        return 1.5
    return 2.0 if model_score > baseline_score else 1.0


COMBINE = {"mt_bench": mt_bench, "sedi": sedi, "preference": preference}
