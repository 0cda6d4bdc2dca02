"""``tunesmith eval compare``: judge a model's outputs against a baseline's into a folder.

Resumable: the folder's judged pairs are skipped, every call replays from the request cache, the
ledger continues. A judge (or an AlpacaFarm pool of them) runs on any backend; the CLI's LLM
options override the judge file's.
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from tunesmith.driver import fingerprint
from tunesmith.errors import DataError
from tunesmith.judge import lc, winrate
from tunesmith.judge.evalsets import read_eval_set, read_references
from tunesmith.judge.pairwise import Pair, Plan, align, conclude, output_name, plan_pairs
from tunesmith.judge.pool import Annotator, Pool, add_label_noise
from tunesmith.judge.rules import outcome
from tunesmith.judge.spec import JudgeSpec
from tunesmith.judge.store import JudgeStore, read_rows
from tunesmith.llm.base import Backend, Completion
from tunesmith.llm.client import LLM
from tunesmith.llm.factory import LLMConfig, make_llm
from tunesmith.progress import live_progress

#: Builds the client config of one annotator from its judge file's (backend, model, options);
#: the CLI passes one that lets its own options win.
ConfigFor = Callable[[str | None, str | None, Mapping[str, Any]], LLMConfig]


def default_config_for(
    backend: str | None, model: str | None, options: Mapping[str, Any]
) -> LLMConfig:
    return LLMConfig(backend=backend or "embedded", model=model, options=dict(options))


def read_pairs(
    model_path: str | Path, baseline_path: str | Path, references: str | Path | None = None
) -> list[Pair]:
    """Both outputs files read and aligned (generator names from the rows or the file names),
    with reference answers (by instruction or the set's id) when a file of them is given."""
    model = read_eval_set(model_path)
    baseline = read_eval_set(baseline_path)
    for records, path in ((model, model_path), (baseline, baseline_path)):
        if not records:
            raise DataError(path, None, "no rows")
    pairs = align(model, baseline, str(model_path), str(baseline_path))
    names = {"model": output_name(model_path), "baseline": output_name(baseline_path)}
    refs = read_references(references) if references else {}
    ids = {r.instruction: r.id for r in model}
    return [_named(p, names, refs.get(p.instruction, refs.get(ids[p.instruction]))) for p in pairs]


def _named(pair: Pair, names: Mapping[str, str], reference: str | None) -> Pair:
    fixes: dict[str, Any] = {}
    if pair.generator in ("model", "outputs", "kept"):
        fixes["generator"] = names["model"]
    if pair.baseline in ("baseline", "outputs", "kept"):
        fixes["baseline"] = names["baseline"]
    if reference is not None:
        fixes["reference"] = reference
    return dataclasses.replace(pair, **fixes) if fixes else pair


def run_compare(
    pairs: Sequence[Pair],
    *,
    judge: JudgeSpec | Pool,
    out: str | Path,
    config_for: ConfigFor = default_config_for,
    seed: int = 0,
    batch_size: int = 256,
    difficulty: Mapping[str, float] | None = None,
    settings: Mapping[str, Any] | None = None,
    backend: Backend | None = None,
    force_new: bool = False,
    retry_failed: bool = False,
) -> dict[str, Any]:
    """Judge ``pairs`` into ``out`` (resuming), write ``summary.json`` and return the summary.

    Args:
        settings: extra manifest entries that may change on resume (file paths, --limit).
        backend: replaces every annotator's backend instance (tests, offline dry runs); the
            configs still name the models, so cache keys and manifests stay what they would be.

    Raises:
        BudgetExceeded: after writing every finished batch (status ``stopped (budget)``);
            rerun, with a larger budget, to continue.
    """
    pool = judge if isinstance(judge, Pool) else Pool((Annotator(judge.name, judge),), 0.0, seed)
    configs = {a.name: config_for(a.backend or a.spec.backend, a.model or a.spec.model,
                                  {**a.spec.options, **a.options}) for a in pool.annotators}  # fmt: skip
    store = _open_store(out, pool, configs, pairs, seed, settings,
                        force_new=force_new, retry_failed=retry_failed)  # fmt: skip
    done = store.done_ids()
    todo = [p for p in pairs if p.id not in done]
    with store.driver, live_progress("judge", len(todo), store.ledger) as progress:
        clients: dict[str, LLM] = {}
        try:
            for name, cfg in configs.items():
                clients[name] = make_llm(
                    cfg, ledger=store.ledger, on_progress=progress.refresh, backend=backend
                )
            for k, rows in _judge_all(pool, clients, todo, seed, batch_size):
                store.write(rows, batch=k)
                progress.advance(len(rows))
        finally:
            for client in clients.values():
                client.close()
        summary = summarize(store.rows(), difficulty=difficulty)
        summary["usage"] = store.ledger.totals()
        store.write_summary(summary)
        store.finish("done", **store.driver.counts(), win_rate=summary["win_rate"])
    return summary


def _open_store(
    out: str | Path, pool: Pool, configs: Mapping[str, LLMConfig], pairs: Sequence[Pair],
    seed: int, settings: Mapping[str, Any] | None, *, force_new: bool, retry_failed: bool,
) -> JudgeStore:  # fmt: skip
    """Open (or resume) the evaluation folder: its identity is the pool, the models and the
    seed; the pairs' texts are its input fingerprint."""
    return JudgeStore.open(
        out,
        identity=_identity(pool, configs, seed),
        settings={**(settings or {}), "llm": {k: c.to_manifest() for k, c in configs.items()}},
        # plain lists: dataclasses.asdict's deep copies cost ~0.1 ms a pair
        inputs=fingerprint([p.key, p.model_output, p.baseline_output, p.reference] for p in pairs),
        force_new=force_new,
        retry_failed=retry_failed,
    )


def _identity(pool: Pool, configs: Mapping[str, LLMConfig], seed: int) -> dict[str, Any]:
    """What decides the verdicts: a folder only resumes when all of it is unchanged."""
    return {
        "seed": seed,
        "label_noise": pool.label_noise,
        "annotators": {
            a.name: {"judge": a.spec.name, "judge_sha256": a.spec.sha256,
                     "backend": configs[a.name].backend, "model": configs[a.name].resolved_model()}
            for a in pool.annotators
        },
    }  # fmt: skip


def _judge_all(
    pool: Pool,
    clients: Mapping[str, LLM],
    todo: Sequence[Pair],
    seed: int,
    batch_size: int,
) -> Iterator[tuple[int, list[dict[str, Any]]]]:
    """Yield (batch index, rows) per batch, pipelined: while one batch's calls are in flight
    (on a worker thread), the next batch's prompts are rendered and the previous batch's rows
    parsed and written, so the judge never waits for tunesmith between batches."""
    batches = [todo[i : i + batch_size] for i in range(0, len(todo), batch_size)]
    if not batches:
        return
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="judge") as pool_exec:
        plans = _plan(pool, batches[0], seed)
        pending = pool_exec.submit(_send, clients, plans)
        for k in range(len(batches)):
            following = _plan(pool, batches[k + 1], seed) if k + 1 < len(batches) else None
            answers = pending.result()  # BudgetExceeded and backend errors surface here
            if following is not None:
                pending = pool_exec.submit(_send, clients, following)
            yield k, _rows(pool, batches[k], plans, answers)
            if following is not None:
                plans = following


