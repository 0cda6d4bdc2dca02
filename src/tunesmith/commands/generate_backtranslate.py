"""``tunesmith generate backtranslate UNLABELLED --seeds SEEDS --out RUN``: Humpback's instruction
backtranslation (reached through ``generate``; see :mod:`tunesmith.commands._methods`)."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import typer

from tunesmith.commands import _common as c
from tunesmith.commands._options import OptionGroup, _option
from tunesmith.llm.factory import LLMConfig

app = typer.Typer(add_completion=False, pretty_exceptions_enable=False)


@dataclasses.dataclass(frozen=True)
class BacktranslateOptions(OptionGroup):
    """Humpback's settings: segmenting, the backward model, self-curation, optional M1 training."""

    text_field: str | None = _option(
        None, "--text-field", help="Column with the text (default: text, content, output ...)."
    )
    min_chars: int = _option(1000, "--min-chars", help="Shortest segment (characters).")
    max_chars: int = _option(2200, "--max-chars", help="Longest segment (characters).")
    min_line_chars: int = _option(
        5, "--min-line-chars", help="Shortest non-blank line (0: no rule)."
    )
    short_lines: str = _option(
        "reject", "--short-lines", help="reject the document with a short line, or drop the line."
    )
    split_long: bool = _option(
        False, "--split-long", help="Cut longer documents into segments instead of skipping them."
    )
    examples: int = _option(3, "--examples", help="Seed pairs shown to the backward model.")
    backward_mode: str = _option(
        "few-shot", "--backward-mode", help="few-shot, or finetuned (a reversed-SFT model)."
    )
    backward_model: str | None = _option(
        None, "--backward-model", help="A separate backward model M_yx (same backend options)."
    )
    backward_backend: str | None = _option(
        None, "--backward-backend", help="Backend of --backward-model (default: --backend)."
    )
    backward_max_tokens: int = _option(
        128, "--backward-tokens", help="max_tokens of a predicted instruction."
    )
    min_score: int = _option(5, "--min-score", "-k", help="Keep pairs rated >= k (A_5).")
    iterations: int = _option(1, "--iterations", help="Self-curation rounds.")
    curator_model: list[str] | None = _option(
        None, "--curator-model", help="M1, M2 ... curating rounds 2, 3 ... (repeatable)."
    )
    train_m1: bool = _option(
        False, "--train-m1", help="Train M1, M2 ... with tunesmith train sft (into RUN/m<i>)."
    )
    train_max_steps: int = _option(
        0, "--train-max-steps", help="--train-m1: optimizer steps (0: the trainer's epochs)."
    )
    judge_max_tokens: int = _option(
        384, "--judge-max-tokens", help="max_tokens of a curation reply (reasoning + score)."
    )
    with_seeds: bool = _option(
        False, "--with-seeds", help="Write the seed rows (tagged seed) into kept.jsonl too."
    )
    batch_size: int = _option(16, "--batch-size", help="Rows per checkpointed batch.")
    prompts_dir: Path | None = _option(None, "--prompts-dir", help=c.TEMPLATES_HELP)
    seed: str = _option("42", "--seed", help="RNG seed (few-shot example choice).")

    def params(self) -> dict[str, Any]:
        """The generator's parameters (``--seed`` must be an integer: it is not the seed data)."""
        from tunesmith.errors import ConfigError

        if not self.seed.lstrip("-").isdigit():
            raise ConfigError(
                "--seed is the RNG seed (an integer); give the seed data with --seeds"
            )
        return {
            "min_chars": self.min_chars, "max_chars": self.max_chars,
            "min_line_chars": self.min_line_chars, "short_lines": self.short_lines,
            "split_long": self.split_long, "num_examples": self.examples,
            "backward_mode": self.backward_mode, "backward_max_tokens": self.backward_max_tokens,
            "min_score": self.min_score, "iterations": self.iterations,
            "judge_max_tokens": self.judge_max_tokens, "include_seeds": self.with_seeds,
            "batch_size": self.batch_size, "seed": int(self.seed),
            "prompts_dir": str(self.prompts_dir) if self.prompts_dir else None,
        }  # fmt: skip

    def backward(self, config: LLMConfig) -> LLMConfig | None:
        """M_yx's client: the same settings with ``--backward-model``, or its own local backend."""
        if not self.backward_model:
            return None
        backward = dataclasses.replace(config, model=self.backward_model)
        if self.backward_backend and self.backward_backend != config.backend:
            backward = dataclasses.replace(backward, backend=self.backward_backend, options={})
        return backward

    def curators(self, config: LLMConfig) -> list[LLMConfig]:
        """The clients of curating rounds 2, 3 ... (``--curator-model``)."""
        return [dataclasses.replace(config, model=m) for m in self.curator_model or []]

    def trainer(self, out: Path, threads: int | None) -> Any:
        """The M1 trainer of ``--train-m1`` (None without it)."""
        from tunesmith.errors import ConfigError
        from tunesmith.generate.backtranslation_run import sft_trainer, training_available

        if not self.train_m1:
            return None
        if not training_available():
            raise ConfigError("--train-m1 needs 'tunesmith train sft', which this install lacks; "
                              "train M1 yourself and pass --curator-model")  # fmt: skip
        return sft_trainer(out, max_steps=self.train_max_steps, threads=threads)


@app.command("backtranslate")
@c.options
def backtranslate(
    unlabelled: Path = typer.Argument(
        ..., help="Documents: .jsonl/.json/.parquet (one per row), .txt/.md, or a folder."
    ),
    seeds: Path = typer.Option(
        ..., "--seeds", help="Seed (instruction, output) pairs: any dataset tunesmith reads."
    ),
    out: Path = c.OUT,
    *,
    bt: BacktranslateOptions,
    llm: c.LLMOptions,
    run: c.RunOptions,
) -> None:
    """Predict the instruction each document answers; keep what the seed model rates >= k."""
    from tunesmith.generate.backtranslation_run import run_backtranslation

    params = bt.params()
    config = llm.config()
    result = run_backtranslation(
        unlabelled, seeds=seeds, out=out, config=config, params=params, text_field=bt.text_field,
        backward=bt.backward(config), curators=bt.curators(config),
        trainer=bt.trainer(out, llm.threads), **c.driver_flags(run_backtranslation, run),
    )  # fmt: skip
    s = json.loads((result.path / "backtranslation.json").read_text(encoding="utf-8"))
    typer.echo(
        f"backtranslate: {s['documents']} documents -> {s['segments']} segments -> "
        f"{s['candidates']} instructions -> kept {s['augmented_kept']} rated >= {s['min_score']} "
        f"({s['calls']} calls, ${s['cost_usd']:.4f}) -> {result.kept_path}"
    )
    c.write_report_for(result.path, run.report)
