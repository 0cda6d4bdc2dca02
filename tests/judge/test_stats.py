"""Win rates equal alpaca_eval's get_winrate; the LC win rate equals a direct scikit-learn fit of
the same GLM; AlpacaFarm's label noise replaces 2p of the labels."""

from __future__ import annotations

import math
import sys
import types

import numpy as np
import pytest

from tunesmith.judge import lc
from tunesmith.judge.pool import add_label_noise, agreement
from tunesmith.judge.winrate import by_category, position_bias, win_rate


def _alpaca_eval_get_winrate():  # type: ignore[no-untyped-def]
    pytest.importorskip("pandas")
    # alpaca_eval imports pkg_resources, which setuptools >= 81 no longer ships; it uses it only
    # for version strings we never touch.
    sys.modules.setdefault("pkg_resources", types.ModuleType("pkg_resources"))
    try:
        from alpaca_eval.metrics import get_winrate
    except ImportError as exc:
        pytest.skip(f"alpaca_eval not importable: {exc}")
    return get_winrate


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_win_rate_equals_alpaca_eval(seed: int) -> None:
    get_winrate = _alpaca_eval_get_winrate()
    rng = np.random.default_rng(seed)
    prefs: list[float | None] = list(rng.uniform(1, 2, 40))
    prefs += [1.0] * 7 + [2.0] * 5 + [1.5] * 6 + [None]  # discrete labels, ties, a failure
    ours = win_rate(prefs)
    ref = get_winrate([{"preference": p} for p in prefs])
    assert ours["win_rate"] == pytest.approx(float(ref["win_rate"]), abs=1e-9)
    assert ours["standard_error"] == pytest.approx(float(ref["standard_error"]), abs=1e-9)
    assert ours["discrete_win_rate"] == pytest.approx(float(ref["discrete_win_rate"]), abs=1e-9)
    assert ours["wins"] == ref["n_wins"] and ours["losses"] == ref["n_wins_base"]
    assert ours["ties"] == ref["n_draws"] and ours["n"] == ref["n_total"]
    assert ours["failed"] == 1


def test_win_rate_hand_computed() -> None:
    out = win_rate([2.0, 1.0, 1.5, 1.75])
    assert out["win_rate"] == pytest.approx(56.25)
    x = [1, 0, 0.5, 0.75]
    sd = math.sqrt(sum((v - 0.5625) ** 2 for v in x) / 3)
    assert out["standard_error"] == pytest.approx(sd / 2 * 100)
    assert out["discrete_win_rate"] == pytest.approx((2 + 0.5) / 4 * 100)
    assert by_category([2.0, 1.0, 1.5], ["a", "b", "a"])["a"]["wins"] == 1


def test_position_bias_counts_positions_and_disagreement() -> None:
    calls = [
        [
            {"pref_second": 2.0, "model_is_second": True},
            {"pref_second": 2.0, "model_is_second": False},
        ],
        [
            {"pref_second": 1.0, "model_is_second": True},
            {"pref_second": 2.0, "model_is_second": False},
        ],
        [{"pref_second": 1.5, "model_is_second": True}],
    ]
    out = position_bias(calls)
    assert out["calls"] == 5
    assert out["second_position_wins"] == pytest.approx(3 / 5)
    assert out["first_position_wins"] == pytest.approx(1 / 5)
    # pair 1: model wins then loses -> disagree; pair 2: model loses twice -> agree
    assert out["order_disagreement_rate"] == pytest.approx(1 / 2)


def _glm_data(n: int = 120, seed: int = 0) -> tuple[list[float], list[int], list[int], list[float]]:
    rng = np.random.default_rng(seed)
    model_len = rng.integers(50, 2000, n)
    base_len = rng.integers(50, 1500, n)
    diff = rng.normal(0, 1, n)
    z = (
        0.8 * np.tanh((model_len - base_len) / np.std(model_len - base_len, ddof=1))
        - 0.5 * diff
        + 0.2
    )
    prefs = 1 + np.clip(1 / (1 + np.exp(-z)) + rng.normal(0, 0.15, n), 0, 1)
    return list(prefs), list(model_len), list(base_len), list(diff)


def _sk_fit(x: np.ndarray, y: np.ndarray, c: float) -> np.ndarray:
    """The same GLM with scikit-learn: every row twice (label 1 weight y, label 0 weight 1-y)."""
    from sklearn.linear_model import LogisticRegression

    xx = np.vstack([x, x])
    yy = np.concatenate([np.ones(len(y)), np.zeros(len(y))])
    sw = np.concatenate([y, 1 - y])
    model = LogisticRegression(C=c, fit_intercept=False, tol=1e-12, max_iter=10000)
    model.fit(xx, yy, sample_weight=sw)
    return model.coef_[0]


