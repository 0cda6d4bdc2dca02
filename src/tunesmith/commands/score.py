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


def register(app: typer.Typer) -> None:
    score = typer.Typer(
        help="Score rows (IFD, perplexity, LLM quality); scores stay on rows.", no_args_is_help=True
    )
    app.add_typer(score, name="score")

    @score.command("ifd")
    @c.options
    def ifd(
        data: Path = c.DATA,
        out: Path = c.OUT,
        no_reverse: bool = typer.Option(False, "--no-reverse", help="Skip reverse IFD."),
        key: str = typer.Option(
            "ifd", "--key", help="Score the range/top share uses: ifd or rifd."
        ),
        min_value: float = typer.Option(None, "--min", help="Keep rows with key >= MIN."),
        max_value: float = typer.Option(
            None, "--max", help="Keep rows with key <= MAX (Cherry: 1)."
        ),
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
        from tunesmith.jobs import run_scoring_job

        scorer = c.make_scorer(lm)
        global_pick = decision(key, top_share, min_value, max_value, key != "rifd")
        stage = IFDStage(
            scorer=scorer,
            model=lm.model,
            reverse=not no_reverse,
            key=key,
            min_value=None if global_pick else min_value,
            max_value=None if global_pick else max_value,
            prompts_dir=prompts_dir,
        )
        result = run_scoring_job(
            stage, rows.read(data), out=out, decision=global_pick, batch_size=batch_size,
            method="score_ifd", extra_config={"data": str(data), "runtime": lm.runtime},
            prompt_hashes=stage.prompt_hashes, **c.driver_flags(run_scoring_job, run),
        )  # fmt: skip
        c.finish(result.path, run)

    @score.command("ppl")
    @c.options
    def ppl(
        data: Path = c.DATA,
        out: Path = c.OUT,
        field: str = typer.Option(
            "instruction", "--field", help="instruction, input, output, prompt or text."
        ),
        batch_size: int = c.BATCH,
        *,
        lm: c.ScorerOptions,
        run: c.RunOptions,
        rows: c.DataOptions,
    ) -> None:
        """Perplexity of a field under a causal LM (all rows kept; filter with `filter ppl`)."""
        from tunesmith.filters.perplexity_filter import PerplexityFilter
        from tunesmith.jobs import run_scoring_job

        scorer = c.make_scorer(lm)
        stage = PerplexityFilter(scorer=scorer, model=lm.model, field=field, threshold=None)
        result = run_scoring_job(
            stage, rows.read(data), out=out, batch_size=batch_size, method="score_ppl",
            extra_config={"data": str(data), "runtime": lm.runtime},
            **c.driver_flags(run_scoring_job, run),
        )  # fmt: skip
        c.finish(result.path, run, note=f"scores under '{stage.key}'")

    @score.command("quality")
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
        from tunesmith.jobs import run_scoring_job

        stage = QualityScorer(
            rubric=rubric,
            min_score=min_score,
            fractional=fractional,
            keep_unparsed=keep_unparsed,
            max_tokens=max_tokens,
            prompts_dir=prompts_dir,
        )
        result = run_scoring_job(
            stage, rows.read(data), out=out, config=llm.config(), batch_size=batch_size,
            method="score_quality", extra_config={"data": str(data)},
            prompt_hashes=stage.prompt_hashes, **c.driver_flags(run_scoring_job, run),
        )  # fmt: skip
        failures = sum(
            1 for r in result.read_rejected() if str(r.get("reason", "")).startswith(PARSE_FAILURE)
        )
        result.finish("done", parse_failures=failures)
        c.finish(result.path, run, note=f"{failures} parse failures")
