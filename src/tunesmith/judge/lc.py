"""Length-controlled win rate: AlpacaEval 2's GLM, fitted here with numpy on any evaluation set.

Dubois et al. 2024 ("Length-Controlled AlpacaEval") model the probability that the judge prefers
the model over the baseline on instruction i as::

    P(model wins | i) = sigmoid(theta_len * tanh(delta_len_i / std(delta_len))
                                + theta_diff * difficulty_i + theta_model)

fitted by logistic regression on the soft preferences (pref - 1 in [0, 1]) with the penalty
strength chosen by cross-validation, and report the mean prediction at zero length difference
(``theta_len`` term dropped) x 100.

How this differs from ``alpaca_eval``'s published procedure, and why:

- Instruction difficulty is not downloaded from the Hub (alpaca_eval's is fitted on its 805
  prompts, in order, so it is valid only there). Here it is read from a user file, or estimated
  from the judgments at hand: for one model, from the *other* models judged against the same
  baseline on the same instruction (leave-one-model-out, so a judgment never predicts itself);
  with no other model it is 0 and the GLM keeps only the length and model terms.
- No "gamed baseline" rows (they are Hub data too), so no regularization towards them.
- An L2 penalty solved by Newton's method (a strictly convex problem with one answer, so a
  direct scikit-learn fit gives the same numbers) instead of liblinear's L1; CV folds group the
  rows of one instruction, the grid is scikit-learn's default ``logspace(-4, 4, 10)``, the
  score is the held-out soft log-loss.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

DEFAULT_CS = tuple(float(c) for c in np.logspace(-4, 4, 10))


def features(
    model_lens: Sequence[float],
    baseline_lens: Sequence[float],
    difficulty: Sequence[float] | np.ndarray,
) -> np.ndarray:
    """Design matrix ``[tanh(standardized length difference), difficulty, 1]`` (no intercept
    beyond the model term, as in the paper's formula)."""
    delta = np.asarray(model_lens, float) - np.asarray(baseline_lens, float)
    sd = float(np.std(delta, ddof=1)) if len(delta) > 1 else 0.0
    std_delta = delta / sd if sd > 0 else np.zeros_like(delta)
    return np.column_stack([np.tanh(std_delta), np.asarray(difficulty, float), np.ones(len(delta))])


def fit_soft_logistic(
    x: np.ndarray, y: np.ndarray, c: float, iters: int = 100, start: np.ndarray | None = None
) -> np.ndarray:
    """Minimize ``C * sum_i logloss(y_i, sigmoid(x_i . w)) + ||w||^2 / 2`` by Newton's method.

    ``y`` are probabilities (soft labels); the problem equals scikit-learn's weighted logistic
    regression on each row duplicated with label 1 (weight y) and label 0 (weight 1 - y). The
    problem is strictly convex, so ``start`` (a warm start) changes the speed, not the answer.
    """
    w = np.zeros(x.shape[1]) if start is None else start.copy()
    eye = np.eye(x.shape[1])
    for _ in range(iters):
        p = _sigmoid(x @ w)
        grad = c * x.T @ (p - y) + w
        hess = c * (x.T * (p * (1 - p))) @ x + eye
        step = np.linalg.solve(hess, grad)
        w -= step
        if float(np.max(np.abs(step))) < 1e-11:
            break
    return w


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return np.exp(-np.logaddexp(0.0, -z))


def soft_log_loss(y: np.ndarray, p: np.ndarray) -> float:
    p = np.clip(p, 1e-15, 1 - 1e-15)
    return float(-np.mean(y * np.log(p) + (1 - y) * np.log(1 - p)))


def fold_of(groups: Sequence[str], n_splits: int) -> np.ndarray:
    """Fold index per row: the rows of one group (instruction) share a fold, groups dealt
    round-robin in order of first appearance."""
    order: dict[str, int] = {}
    for g in groups:
        order.setdefault(g, len(order))
    return np.asarray([order[g] % n_splits for g in groups])


def choose_c(
    x: np.ndarray, y: np.ndarray, folds: np.ndarray, cs: Sequence[float] = DEFAULT_CS
) -> tuple[float, list[float]]:
    """The C with the lowest mean held-out soft log-loss over the folds (first on ties)."""
    ks = np.unique(folds)
    per_c: list[list[float]] = [[] for _ in cs]
    for k in ks:
        train, test = folds != k, folds == k
        w = None
        for i, c in enumerate(cs):  # the grid ascends: each fit warm-starts the next
            w = fit_soft_logistic(x[train], y[train], c, start=w)
            per_c[i].append(soft_log_loss(y[test], _sigmoid(x[test] @ w)))
    losses = [float(np.mean(v)) for v in per_c]
    return float(cs[int(np.argmin(losses))]), losses


def length_controlled_win_rate(
    prefs: Sequence[float],
    model_lens: Sequence[float],
    baseline_lens: Sequence[float],
    *,
    difficulty: Sequence[float] | None = None,
    groups: Sequence[str] | None = None,
    n_splits: int = 5,
    cs: Sequence[float] = DEFAULT_CS,
) -> dict[str, Any]:
    """The LC win rate of judged pairs (preferences in [1, 2], lengths in characters).

    Returns ``lc_win_rate`` (x 100), the fitted ``weights`` and the chosen ``C``.
    """
    n = len(prefs)
    if n < 2:
        return {"lc_win_rate": math.nan, "weights": {}, "C": None}
    diff = np.zeros(n) if difficulty is None else np.asarray(difficulty, float)
    x = features(model_lens, baseline_lens, diff)
    y = np.asarray(prefs, float) - 1.0
    keys = list(groups) if groups is not None else [str(i) for i in range(n)]
    k = min(n_splits, len(set(keys)))
    c = choose_c(x, y, fold_of(keys, k), cs)[0] if k >= 2 else 1.0
    w = fit_soft_logistic(x, y, c)
    at_zero = x.copy()
    at_zero[:, 0] = 0.0  # predict as if the two outputs had the same length
    return {
        "lc_win_rate": float(np.mean(_sigmoid(at_zero @ w)) * 100),
        "weights": {"length": float(w[0]), "difficulty": float(w[1]), "model": float(w[2])},
        "C": c,
    }


def estimate_difficulty(
    prefs_by_model: Mapping[str, Mapping[str, float]], model: str
) -> dict[str, float]:
    """Per instruction, how hard it is to beat the baseline, from the *other* models' judgments:
    the logit of their mean baseline-win probability (smoothed, clipped to [0.025, 0.975])."""
    others = [p for m, p in prefs_by_model.items() if m != model]
    out: dict[str, float] = {}
    for key in prefs_by_model.get(model, {}):
        vals = [float(p[key]) - 1 for p in others if key in p]
        if not vals:
            out[key] = 0.0
            continue
        lose = float(np.clip(1 - (sum(vals) + 0.5) / (len(vals) + 1), 0.025, 0.975))
        out[key] = math.log(lose / (1 - lose))
    return out
