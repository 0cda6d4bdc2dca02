"""Benchmark: the approximate (MinHash/LSH + exact ROUGE-L) novelty filter vs the exact one.

Issue 15.3 asks for an approximate mode for 1M+ rows whose recall against the exact greedy
ROUGE-L filter (Self-Instruct 0.7, SeDi-Instruct 0.85) is measured. For each input and threshold
both filters decide the same texts in order (pool = the 175 Self-Instruct seeds + everything
kept); each run is a separate child process so its peak memory (``ru_maxrss`` minus the RSS
after the texts are built) is its own. Reported: CPU and wall seconds and their ratio, peak
memory, and the approximate filter's rejections against the exact one's: recall (share of exact
rejections also made) and precision (share of approximate rejections the exact filter makes; 1.0
unless a missed rejection cascades, see ``tunesmith/filters/minhash_novelty.py``).

Inputs:
* ``real``: the 52K real texts of ``benchmarks/novelty.py`` (Alpaca 9K, Dolly 3K, seeds and
  user-oriented instructions, their near-duplicate "instruction + first input sentence", and
  single input/output sentences; nothing generated).
* ``scaled``: those 63K real texts completed to ``--n-scaled`` rows with *synthetic* ones built
  from them (seeded): 45% the first half of one real text + the second half of another, 45% a
  real text with 40% of its words replaced by words drawn from the corpus' word frequencies, 10%
  one to three word edits of an earlier row (near-duplicates, so rejections keep occurring).

Optional: when ``datasketch`` is importable, its ``MinHash.bulk`` + ``MinHashLSH`` with the same
bands/rows and the same exact verification is timed on the real input (the library we did not
use; see BENCHMARKS.md).

Usage: ``python benchmarks/novelty_approx.py [--n-scaled 200000] [--cases real:0.7,scaled:0.85]
[--write]`` (``--write`` rewrites the BENCHMARKS.md section with the cases run).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from tunesmith.filters.minhash_novelty import MinHashNoveltyFilter, lsh_params
from tunesmith.filters.novelty import NoveltyFilter
from tunesmith.filters.rouge import rouge_l_f, rouge_tokenize

sys.path.insert(0, str(Path(__file__).resolve().parent))
from novelty import DATA, REPO, build_large, load_rows


def build_scaled(real: list[str], n: int, seed: int = 0) -> list[str]:
    """``real`` followed by synthetic rows made of its words (see the module docstring)."""
    rng = random.Random(seed)
    words = [w for text in real for w in text.split()]
    out = list(real)
    while len(out) < n:
        kind = rng.random()
        if kind < 0.45:
            a, b = rng.choice(real).split(), rng.choice(real).split()
            text = a[: len(a) // 2] + b[len(b) // 2 :]
        elif kind < 0.9:
            text = [
                w if rng.random() > 0.4 else rng.choice(words) for w in rng.choice(real).split()
            ]
        else:
            text = rng.choice(out).split() or ["empty"]
            for _ in range(rng.randint(1, 3)):
                text[rng.randrange(len(text))] = rng.choice(words)
        out.append(" ".join(text))
    return out


def texts_for(name: str, n_scaled: int) -> list[str]:
    if name == "real":
        return build_large(load_rows(), 52000)
    return build_scaled(build_large(load_rows(), 63253), n_scaled)


def child(name: str, n_scaled: int, threshold: float, mode: str, out: Path) -> None:
    """One measurement in this process: decisions to ``out`` (.npy), numbers as a JSON line."""
    seeds = [r["instruction"] for r in load_rows()["seeds"]]
    texts = texts_for(name, n_scaled)
    base_kb = _rss_kb()
    cpu, wall = time.process_time(), time.perf_counter()
    if mode == "datasketch":
        kept = datasketch_filter(texts, seeds, threshold)
    else:
        flt = NoveltyFilter(threshold, pool=seeds) if mode == "exact" else None
        flt = flt or MinHashNoveltyFilter(threshold, pool=seeds)
        kept = [d.kept for d in flt.check(texts)]
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    np.save(out, np.array(kept, dtype=bool))
    peak_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - base_kb) / 1024
    print(json.dumps({"cpu": cpu, "wall": wall, "peak_mb": peak_mb, "rows": len(texts)}))


def datasketch_filter(texts: list[str], seeds: list[str], threshold: float) -> list[bool]:
    """The same greedy filter on datasketch's MinHash + MinHashLSH (same bands/rows/features)."""
    from datasketch import MinHash, MinHashLSH

    bands, rows = lsh_params(threshold)
    lsh = MinHashLSH(num_perm=bands * rows, params=(bands, rows))
    tokens = [rouge_tokenize(t) for t in [*seeds, *texts]]
    sigs = MinHash.bulk([_occurrences(t) for t in tokens], num_perm=bands * rows)
    pool: list[list[str]] = []
    kept = []
    for i, (tk, sig) in enumerate(zip(tokens, sigs, strict=True)):
        near = lsh.query(sig) if tk and i >= len(seeds) else []
        best = max((rouge_l_f(tk, pool[j]) for j in near), default=0.0)
        if best <= threshold:
            if tk:
                lsh.insert(len(pool), sig, check_duplication=False)
            pool.append(tk)
        if i >= len(seeds):
            kept.append(best <= threshold)
    return kept


