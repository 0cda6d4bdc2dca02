"""``tunesmith generate backtranslate UNLABELLED --seeds SEEDS --out RUN``: Humpback's instruction
backtranslation (reached through ``generate``; see :mod:`tunesmith.commands._methods`)."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from tunesmith.commands import _common as c

app = typer.Typer(add_completion=False, pretty_exceptions_enable=False)


@app.command("backtranslate")
@c.options
def backtranslate(
    unlabelled: Path = typer.Argument(
        ..., help="Documents: .jsonl/.json/.parquet (one per row), .txt/.md, or a folder."
    ),
    seeds: Path = typer.Option(
        ..., "--seeds", help="Seed (instruction, output) pairs: any dataset tunesmith reads."
    ),
    out: Path = typer.Option(..., "--out", "-o", help="Run folder (rerun into it to resume)."),
    text_field: str = typer.Option(
        None, "--text-field", help="Column with the text (default: text, content, output ...)."
    ),
    min_chars: int = typer.Option(1000, "--min-chars", help="Shortest segment (characters)."),
    max_chars: int = typer.Option(2200, "--max-chars", help="Longest segment (characters)."),
    min_line_chars: int = typer.Option(
        5, "--min-line-chars", help="Shortest non-blank line (0: no rule)."
    ),
    short_lines: str = typer.Option(
        "reject", "--short-lines", help="reject the document with a short line, or drop the line."
    ),
    split_long: bool = typer.Option(
        False, "--split-long", help="Cut longer documents into segments instead of skipping them."
    ),
    examples: int = typer.Option(3, "--examples", help="Seed pairs shown to the backward model."),
    backward_mode: str = typer.Option(
        "few-shot", "--backward-mode", help="few-shot, or finetuned (a reversed-SFT model)."
    ),
    backward_model: str = typer.Option(
        None, "--backward-model", help="A separate backward model M_yx (same backend options)."
    ),
    backward_backend: str = typer.Option(
        None, "--backward-backend", help="Backend of --backward-model (default: --backend)."
    ),
    backward_max_tokens: int = typer.Option(
        128, "--backward-tokens", help="max_tokens of a predicted instruction."
    ),
    min_score: int = typer.Option(5, "--min-score", "-k", help="Keep pairs rated >= k (A_5)."),
    iterations: int = typer.Option(1, "--iterations", help="Self-curation rounds."),
    curator_model: list[str] = typer.Option(
        None, "--curator-model", help="M1, M2 ... curating rounds 2, 3 ... (repeatable)."
    ),
    train_m1: bool = typer.Option(
        False, "--train-m1", help="Train M1, M2 ... with tunesmith train sft (into RUN/m<i>)."
    ),
    train_max_steps: int = typer.Option(
        0, "--train-max-steps", help="--train-m1: optimizer steps (0: the trainer's epochs)."
    ),
    judge_max_tokens: int = typer.Option(
        384, "--judge-max-tokens", help="max_tokens of a curation reply (reasoning + score)."
    ),
    with_seeds: bool = typer.Option(
        False, "--with-seeds", help="Write the seed rows (tagged seed) into kept.jsonl too."
    ),
    batch_size: int = typer.Option(16, "--batch-size", help="Rows per checkpointed batch."),
    prompts_dir: Path = typer.Option(
        None, "--prompts-dir", help="Folder overriding the prompt templates."
    ),
    seed: str = typer.Option("42", "--seed", help="RNG seed (few-shot example choice)."),
    *,
    llm: c.LLMOptions,
    run: c.RunOptions,
) -> None:
    """Predict the instruction each document answers; keep what the seed model rates >= k."""
    import dataclasses

    from tunesmith.errors import ConfigError
    from tunesmith.generate.backtranslation_run import (
        run_backtranslation,
        sft_trainer,
        training_available,
    )

    if not seed.lstrip("-").isdigit():
        raise ConfigError("--seed is the RNG seed (an integer); give the seed data with --seeds")
    config = llm.config()
    params = {
        "min_chars": min_chars, "max_chars": max_chars, "min_line_chars": min_line_chars,
        "short_lines": short_lines, "split_long": split_long, "num_examples": examples,
        "backward_mode": backward_mode, "backward_max_tokens": backward_max_tokens,
        "min_score": min_score, "iterations": iterations, "judge_max_tokens": judge_max_tokens,
        "include_seeds": with_seeds, "batch_size": batch_size, "seed": int(seed),
        "prompts_dir": str(prompts_dir) if prompts_dir else None,
    }  # fmt: skip
    backward = None
    if backward_model:  # M_yx: same client settings, or its own local backend
        backward = dataclasses.replace(config, model=backward_model)
        if backward_backend and backward_backend != config.backend:
            backward = dataclasses.replace(backward, backend=backward_backend, options={})
    curators = [dataclasses.replace(config, model=m) for m in curator_model or []]
    trainer = None
    if train_m1:
        if not training_available():
            raise ConfigError("--train-m1 needs 'tunesmith train sft', which this install lacks; "
                              "train M1 yourself and pass --curator-model")  # fmt: skip
        trainer = sft_trainer(out, max_steps=train_max_steps, threads=llm.threads)
    result = run_backtranslation(
        unlabelled, seeds=seeds, out=out, config=config, params=params, text_field=text_field,
        backward=backward, curators=curators, trainer=trainer,
        **c.driver_flags(run_backtranslation, run),
    )  # fmt: skip
    s = json.loads((result.path / "backtranslation.json").read_text(encoding="utf-8"))
    typer.echo(
        f"backtranslate: {s['documents']} documents -> {s['segments']} segments -> "
        f"{s['candidates']} instructions -> kept {s['augmented_kept']} rated >= {s['min_score']} "
        f"({s['calls']} calls, ${s['cost_usd']:.4f}) -> {result.kept_path}"
    )
    c.write_report_for(result.path, run.report)
