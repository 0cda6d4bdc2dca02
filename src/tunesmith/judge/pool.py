"""AlpacaFarm's simulated annotator pool (Dubois et al. 2023, "AlpacaFarm").

A pool is several judges (different prompts, models or temperatures). Each example is judged by
one of them, chosen by a seeded hash of the example, so the pool's variability stands in for the
variability between human annotators. For training annotations AlpacaFarm adds label noise:
with p = 0.25 a label is flipped, implemented as keeping it with probability 1 - 2p and otherwise
replacing it with a fair coin (so half the labels are random and a quarter end up flipped).

Noise is applied to a judgment *after* it comes back from the LLM client: the request cache only
ever holds the annotator's real reply, so removing the noise (or changing its seed) costs no call.

A pool file::

    label_noise: 0.25
    seed: 0
    annotators:
      - {judge: pairwise_both_orders, model: gpt-4o-mini, temperature: 1.0}
      - {judge: score_pair_both_orders, backend: openai, model: other-model}
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from tunesmith.errors import ConfigError
from tunesmith.judge.rules import outcome
from tunesmith.judge.spec import JudgeSpec, load_judge

DEFAULT_NOISE = 0.25
_ANNOTATOR_KEYS = ("judge", "name", "backend", "model", "temperature", "options")


@dataclasses.dataclass(frozen=True)
class Annotator:
    """One simulated annotator: a judge file with optional backend/model/temperature changes."""

    name: str
    spec: JudgeSpec
    backend: str | None = None
    model: str | None = None
    options: Mapping[str, Any] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass(frozen=True)
class Pool:
    annotators: tuple[Annotator, ...]
    label_noise: float = DEFAULT_NOISE
    seed: int = 0

    def pick(self, example_key: str) -> Annotator:
        """The annotator of one example: a seeded hash of the example, stable across runs."""
        return self.annotators[
            _hash_int(self.seed, "annotator", example_key) % len(self.annotators)
        ]


def _hash_int(seed: int, purpose: str, key: str) -> int:
    digest = hashlib.sha256(f"{seed}\x1f{purpose}\x1f{key}".encode()).digest()
    return int.from_bytes(digest[:8], "big")


def _uniform(seed: int, purpose: str, key: str) -> float:
    return _hash_int(seed, purpose, key) / 2**64


def add_label_noise(pref: float, key: str, p: float, seed: int = 0) -> tuple[float, bool]:
    """AlpacaFarm's noise: keep ``pref`` with probability 1 - 2p, else a seeded fair coin
    (1.0 or 2.0). Returns (label, whether it was replaced by the coin)."""
    if not 0 <= p <= 0.5:
        raise ConfigError(f"label_noise must be in [0, 0.5], got {p}")
    if _uniform(seed, "keep", key) < 1 - 2 * p:
        return pref, False
    return (2.0 if _uniform(seed, "coin", key) < 0.5 else 1.0), True


def agreement(labels: Sequence[float], reference: Sequence[float]) -> dict[str, float]:
    """Agreement of the pool with a reference annotator (AlpacaFarm's human-agreement table):
    the share of examples with the same win/tie/lose outcome, and 1 - mean |a - b| (the
    continuous agreement alpaca_eval reports)."""
    pairs = list(zip(labels, reference, strict=True))
    if not pairs:
        return {"n": 0, "agreement": float("nan"), "absolute_agreement": float("nan")}
    same = sum(outcome(a) == outcome(b) for a, b in pairs)
    close = sum(1 - abs(a - b) for a, b in pairs)
    return {
        "n": len(pairs),
        "agreement": same / len(pairs),
        "absolute_agreement": close / len(pairs),
    }


def load_pool(path: str | Path) -> Pool:
    """Read a pool YAML file (annotators, label_noise, seed)."""
    p = Path(path)
    try:
        raw = yaml.safe_load(p.read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"{p}: cannot read pool file ({exc})") from None
    items = raw.get("annotators") if isinstance(raw, dict) else None
    if not isinstance(items, list) or not items:
        raise ConfigError(f"{p}: a pool needs a non-empty 'annotators' list")
    annotators = []
    for i, item in enumerate(items):
        if not isinstance(item, dict) or "judge" not in item:
            raise ConfigError(f"{p}: annotators[{i}] needs a 'judge'")
        unknown = set(item) - set(_ANNOTATOR_KEYS)
        if unknown:
            raise ConfigError(f"{p}: annotators[{i}]: unknown key '{sorted(unknown)[0]}'")
        judge = str(item["judge"])
        spec = load_judge(p.parent / judge if judge.endswith((".yaml", ".yml")) else judge)
        if "temperature" in item:
            spec = dataclasses.replace(
                spec, sampling={**spec.sampling, "temperature": float(item["temperature"])}
            )
        annotators.append(
            Annotator(
                name=str(item.get("name") or f"{i}:{spec.name}"),
                spec=spec,
                backend=item.get("backend"),
                model=item.get("model"),
                options=dict(item.get("options") or {}),
            )
        )
    noise = float(raw.get("label_noise", DEFAULT_NOISE))
    add_label_noise(1.5, "", noise)  # validates the range
    return Pool(tuple(annotators), label_noise=noise, seed=int(raw.get("seed", 0)))
