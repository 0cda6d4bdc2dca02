"""``tunesmith score ifd|ppl|quality``: write scores on every row into a run folder."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from tunesmith.commands import _common as c


def decision(
    key: str,
    top_share: float | None,
    min_value: float | None,
    max_value: float | None,
    largest: bool,
) -> Any:
    from tunesmith.filters.score_decision import ScoreDecision

    if top_share is None:
        return None
    return ScoreDecision(
        key=key, min_value=min_value, max_value=max_value, top_share=top_share, largest=largest
    )


score_app = typer.Typer(
    help="Score rows (IFD, perplexity, LLM quality); scores stay on rows.", no_args_is_help=True
)


def register(app: typer.Typer) -> None:
    app.add_typer(score_app, name="score")


def _run_scoring(stage: Any, data: Path, out: Path, method: str, run: c.RunOptions,
                 rows: c.DataOptions, **job: Any) -> Any:  # fmt: skip
    """Score every row of ``data`` into the run folder ``out`` (the driver's scoring job)."""
    from tunesmith.jobs import run_scoring_job

    return c.run_job(run_scoring_job, stage, data, out, method, run, rows, **job)


@score_app.command("ifd")
@c.options
def ifd(
    data: Path = c.DATA,
    out: Path = c.OUT,
    no_reverse: bool = typer.Option(False, "--no-reverse", help="Skip reverse IFD."),
    key: str = typer.Option("ifd", "--key", help="Score the range/top share uses: ifd or rifd."),
    min_value: float = typer.Option(None, "--min", help="Keep rows with key >= MIN."),
    max_value: float = typer.Option(None, "--max", help="Keep rows with key <= MAX (Cherry: 1)."),
    top_share: float = typer.Option(
        None, "--top-share", help="Keep the best share (0-1]: highest IFD / lowest r-IFD."
    ),
    prompts_dir: Path = c.PROMPTS_DIR,
    batch_size: int = c.BATCH,
    *,
    lm: c.ScorerOptions,
    run: c.RunOptions,
    rows: c.DataOptions,
) -> None:
    """IFD and reverse IFD (Cherry LLM; Selective Reflection-Tuning) under a causal LM."""
    from tunesmith.filters.ifd_stage import IFDStage

    global_pick = decision(key, top_share, min_value, max_value, key != "rifd")
    stage = IFDStage(
        scorer=c.make_scorer(lm), model=lm.model, reverse=not no_reverse, key=key,
        min_value=None if global_pick else min_value,
        max_value=None if global_pick else max_value, prompts_dir=prompts_dir,
    )  # fmt: skip
    result = _run_scoring(stage, data, out, "score_ifd", run, rows, decision=global_pick,
                          batch_size=batch_size, extra={"runtime": lm.runtime},
                          prompt_hashes=stage.prompt_hashes)  # fmt: skip
    c.finish(result.path, run)


@score_app.command("ppl")
@c.options
def ppl(
    data: Path = c.DATA, out: Path = c.OUT, field: str = c.PPL_FIELD, batch_size: int = c.BATCH,
    *, lm: c.ScorerOptions, run: c.RunOptions, rows: c.DataOptions,
) -> None:  # fmt: skip
    """Perplexity of a field under a causal LM (all rows kept; filter with `filter ppl`)."""
    from tunesmith.filters.perplexity_filter import PerplexityFilter

    stage = PerplexityFilter(scorer=c.make_scorer(lm), model=lm.model, field=field, threshold=None)
    result = _run_scoring(stage, data, out, "score_ppl", run, rows, batch_size=batch_size,
                          extra={"runtime": lm.runtime})  # fmt: skip
    c.finish(result.path, run, note=f"scores under '{stage.key}'")


@score_app.command("quality")
@c.options
def quality(
    data: Path = c.DATA,
    out: Path = c.OUT,
    rubric: str = typer.Option(
        "humpback", "--rubric", help="humpback (self-curation) or alpagasus (accuracy)."
    ),
    min_score: float = typer.Option(
        None, "--min-score", "-k", help="Keep score >= k (default humpback 5, alpagasus 4.5)."
    ),
    fractional: bool = typer.Option(
        False, "--fractional", help="Accept ratings like 4.5 (AlpaGasus keeps >= 4.5)."
    ),
    keep_unparsed: bool = typer.Option(
        False, "--keep-unparsed", help="Keep rows whose reply had no valid score."
    ),
    max_tokens: int = typer.Option(384, "--max-tokens"),
    prompts_dir: Path = c.PROMPTS_DIR,
    batch_size: int = typer.Option(16, "--batch-size", help="Rows per checkpoint."),
    *,
    llm: c.LLMOptions,
    run: c.RunOptions,
    rows: c.DataOptions,
) -> None:
    """LLM quality score 1-5 (Humpback self-curation or AlpaGasus rating); keep score >= k."""
    from tunesmith.filters.quality_scorer import PARSE_FAILURE, QualityScorer

    stage = QualityScorer(rubric=rubric, min_score=min_score, fractional=fractional,
                          keep_unparsed=keep_unparsed, max_tokens=max_tokens,
                          prompts_dir=prompts_dir)  # fmt: skip
    result = _run_scoring(stage, data, out, "score_quality", run, rows, config=llm.config(),
                          batch_size=batch_size, prompt_hashes=stage.prompt_hashes)  # fmt: skip
    rejected = result.read_rejected()
    failures = sum(1 for r in rejected if str(r.get("reason", "")).startswith(PARSE_FAILURE))
    result.finish("done", parse_failures=failures)
    c.finish(result.path, run, note=f"{failures} parse failures")