@pytest.mark.parametrize("c", [0.01, 1.0, 100.0])
def test_glm_fit_equals_sklearn(c: float) -> None:
    pytest.importorskip("sklearn")
    prefs, ml, bl, diff = _glm_data()
    x = lc.features(ml, bl, diff)
    y = np.asarray(prefs) - 1
    np.testing.assert_allclose(lc.fit_soft_logistic(x, y, c), _sk_fit(x, y, c), atol=1e-5)


def test_lc_win_rate_equals_direct_sklearn_cv_fit() -> None:
    pytest.importorskip("sklearn")
    from sklearn.metrics import log_loss

    prefs, ml, bl, diff = _glm_data(seed=3)
    groups = [f"instr-{i}" for i in range(len(prefs))]
    ours = lc.length_controlled_win_rate(prefs, ml, bl, difficulty=diff, groups=groups)
    # Independently: the same features, the same folds, C chosen by held-out soft log-loss
    # over sklearn fits, refit on everything, predicted at zero length difference.
    x = np.column_stack([
        np.tanh((np.subtract(ml, bl)) / np.std(np.subtract(ml, bl), ddof=1)), diff, np.ones(len(ml))
    ])  # fmt: skip
    y = np.asarray(prefs) - 1
    folds = np.arange(len(y)) % 5
    best_c, best_loss = None, np.inf
    for c in np.logspace(-4, 4, 10):
        losses = []
        for k in range(5):
            w = _sk_fit(x[folds != k], y[folds != k], c)
            p = 1 / (1 + np.exp(-(x[folds == k] @ w)))
            yk = y[folds == k]
            losses.append(log_loss(np.r_[np.ones(len(yk)), np.zeros(len(yk))], np.r_[p, p],
                                   sample_weight=np.r_[yk, 1 - yk], labels=[0, 1]))  # fmt: skip
        if np.mean(losses) < best_loss - 1e-12:
            best_c, best_loss = c, float(np.mean(losses))
    assert ours["C"] == pytest.approx(best_c)
    w = _sk_fit(x, y, best_c)
    x0 = x.copy()
    x0[:, 0] = 0
    expected = float(np.mean(1 / (1 + np.exp(-(x0 @ w)))) * 100)
    assert ours["lc_win_rate"] == pytest.approx(expected, abs=1e-4)
    assert ours["weights"]["length"] > 0  # longer model answers were preferred in the data


def test_lc_removes_a_pure_length_effect() -> None:
    # The judge prefers whichever answer is longer, nothing else: raw win rate is high because
    # the model is usually longer; at equal length the GLM predicts about a coin flip.
    rng = np.random.default_rng(7)
    ml = rng.integers(100, 3000, 300)
    bl = rng.integers(100, 1200, 300)
    prefs = [2.0 if m > b else 1.0 for m, b in zip(ml, bl, strict=True)]
    raw = win_rate(prefs)["win_rate"]
    fit = lc.length_controlled_win_rate(prefs, list(ml), list(bl))
    assert raw > 70 and abs(fit["lc_win_rate"] - 50) < abs(raw - 50)


def test_difficulty_leaves_the_model_out() -> None:
    prefs = {"a": {"q1": 2.0, "q2": 1.0}, "b": {"q1": 1.0, "q2": 1.0}}
    d = lc.estimate_difficulty(prefs, "a")
    assert d["q1"] > 0 and d["q1"] == d["q2"]  # only b's judgments count, and b lost both
    assert lc.estimate_difficulty({"a": {"q": 2.0}}, "a") == {"q": 0.0}


@pytest.mark.parametrize("p", [0.25, 0.1])
def test_label_noise_replaces_2p_of_labels(p: float) -> None:
    n = 10_000
    draws = [add_label_noise(2.0, f"example-{i}", p, seed=0) for i in range(n)]
    replaced = sum(r for _, r in draws) / n
    assert abs(replaced - 2 * p) <= 0.01
    flipped = sum(label == 1.0 for label, _ in draws) / n
    assert abs(flipped - p) <= 0.015  # half the coins land on the other label
    assert draws == [add_label_noise(2.0, f"example-{i}", p, seed=0) for i in range(n)]


def test_agreement() -> None:
    out = agreement([2.0, 1.0, 1.5, 2.0], [2.0, 2.0, 1.5, 1.75])
    assert out["agreement"] == pytest.approx(3 / 4)
    assert out["absolute_agreement"] == pytest.approx(1 - (0 + 1 + 0 + 0.25) / 4)


def test_example_pool_file_loads_and_spreads_examples() -> None:
    from pathlib import Path

    from tunesmith.judge.pool import load_pool

    pool = load_pool(Path(__file__).resolve().parents[2] / "examples/judges/alpacafarm_pool.yaml")
    assert pool.label_noise == 0.25 and len(pool.annotators) == 4
    assert pool.annotators[1].spec.sampling["temperature"] == 0.7
    picks = [pool.pick(f"example {i}").name for i in range(2000)]
    counts = {a.name: picks.count(a.name) for a in pool.annotators}
    assert all(400 < n < 600 for n in counts.values())  # a seeded hash spreads them evenly
