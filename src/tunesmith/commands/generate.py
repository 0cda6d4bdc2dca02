"""``tunesmith generate self-instruct|alpaca|sedi``: grow an instruction dataset from seed tasks.

``generate backtranslate`` and ``generate dynosaur`` have their own arguments: see
:mod:`tunesmith.commands._methods`.
"""

from __future__ import annotations

from pathlib import Path

import typer

from tunesmith.commands import _common as c
from tunesmith.commands._methods import MethodDispatch


def register(app: typer.Typer) -> None:
    @app.command("generate", cls=MethodDispatch)
    def generate(
        method: str = typer.Argument(
            ..., help="self-instruct, alpaca, sedi; backtranslate, dynosaur, difftune (own --help)"
        ),
        out: Path = typer.Option(..., "--out", "-o", help="Run folder (rerun into it to resume)."),
        seeds: str = typer.Option(
            "default",
            "--seeds",
            help="Seed tasks: 'default' (packaged), the Self-Instruct seed_tasks.jsonl, or any dataset.",
        ),
        num_instructions: int = typer.Option(
            100, "--num-instructions", "-n", help="Stop after this many kept."
        ),
        prompts_per_batch: int = typer.Option(
            5, "--prompts-per-batch", help="Prompts per request batch."
        ),
        max_tokens: int = typer.Option(
            None, "--max-tokens", help="Generation max_tokens (1024 / 3072)."
        ),
        instance_max_tokens: int = typer.Option(
            None, "--instance-max-tokens", help="Self-Instruct instance max_tokens (300/350)."
        ),
        threshold: float = typer.Option(
            None, "--threshold", help="ROUGE-L threshold (0.7; sedi 0.85)."
        ),
        num_tasks: int = typer.Option(
            None, "--num-tasks", help="alpaca/sedi: tasks asked per prompt (20)."
        ),
        truncation: str = typer.Option(
            None,
            "--truncation",
            help="self-instruct: a response cut at max_tokens: drop_response (default, as the "
            "reference code) or drop_last (keep its complete items).",
        ),
        alpaca_blacklist: bool = typer.Option(
            False,
            "--alpaca-blacklist",
            help="self-instruct: add video, audio, music, flowchart, diagram.",
        ),
        classification_only: bool = typer.Option(
            False, "--classification-only", help="self-instruct: ask for classification tasks only."
        ),
        top_k: int = typer.Option(
            0, "--top-k", help="Store the k most similar pool texts and the mean ROUGE-L per row."
        ),
        no_instances: bool = typer.Option(
            False, "--no-instances", help="self-instruct: stop after the instructions."
        ),
        train_batch_size: int = typer.Option(
            None, "--train-batch-size", help="sedi: batch size of batches.json (16)."
        ),
        prompt_style: str = typer.Option(
            "raw", "--prompt-style", help="raw completion prompts, or chat (one user turn)."
        ),
        prompts_dir: Path = typer.Option(
            None, "--prompts-dir", help="Folder overriding the prompt templates."
        ),
        max_rounds: int = typer.Option(
            None, "--max-rounds", help="Stop after this many request batches."
        ),
        seed: int = typer.Option(42, "--seed", help="RNG seed (prompt sampling)."),
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
        report: bool = c.REPORT,
    ) -> None:
        """Generate instructions (and inputs/outputs) with Self-Instruct, Alpaca or SeDi-Instruct."""
        from tunesmith.generate.pipeline import run_generation

        config = c.llm_config_from(locals())
        params = {
            "num_instructions": num_instructions,
            "prompts_per_batch": prompts_per_batch,
            "max_tokens": max_tokens,
            "threshold": threshold,
            "num_tasks": num_tasks,
            "truncation": truncation,
            "train_batch_size": train_batch_size,
            "prompt_style": prompt_style,
            "prompts_dir": prompts_dir,
            "max_rounds": max_rounds,
            "seed": seed,
            "instance_max_tokens": instance_max_tokens,
        }
        if method == "self-instruct":
            params.update(
                alpaca_blacklist=alpaca_blacklist,
                instances=not no_instances,
                classification_only=classification_only,
            )
        if top_k:
            params["top_k"] = top_k
        params = {k: v for k, v in params.items() if v is not None}
        run = run_generation(method, seeds=seeds, out=out, config=config, params=params)
        s = run.manifest.get("summary", {})
        typer.echo(
            f"kept {s.get('kept_instructions', 0)} instructions, {s.get('kept_records', 0)} records "
            f"-> {run.kept_path} ({s.get('calls', 0)} calls, {s.get('calls_per_kept', 0):.2f} per kept)"
        )
        c.write_report_for(run.path, report)
