"""``tunesmith eval``: model outputs for an evaluation set, judged comparisons, leaderboards."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import typer

from tunesmith.commands import _common as c
from tunesmith.commands._options import _option

eval_app = typer.Typer(
    help="Evaluate models: generate outputs, judge them against a baseline, build a leaderboard.",
    no_args_is_help=True,
)
_JUDGE_BACKEND_HELP = "Override the judge's backend: embedded, openai, transformers, fake"


@dataclasses.dataclass(frozen=True)
class JudgeLLMOptions(c.LLMOptions):
    """The LLM options with no default backend: unset, the judge file's backend is used."""

    backend: str = _option(None, "--backend", "-b", help=_JUDGE_BACKEND_HELP)


def register(app: typer.Typer) -> None:
    app.add_typer(eval_app, name="eval")


@eval_app.command("generate")
@c.options
def generate(
    evalset: Path = typer.Argument(..., help="Evaluation set (AlpacaEval, MT-bench, Koala ...)."),
    out: Path = typer.Option(..., "--out", "-o", help="Folder (rerun into it to resume)."),
    name: str = typer.Option(None, "--name", help="Generator name (default: the model)."),
    limit: int = typer.Option(None, "--limit", help="Only the first N instructions."),
    system: str = typer.Option(None, "--system", help="System prompt."),
    max_tokens: int = typer.Option(1024, "--max-tokens"),
    temperature: float = typer.Option(0.7, "--temperature"),
    batch_size: int = typer.Option(16, "--batch-size"),
    *,
    llm: c.LLMOptions,
) -> None:
    """Write a model's outputs for an evaluation set to OUT/outputs.json."""
    from tunesmith.judge.evalsets import read_eval_set
    from tunesmith.judge.generate import generate_outputs

    records = read_eval_set(evalset)
    path = generate_outputs(
        records[:limit] if limit else records,
        out=out,
        config=llm.config(),
        generator=name,
        system=system,
        max_tokens=max_tokens,
        temperature=temperature,
        batch_size=batch_size,
        evalset=str(evalset),
    )
    typer.echo(f"outputs -> {path}")


@eval_app.command("compare")
@c.options
def compare(
    model_outputs: Path = typer.Argument(..., help="The model's outputs (AlpacaEval format ...)."),
    baseline_outputs: Path = typer.Argument(..., help="The baseline's outputs, same instructions."),
    out: Path = typer.Option(..., "--out", "-o", help="Folder (rerun into it to resume)."),
    judge: str = typer.Option(
        "pairwise_both_orders", "--judge", "-j", help="A packaged judge name or a judge .yaml file."
    ),
    pool: Path = typer.Option(None, "--pool", help="An annotator-pool YAML (replaces --judge)."),
    label_noise: float = typer.Option(None, "--label-noise", help="Override the pool's noise p."),
    references: Path = typer.Option(
        None, "--references", help="Reference answers for single_grade (MT-bench's files too)."
    ),
    difficulty: Path = typer.Option(
        None, "--difficulty", help="Instruction difficulty file for the LC win rate."
    ),
    seed: int = typer.Option(0, "--seed", help="Seed of order randomization and pool choices."),
    limit: int = typer.Option(None, "--limit", help="Only the first N pairs."),
    batch_size: int = typer.Option(
        256, "--batch-size", help="Pairs per batch of calls (rows are written per batch)."
    ),
    force_new: bool = typer.Option(
        False, "--force-new", help="Set an existing evaluation in --out aside and start over."
    ),
    retry_failed: bool = typer.Option(
        False, "--retry-failed", help="Send again the pairs whose judge request failed for good."
    ),
    *,
    llm: JudgeLLMOptions,
) -> None:
    """Judge MODEL_OUTPUTS against BASELINE_OUTPUTS; OUT/summary.json holds the win rates."""
    from tunesmith.judge.evaluate import read_difficulty, read_pairs, run_compare

    pairs = read_pairs(model_outputs, baseline_outputs, references)
    summary = run_compare(
        pairs[:limit] if limit else pairs,
        judge=_judge_or_pool(judge, pool, label_noise),
        out=out,
        config_for=lambda b, m, o: _config_for(llm, b, m, o),
        seed=seed,
        batch_size=batch_size,
        difficulty=read_difficulty(difficulty) if difficulty else None,
        settings={"model_outputs": str(model_outputs), "baseline_outputs": str(baseline_outputs),
                  "limit": limit},
        force_new=force_new,
        retry_failed=retry_failed,
    )  # fmt: skip
    _print_summary(summary, out)


