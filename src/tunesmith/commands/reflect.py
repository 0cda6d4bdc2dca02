"""``tunesmith reflect``: Reflection-Tuning (optionally selective) over a dataset into a run folder."""

from __future__ import annotations

from pathlib import Path

import typer

from tunesmith.commands import _common as c


@c.options
def reflect(
    data: Path = c.DATA,
    out: Path = c.OUT,
    mode: str = typer.Option("both", "--mode", help="instruction | response | both"),
    selective: bool = typer.Option(
        False, "--selective", help="Build all variants, keep the one IFD / r-IFD selects."
    ),
    fallback: bool = typer.Option(
        False, "--fallback", help="Selective: keep Q / original where the rule keeps nothing."
    ),
    scorer_model: str = typer.Option(
        None, "--scorer-model", help="Causal LM for IFD (default: embedded SmolLM2)."
    ),
    max_tokens: int = typer.Option(1024, "--max-tokens"),
    temperature: float = typer.Option(0.0, "--temperature"),
    batch_size: int = typer.Option(16, "--batch-size", help="Rows per checkpoint."),
    prompts_dir: Path = c.PROMPTS_DIR,
    *,
    llm: c.LLMOptions,
    run: c.RunOptions,
    rows: c.DataOptions,
) -> None:
    """Recycle a dataset with Reflection-Tuning (Li et al. 2023)."""
    from tunesmith.jobs import run_record_job
    from tunesmith.refine.reflection_stage import ReflectionStage

    stage = ReflectionStage(
        mode=mode, selective=selective, fallback=fallback, temperature=temperature,
        max_tokens=max_tokens, scorer_model=scorer_model, prompts_dir=prompts_dir,
    )  # fmt: skip
    result = c.run_job(run_record_job, stage, data, out, "reflect", run, rows,
                       extra={"limit": rows.limit}, config=llm.config(),
                       batch_size=batch_size)  # fmt: skip
    for key, sha in stage.prompt_hashes.items():
        result.note_prompt(key, sha)
    c.finish(result.path, run)


def register(app: typer.Typer) -> None:
    app.command("reflect")(reflect)
