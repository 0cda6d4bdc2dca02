"""``tunesmith score ifd|ppl|quality``: write scores on every row into a run folder."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from tunesmith.commands import _common as c

DATA = typer.Argument(..., help="Dataset (.jsonl/.json/.parquet/datasets folder).")
OUT = typer.Option(..., "--out", "-o", help="Run folder (rerun into it to resume).")
LIMIT = typer.Option(None, "--limit", help="Only the first N rows.")
LM = typer.Option(
    None, "--model", "-m", help="Causal LM: HF folder/id or .gguf (default: embedded SmolLM2)."
)
RUNTIME = typer.Option(
    "transformers", "--runtime", help="transformers (batched torch) or llama-cpp (GGUF)."
)
LM_BATCH = typer.Option(8, "--lm-batch-size", help="Sequences per forward pass.")
MAX_LENGTH = typer.Option(1024, "--max-length", help="Longest prefix+text in tokens.")
BATCH = typer.Option(64, "--batch-size", help="Rows per checkpointed batch.")
PROMPTS_DIR = typer.Option(
    None, "--prompts-dir", help="Folder overriding packaged prompt templates."
)


def load(data: Path, limit: int | None) -> list[Any]:
    from tunesmith.io import read_records

    records = read_records(data)
    return records[:limit] if limit else records


def make_scorer(
    model: str | None, runtime: str, lm_batch_size: int, max_length: int, threads: int | None
) -> Any:
    """The log-prob model the ``--runtime`` option names."""
    from tunesmith.llm.logprob import make_logprob_model

    return make_logprob_model(
        runtime, model, batch_size=lm_batch_size, max_length=max_length, threads=threads
    )


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
    def ifd(
        data: Path = DATA,
        out: Path = OUT,
        limit: int = LIMIT,
        model: str = LM,
        runtime: str = RUNTIME,
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
        prompts_dir: Path = PROMPTS_DIR,
        lm_batch_size: int = LM_BATCH,
        max_length: int = MAX_LENGTH,
        batch_size: int = BATCH,
        threads: int = c.THREADS,
    ) -> None:
        """IFD and reverse IFD (Cherry LLM; Selective Reflection-Tuning) under a causal LM."""
        from tunesmith.filters.ifd import IFDStage
        from tunesmith.scoring.run import run_scoring_job

        scorer = make_scorer(model, runtime, lm_batch_size, max_length, threads)
        global_pick = decision(key, top_share, min_value, max_value, key != "rifd")
        stage = IFDStage(
            scorer=scorer,
            model=model,
            reverse=not no_reverse,
            key=key,
            min_value=None if global_pick else min_value,
            max_value=None if global_pick else max_value,
            prompts_dir=prompts_dir,
        )
        run = run_scoring_job(
            stage,
            load(data, limit),
            out=out,
            decision=global_pick,
            batch_size=batch_size,
            method="score_ifd",
            extra_config={"data": str(data), "runtime": runtime},
            prompt_hashes=stage.prompt_hashes,
        )
        typer.echo(f"kept {len(run.kept_ids())}, rejected {len(run.rejected_ids())} -> {run.path}")

    @score.command("ppl")
    def ppl(
        data: Path = DATA,
        out: Path = OUT,
        limit: int = LIMIT,
        model: str = LM,
        runtime: str = RUNTIME,
        field: str = typer.Option(
            "instruction", "--field", help="instruction, input, output, prompt or text."
        ),
        lm_batch_size: int = LM_BATCH,
        max_length: int = MAX_LENGTH,
        batch_size: int = BATCH,
        threads: int = c.THREADS,
    ) -> None:
        """Perplexity of a field under a causal LM (all rows kept; filter with `filter ppl`)."""
        from tunesmith.filters.perplexity import PerplexityFilter
        from tunesmith.scoring.run import run_scoring_job

        scorer = make_scorer(model, runtime, lm_batch_size, max_length, threads)
        stage = PerplexityFilter(scorer=scorer, model=model, field=field, threshold=None)
        run = run_scoring_job(
            stage,
            load(data, limit),
            out=out,
            batch_size=batch_size,
            method="score_ppl",
            extra_config={"data": str(data), "runtime": runtime},
        )
        typer.echo(f"scored {len(run.kept_ids())} rows ({stage.key}) -> {run.kept_path}")

    @score.command("quality")
    def quality(
        data: Path = DATA,
        out: Path = OUT,
        limit: int = LIMIT,
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
        prompts_dir: Path = PROMPTS_DIR,
        batch_size: int = typer.Option(16, "--batch-size"),
        backend: str = c.BACKEND,
        model: str = c.MODEL,
        base_url: str = c.BASE_URL,
        api_key_env: str = c.API_KEY_ENV,
        threads: int = c.THREADS,
        concurrency: int = c.CONCURRENCY,
        rpm: float = c.RPM,
        tpm: float = c.TPM,
        cache: Path = c.CACHE,
        no_cache: bool = c.NO_CACHE,
        prices: Path = c.PRICES,
        max_cost: float = c.MAX_COST,
        max_calls: int = c.MAX_CALLS,
        backend_option: list[str] = c.BACKEND_OPTION,
    ) -> None:
        """LLM quality score 1-5 (Humpback self-curation or AlpaGasus rating); keep score >= k."""
        from tunesmith.filters.judge_score import PARSE_FAILURE, QualityScorer
        from tunesmith.scoring.run import run_scoring_job

        config = c.llm_config_from(locals())
        stage = QualityScorer(
            rubric=rubric,
            min_score=min_score,
            fractional=fractional,
            keep_unparsed=keep_unparsed,
            max_tokens=max_tokens,
            prompts_dir=prompts_dir,
        )
        run = run_scoring_job(
            stage,
            load(data, limit),
            out=out,
            config=config,
            batch_size=batch_size,
            method="score_quality",
            extra_config={"data": str(data)},
            prompt_hashes=stage.prompt_hashes,
        )
        failures = sum(
            1 for r in run.read_rejected() if str(r.get("reason", "")).startswith(PARSE_FAILURE)
        )
        run.finish("done", parse_failures=failures)
        typer.echo(
            f"kept {len(run.kept_ids())}, rejected {len(run.rejected_ids())} "
            f"({failures} parse failures) -> {run.path}"
        )
