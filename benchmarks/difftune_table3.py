"""DiffTune Table 3 protocol on the data we have (Wang & Liu 2023): train, sample per strategy.

Train a DiffTune model on Alpaca 9K + Dolly 3K (``../shared/data``) minus a seeded 10% held-out
split, sample instructions with each noise strategy, filter at perplexity 150 (SmolLM2 here; the
paper's threshold was set for GPT2-Large), and report rep-2/3/4, diversity, Self-BLEU,
memorization, MAUVE and perplexity per strategy beside the held-out split.

Run (``benchmarks/difftune.py --table3`` calls this)::

    TUNESMITH_THREADS=1 .venv/bin/python benchmarks/difftune_table3.py --work /tmp/dt_table3 \\
        --preset small --samples 1000 [--write]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

REPO = Path(__file__).resolve().parents[1]
STRATEGIES = ("gaussian", "student_t", "high_variance", "all_high_variance")


def data_dir() -> Path:
    """``../shared/data`` beside the checkout (or $TUNESMITH_SHARED_DATA)."""
    for cand in (os.environ.get("TUNESMITH_SHARED_DATA"), REPO.parent / "shared" / "data",
                 REPO.parent.parent / "shared" / "data"):  # fmt: skip
        if cand and Path(cand).is_dir():
            return Path(cand)
    raise SystemExit("shared data not found (set TUNESMITH_SHARED_DATA)")


def split(seed: int = 0, test_share: float = 0.1) -> tuple[list[Any], list[Any]]:
    """Alpaca 9K + Dolly 3K, shuffled with ``seed``: (train, held-out test)."""
    from tunesmith.io import read_records

    d = data_dir()
    rows = read_records(d / "alpaca_random_9k" / "random_9k.json")
    rows += read_records(d / "dolly_3k_alpagasus" / "dolly_3k.json")
    random.Random(seed).shuffle(rows)
    n_test = int(len(rows) * test_share)
    return rows[n_test:], rows[:n_test]


def train(work: Path, preset: str, **overrides: Any) -> dict[str, Any]:
    from tunesmith.generate.difftune.config import DiffTuneConfig
    from tunesmith.generate.difftune.train import train_difftune

    train_rows, _ = split()
    cfg = DiffTuneConfig.from_preset(preset, **overrides)
    t0 = time.time()
    summary = train_difftune(
        train_rows, work / "model_run", cfg, data_source="alpaca9k+dolly3k[train]"
    )
    summary["wall_s"] = time.time() - t0
    return summary


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--work", type=Path, default=Path("/tmp/difftune_table3"))
    ap.add_argument("--preset", default="small")
    ap.add_argument("--samples", type=int, default=1000, help="instructions per strategy")
    ap.add_argument("--train-only", action="store_true")
    ap.add_argument("--write", action="store_true", help="replace the section in BENCHMARKS.md")
    args = ap.parse_args()
    print(json.dumps(train(args.work, args.preset)), flush=True)
    if args.train_only:
        return


if __name__ == "__main__":
    main()
