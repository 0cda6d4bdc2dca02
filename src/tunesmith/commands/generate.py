"""``tunesmith generate self-instruct|alpaca|sedi``: grow an instruction dataset from seed tasks.

``generate backtranslate`` and ``generate dynosaur`` have their own arguments: see
:mod:`tunesmith.commands._methods`.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import typer

from tunesmith.commands import _common as c
from tunesmith.commands._methods import MethodDispatch
from tunesmith.commands._options import OptionGroup, _option

_SEEDS_HELP = (
    "Seed tasks: 'default' (packaged), the Self-Instruct seed_tasks.jsonl, or any dataset."
)
_TRUNCATION_HELP = (
    "self-instruct: a response cut at max_tokens: drop_response (default, as the reference code) "
    "or drop_last (keep its complete items)."
)


@dataclasses.dataclass(frozen=True)
class GenerateOptions(OptionGroup):
    """The seed-task generators' options (Self-Instruct, Alpaca, SeDi-Instruct)."""

    seeds: str = _option("default", "--seeds", help=_SEEDS_HELP)
    num_instructions: int = _option(
        100, "--num-instructions", "-n", help="Stop after this many kept."
    )
    prompts_per_batch: int = _option(5, "--prompts-per-batch", help="Prompts per request batch.")
    max_tokens: int | None = _option(
        None, "--max-tokens", help="Generation max_tokens (1024 / 3072)."
    )
    instance_max_tokens: int | None = _option(
        None, "--instance-max-tokens", help="Self-Instruct instance max_tokens (300/350)."
    )
    threshold: float | None = _option(
        None, "--threshold", help="ROUGE-L threshold (0.7; sedi 0.85)."
    )
    num_tasks: int | None = _option(
        None, "--num-tasks", help="alpaca/sedi: tasks asked per prompt (20)."
    )
    truncation: str | None = _option(None, "--truncation", help=_TRUNCATION_HELP)
    alpaca_blacklist: bool = _option(
        False,
        "--alpaca-blacklist",
        help="self-instruct: add video, audio, music, flowchart, diagram.",
    )
    classification_only: bool = _option(
        False, "--classification-only", help="self-instruct: ask for classification tasks only."
    )
    top_k: int = _option(
        0, "--top-k", help="Store the k most similar pool texts and the mean ROUGE-L per row."
    )
    no_instances: bool = _option(
        False, "--no-instances", help="self-instruct: stop after the instructions."
    )
    train_batch_size: int | None = _option(
        None, "--train-batch-size", help="sedi: batch size of batches.json (16)."
    )
    prompt_style: str = _option(
        "raw", "--prompt-style", help="raw completion prompts, or chat (one user turn)."
    )
    prompts_dir: Path | None = _option(None, "--prompts-dir", help=c.TEMPLATES_HELP)
    max_rounds: int | None = _option(
        None, "--max-rounds", help="Stop after this many request batches."
    )
    seed: int = _option(42, "--seed", help="RNG seed (prompt sampling).")

    def params(self, method: str) -> dict[str, Any]:
        """The generator parameters of ``method`` (unset ones are left to the method)."""
        params = {
            key: getattr(self, key)
            for key in ("num_instructions", "prompts_per_batch", "max_tokens", "threshold",
                        "num_tasks", "truncation", "train_batch_size", "prompt_style",
                        "prompts_dir", "max_rounds", "seed", "instance_max_tokens")
        }  # fmt: skip
        if method == "self-instruct":
            params.update(alpaca_blacklist=self.alpaca_blacklist, instances=not self.no_instances,
                          classification_only=self.classification_only)  # fmt: skip
        if self.top_k:
            params["top_k"] = self.top_k
        return {k: v for k, v in params.items() if v is not None}


def register(app: typer.Typer) -> None:
    app.command("generate", cls=MethodDispatch)(generate)


@c.options
def generate(
    method: str = typer.Argument(
        ..., help="self-instruct, alpaca, sedi; backtranslate, dynosaur, difftune (own --help)"
    ),
    out: Path = c.OUT,
    *,
    gen: GenerateOptions,
    llm: c.LLMOptions,
    run: c.RunOptions,
) -> None:
    """Generate instructions (and inputs/outputs) with Self-Instruct, Alpaca or SeDi-Instruct."""
    from tunesmith.generate.pipeline import run_generation

    result = run_generation(
        method, seeds=gen.seeds, out=out, config=llm.config(), params=gen.params(method),
        **c.driver_flags(run_generation, run),
    )  # fmt: skip
    typer.echo(c.generation_line(result.path, method, gen.num_instructions))
    c.finish(result.path, run)