def _plan(pool: Pool, batch: Sequence[Pair], seed: int) -> list[Plan]:
    """One plan per annotator of the pool that judges some pair of the batch."""
    groups: dict[str, list[Pair]] = {}
    for pair in batch:
        groups.setdefault(pool.pick(pair.key).name, []).append(pair)
    by_name = {a.name: a for a in pool.annotators}
    return [plan_pairs(by_name[n].spec, g, seed=seed, annotator=n) for n, g in groups.items()]


def _send(clients: Mapping[str, LLM], plans: Sequence[Plan]) -> list[list[list[Completion]]]:
    return [clients[p.annotator].complete(p.requests) if p.requests else [] for p in plans]


def _rows(
    pool: Pool, batch: Sequence[Pair], plans: Sequence[Plan], answers: Sequence[Any]
) -> list[dict[str, Any]]:
    """Rows in the batch's order; noise added after the cache, never into it."""
    rows: dict[str, dict[str, Any]] = {}
    for plan, completions in zip(plans, answers, strict=True):
        for row in conclude(plan, completions):
            rows[row["id"]] = _with_noise(row, pool)
    return [rows[p.id] for p in batch]


def _with_noise(row: dict[str, Any], pool: Pool) -> dict[str, Any]:
    if pool.label_noise <= 0 or row["preference"] is None:
        return row
    clean = row["preference"]
    label, replaced = add_label_noise(clean, row["id"], pool.label_noise, pool.seed)
    return {
        **row,
        "clean_preference": clean,
        "preference": label,
        "noisy": replaced,
        "outcome": outcome(label),
    }