def _occurrences(tokens: list[str]) -> list[bytes]:
    seen: dict[str, int] = {}
    out = []
    for token in tokens:
        k = seen[token] = seen.get(token, -1) + 1
        out.append(f"{token}\x00{k}".encode())
    return out


def _rss_kb() -> int:
    with open("/proc/self/status", encoding="ascii") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def measure(name: str, n_scaled: int, threshold: float, mode: str, tmp: Path) -> dict[str, object]:
    out = tmp / f"{name}-{threshold}-{mode}.npy"
    cmd = [sys.executable, __file__, "--child", name, str(n_scaled), str(threshold), mode, str(out)]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=True)
    result: dict[str, object] = json.loads(proc.stdout.strip().splitlines()[-1])
    result["kept"] = np.load(out)
    return result


def row(
    name: str, threshold: float, exact: dict[str, object], approx: dict[str, object], label: str
) -> str:
    want, got = ~np.asarray(exact["kept"]), ~np.asarray(approx["kept"])
    both = int(np.sum(want & got))
    recall = both / want.sum() if want.any() else 1.0
    precision = both / got.sum() if got.any() else 1.0
    ratio = float(exact["cpu"]) / float(approx["cpu"])  # type: ignore[arg-type]
    return (
        f"| {name} | {exact['rows']:,} | {threshold} | {label} | {int(want.sum()):,} | {int(got.sum()):,} "
        f"| {recall:.4f} | {precision:.4f} | {exact['cpu']:.1f} ({exact['wall']:.1f}) "
        f"| {approx['cpu']:.1f} ({approx['wall']:.1f}) | **{ratio:.2f}x** "
        f"| {exact['peak_mb']:.0f} / {approx['peak_mb']:.0f} |"
    )


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n-scaled", type=int, default=200000)
    ap.add_argument("--write", action="store_true", help="write the table into BENCHMARKS.md")
    ap.add_argument(
        "--cases",
        default="real:0.7,real:0.85,scaled:0.7",
        help="input:threshold pairs to run, e.g. scaled:0.7 alone at --n-scaled 1000000",
    )
    ap.add_argument("--child", nargs=5, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        name, n, t, mode, out = args.child
        child(name, int(n), float(t), mode, Path(out))
        return 0
    if not DATA.exists():
        print(f"shared data not found at {DATA}: skipped", file=sys.stderr)
        return 0
    try:
        import datasketch  # noqa: F401

        has_datasketch = True
    except ImportError:
        has_datasketch = False
    lines = []
    with tempfile.TemporaryDirectory() as tmp:
        for case in args.cases.split(","):
            name, threshold = case.split(":")[0], float(case.split(":")[1])
            exact = measure(name, args.n_scaled, threshold, "exact", Path(tmp))
            approx = measure(name, args.n_scaled, threshold, "minhash", Path(tmp))
            bands, rows = lsh_params(threshold)
            lines.append(row(name, threshold, exact, approx, f"tunesmith minhash {bands} x {rows}"))
            print(lines[-1], flush=True)
            if has_datasketch and name == "real" and threshold == 0.7:
                other = measure(name, args.n_scaled, threshold, "datasketch", Path(tmp))
                lines.append(row(name, threshold, exact, other, f"datasketch {bands} x {rows}"))
                print(lines[-1], flush=True)
    table = "\n".join([HEADER, *lines])
    load = " / ".join(f"{x:.1f}" for x in os.getloadavg())
    print(table)
    print(f"load average at the end: {load} on {os.cpu_count()} cores")
    if args.write:
        _write_section(table, load, args.n_scaled)
    return 0


HEADER = (
    "| input | rows | t | approximate filter (bands x rows) | exact rejects | approx rejects "
    "| recall | precision | exact CPU s (wall) | approx CPU s (wall) | speed-up (CPU) "
    "| peak MB exact / approx |\n"
    "| --- | ---: | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
)


def _write_section(table: str, load: str, n_scaled: int) -> None:
    path = REPO / "BENCHMARKS.md"
    text = path.read_text(encoding="utf-8")
    head = "## Approximate novelty filter (`benchmarks/novelty_approx.py`)\n"
    body = NOTES.format(
        table=table, load=load, cores=os.cpu_count(), n=n_scaled,
        date=time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
    )  # fmt: skip
    if head in text:
        start = text.index(head) + len(head)
        end = text.find("\n## ", start)
        end = len(text) if end < 0 else end + 1
        text = text[:start] + "\n" + body + "\n" + text[end:]
    else:
        text = text.rstrip("\n") + "\n\n" + head + "\n" + body
    path.write_text(text, encoding="utf-8")


NOTES = """Measured {date} on {cores} cores shared with other engineers' jobs (load average {load} at
the end), one child process per measurement: `python benchmarks/novelty_approx.py --n-scaled {n}
--write`. CPU seconds are the fair measure on this machine; peak memory is the child's peak RSS
above its RSS once the texts are built.

{table}

- **real**: the 52K real texts of the novelty benchmark above (Alpaca 9K + Dolly 3K + seeds +
  user-oriented instructions, near-duplicate "instruction + first input sentence", single input
  and output sentences). **scaled**: the 63K real texts completed to {n:,} rows with synthetic
  ones made of their words (halves of two texts joined, 40% of words replaced, 10% near-duplicate
  edits of earlier rows). The 1M rows come from `--n-scaled 1000000 --cases
  scaled:0.7,scaled:0.85` (the exact filter alone runs 10+ CPU minutes there).
- **What it shows**: (written by hand after each run: speed-up, misses, cascades, memory.)
- **Recall** is the share of the exact filter's rejections the approximate filter also makes;
  **precision** the share of its rejections the exact filter also makes. Every approximate
  rejection rests on an exactly scored pair above the threshold, so precision is 1.0 until the
  first missed rejection; after one, a row close only to the missed row can be rejected by the
  approximate filter alone (a cascade), which is what a precision below 1.0 counts.
- **Parameters**: from the threshold (`lsh_params`): a pair with ROUGE-L F > t has occurrence
  Jaccard >= t / (2 - t) (0.538 at 0.7, 0.739 at 0.85); bands x rows put the LSH S-curve at >= 0.99
  there (53 x 4 at 0.7, 26 x 6 at 0.85).
- **numpy, not datasketch**: the datasketch row runs the same greedy loop with the same features,
  bands and rows and the same exact verification; its signatures (`MinHash.bulk`) are fast, but its
  `MinHashLSH` query/insert is per-row Python over per-band dicts of bytes keys. tunesmith hashes a
  whole batch at once (multiply-shift over a mixed feature id, segmented minimum) and queries
  sorted runs of band keys with `searchsorted`, so only the exact verification stays per row.
"""

if __name__ == "__main__":
    raise SystemExit(main())