def _judge_or_pool(judge: str, pool: Path | None, label_noise: float | None) -> Any:
    """The annotator pool of ``--pool`` (with ``--label-noise``), else the ``--judge``."""
    from tunesmith.judge.pool import add_label_noise, load_pool
    from tunesmith.judge.spec import load_judge

    if not pool:
        return load_judge(judge)
    loaded = load_pool(pool)
    if label_noise is not None:
        add_label_noise(1.5, "", label_noise)  # range check
        loaded = dataclasses.replace(loaded, label_noise=label_noise)
    return loaded


def _print_summary(summary: dict[str, Any], out: Path) -> None:
    """The win-rate line, per-category W/T/L when there are several, and where it is saved."""
    typer.echo(_line(summary))
    for category, t in (summary.get("per_category") or {}).items():
        if len(summary["per_category"]) > 1:  # SeDi-Instruct's Win/Tie/Lose per test set
            typer.echo(f"  {category}: W/T/L {t['wins']}/{t['ties']}/{t['losses']} (n={t['n']})")
    typer.echo(f"summary -> {out / 'summary.json'}")


def _config_for(
    llm: JudgeLLMOptions, backend: str | None, model: str | None, options: Mapping[str, Any]
) -> Any:
    """The judge's client config: CLI options win over the judge file's."""
    keep_file = llm.backend is None or llm.backend == backend
    chosen = dataclasses.replace(
        llm,
        backend=llm.backend or backend or "embedded",
        model=llm.model or (model if keep_file else None),
        base_url=llm.base_url or (options.get("base_url") if keep_file else None),
    )
    config = chosen.config()
    if keep_file:
        extra = {k: v for k, v in options.items() if k != "base_url"}
        config.options = {**extra, **config.options}
    return config


def _line(s: Mapping[str, Any]) -> str:
    def f(x: Any) -> str:
        return "n/a" if x is None else f"{x:.1f}"

    return (
        f"{s['generator']} vs {s['baseline']} ({s['judge']}): win rate {f(s['win_rate'])} "
        f"+- {f(s['standard_error'])}, LC {f(s['lc_win_rate'])}, discrete "
        f"{f(s['discrete_win_rate'])}; W/T/L {s['wins']}/{s['ties']}/{s['losses']}, "
        f"{s['failed']} unreadable"
    )


@eval_app.command("leaderboard")
def leaderboard(
    folders: list[Path] = typer.Argument(..., help="`eval compare` folders."),
    out: Path = typer.Option(..., "--out", "-o", help="The HTML page to write."),
) -> None:
    """Models x judges: win rate with error bars, LC win rate, W/T/L per category, pair browser."""
    from tunesmith.judge.leaderboard import write_leaderboard

    path = write_leaderboard(folders, out)
    typer.echo(f"leaderboard -> {path}")


@eval_app.command("agreement")
def agreement(
    folder: Path = typer.Argument(..., help="An `eval compare` folder (e.g. a pool's)."),
    reference: Path = typer.Argument(..., help="The reference annotator's folder, same pairs."),
) -> None:
    """How often FOLDER's labels agree with REFERENCE's (AlpacaFarm's agreement table)."""
    import json

    from tunesmith.judge.evaluate import agreement_between

    typer.echo(json.dumps(agreement_between(folder, reference), indent=2))


# `eval judge` reads as well as `eval compare` (AlpacaEval users say "annotate"/"judge").
eval_app.command("judge", help="Same as `eval compare`.")(compare)