def summarize(
    rows: Sequence[Mapping[str, Any]], *, difficulty: Mapping[str, float] | None = None
) -> dict[str, Any]:
    """Win rates, LC win rate, per-category tables, position bias and reasoning excerpts."""
    prefs = [r.get("preference") for r in rows]
    out = winrate.win_rate(prefs)
    ok = [r for r in rows if r.get("preference") is not None]
    diff = None
    if difficulty is not None:
        diff = [float(difficulty.get(r["instruction"], 0.0)) for r in ok]
    fit = lc.length_controlled_win_rate(
        [float(r["preference"]) for r in ok],
        [len(r["model_output"]) for r in ok],
        [len(r["baseline_output"]) for r in ok],
        difficulty=diff,
        groups=[r["instruction"] for r in ok],
    )
    out.update(
        lc_win_rate=fit["lc_win_rate"],
        lc_glm={"weights": fit["weights"], "C": fit["C"],
                "difficulty": "given" if difficulty is not None else "none"},
        generator=_one(rows, "generator"),
        baseline=_one(rows, "baseline"),
        judge=_one(rows, "judge"),
        per_category=winrate.by_category(prefs, [r.get("category") for r in rows]),
        per_annotator=winrate.by_category(prefs, [r.get("annotator") for r in rows]),
        position_bias=winrate.position_bias([r.get("calls") or [] for r in rows]),
        failures=_failures(rows),
        excerpts=_excerpts(rows),
        avg_length={"model": _mean_len(rows, "model_output"),
                    "baseline": _mean_len(rows, "baseline_output")},
    )  # fmt: skip
    if any("clean_preference" in r for r in rows):
        out["label_noise"] = {
            "replaced": sum(bool(r.get("noisy")) for r in rows),
            "clean_win_rate": winrate.win_rate([r.get("clean_preference") for r in ok])["win_rate"],
        }
    return _finite(out)


def _one(rows: Sequence[Mapping[str, Any]], key: str) -> str:
    return ", ".join(sorted({str(r.get(key)) for r in rows})) if rows else ""


def _mean_len(rows: Sequence[Mapping[str, Any]], key: str) -> float:
    return sum(len(r.get(key) or "") for r in rows) / len(rows) if rows else math.nan


def _failures(rows: Sequence[Mapping[str, Any]]) -> dict[str, int]:
    out: dict[str, int] = {}
    for r in rows:
        if r.get("failed"):
            reason = str(r["failed"])[:70]  # "parse failure: no [[verdict]] found" ...
            out[reason] = out.get(reason, 0) + 1
    return out


def _excerpts(rows: Sequence[Mapping[str, Any]], k: int = 5) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for r in rows:
        calls = r.get("calls") or []
        if calls and len(out) < k:
            out.append({"instruction": r["instruction"][:200], "outcome": r.get("outcome"),
                        "reasoning": [c["text"][:400] for c in calls]})  # fmt: skip
    return out


def _finite(d: Any) -> Any:
    """NaN -> None, so summary.json is strict JSON."""
    if isinstance(d, dict):
        return {k: _finite(v) for k, v in d.items()}
    if isinstance(d, list):
        return [_finite(v) for v in d]
    if isinstance(d, float) and math.isnan(d):
        return None
    return d


def read_difficulty(path: str | Path) -> dict[str, float]:
    """Instruction difficulty from a user file: a JSON object {instruction: value}, or JSON/JSONL
    rows with ``instruction`` and ``difficulty``."""
    p = Path(path)
    text = p.read_text(encoding="utf-8")
    try:
        data = json.loads(text)
    except json.JSONDecodeError:
        data = [json.loads(line) for line in text.splitlines() if line.strip()]
    if isinstance(data, dict):
        return {str(k): float(v) for k, v in data.items()}
    out: dict[str, float] = {}
    for i, row in enumerate(data, start=1):
        if not isinstance(row, dict) or "instruction" not in row or "difficulty" not in row:
            raise DataError(p, i, "a difficulty row needs 'instruction' and 'difficulty'")
        out[str(row["instruction"])] = float(row["difficulty"])
    return out


def agreement_between(folder: str | Path, reference: str | Path) -> dict[str, Any]:
    """Agreement of one evaluation's labels with a reference annotator's on the same pairs
    (AlpacaFarm's human-agreement table: the pool against humans or a strong judge)."""
    from tunesmith.judge.pool import agreement

    def prefs(path: str | Path) -> dict[str, float]:
        return {r["id"]: float(r["preference"]) for r in read_rows(path)
                if r.get("preference") is not None}  # fmt: skip

    ours, ref = prefs(folder), prefs(reference)
    common = sorted(set(ours) & set(ref))
    return {**agreement([ours[k] for k in common], [ref[k] for k in common]),
            "only_in_first": len(set(ours) - set(ref)), "only_in_reference": len(set(ref) - set(ours))}  # fmt: skip
