"""``tunesmith train sft``: fine-tune a model on a dataset or run folder (rerun to resume)."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import typer

from tunesmith.commands import _common as c
from tunesmith.commands._options import OptionGroup, _option
from tunesmith.train.quiet import quiet_transformers

train_app = typer.Typer(help="Train a model on instruction data.", no_args_is_help=True)

PRESET = typer.Option(None, "--preset", help="Settings preset: sedi (lr 2e-5, batch 16, 3 epochs).")
MODEL = typer.Option(
    None, "--model", "-m", help="HF model folder or id (default: embedded SmolLM2-135M)."
)
LR = typer.Option(None, "--lr", help="Peak learning rate (2e-5).")
BATCH = typer.Option(None, "--batch-size", help="Rows per optimizer step (8; sedi 16).")
EPOCHS = typer.Option(None, "--epochs", help="Passes over the data (3).")
MAX_STEPS = typer.Option(None, "--max-steps", help="Stop after N optimizer steps.")
MAX_LENGTH = typer.Option(None, "--max-length", help="Tokens per example (512).")
TEMPLATE = typer.Option(None, "--template", help="auto (chat template if any), chat or alpaca.")
ORDER = typer.Option(None, "--order", help="shuffle (seeded) or sequential.")
LORA = typer.Option(False, "--lora", help="Train LoRA adapters (merged into the saved model).")
PRECISION = typer.Option(None, "--precision", help="auto, fp32, bf16 or fp16.")
GRAD_CKPT = typer.Option(
    False, "--gradient-checkpointing", help="Recompute activations to save memory."
)
SAVE_STEPS = typer.Option(None, "--save-steps", help="Checkpoint every N steps (50).")
SEED = typer.Option(None, "--seed", help="RNG seed (42).")
DEVICE = typer.Option(None, "--device", help="auto, cpu, cuda or mps.")
THREADS = typer.Option(None, "--threads", help="CPU threads (default 1; $TUNESMITH_THREADS).")


def sft_config(preset: str | None, **opts: Any) -> Any:
    """An SFTConfig from the CLI options (None = preset or default)."""
    from tunesmith.train.config import SFTConfig

    names = {"lr": "learning_rate", "gradient_checkpointing": "gradient_checkpointing"}
    values = {names.get(k, k): v for k, v in opts.items()}
    for flag in ("lora", "gradient_checkpointing"):
        values[flag] = values.get(flag) or None  # an unset flag leaves the preset's value
    return SFTConfig.from_preset(preset, **values)


@train_app.command("sft")
@c.options
def sft(
    data: Path = typer.Argument(..., help="Dataset file/folder or a tunesmith run folder."),
    out: Path = c.OUT,
    preset: str = PRESET,
    model: str = MODEL,
    lr: float = LR,
    batch_size: int = BATCH,
    epochs: float = EPOCHS,
    max_steps: int = MAX_STEPS,
    max_length: int = MAX_LENGTH,
    template: str = TEMPLATE,
    order: str = ORDER,
    lora: bool = LORA,
    precision: str = PRECISION,
    gradient_checkpointing: bool = GRAD_CKPT,
    save_steps: int = SAVE_STEPS,
    seed: int = SEED,
    device: str = DEVICE,
    threads: int = THREADS,
    reverse: bool = typer.Option(
        False, "--reverse", help="Train output -> instruction (a backtranslation backward model)."
    ),
    *,
    run: c.RunOptions,
    rows: c.DataOptions,
) -> None:
    """Supervised fine-tuning; writes train_log.jsonl, checkpoints/ and model/ into OUT."""
    cfg = sft_config(
        preset, model=model, lr=lr, batch_size=batch_size, epochs=epochs, max_steps=max_steps,
        max_length=max_length, template=template, order=order, lora=lora, precision=precision,
        gradient_checkpointing=gradient_checkpointing, save_steps=save_steps, seed=seed,
        device=device,
    )  # fmt: skip
    cfg.check()
    records, source = _sft_rows(data, rows, reverse)
    quiet_transformers()
    from tunesmith.train.sft import train_sft

    s = train_sft(records, out, cfg, data_source=source,
                  threads=threads, **c.driver_flags(train_sft, run))  # fmt: skip
    typer.echo(
        f"trained {s.get('steps', 0)} steps on {s.get('rows', 0)} rows "
        f"(final loss {s.get('final_loss') or 0:.4f}) -> {s.get('model_dir')}"
    )
    c.write_report_for(out, run.report, metrics="none")  # the loss curves; the data has its own


def _sft_rows(data: Path, rows: c.DataOptions, reverse: bool) -> tuple[list[Any], str]:
    """The training rows (reversed for Humpback's backward model) and how the run names them."""
    records = rows.read(data)
    if reverse:  # Humpback's M_yx: the response is the prompt, the instruction the target
        from tunesmith.generate.instruction_predictor import reverse_pairs

        records = reverse_pairs(records)
    limit = rows.limit
    source = f"{data}" + (f"[:{limit}]" if limit else "") + (" reversed" if reverse else "")
    return records, source


@dataclasses.dataclass(frozen=True)
class SediLoopOptions(OptionGroup):
    """The SeDi-Instruct loop's generation side and its feedback schedule."""

    seeds: str = _option("default", "--seeds", help="Seed tasks: 'default' or a dataset.")
    num_instructions: int = _option(
        200, "--num-instructions", "-n", help="Stop generating after this many kept."
    )
    every: int = _option(10, "--every", help="Feedback every N steps (first N skipped).")
    rows_per_chunk: int = _option(
        0, "--rows-per-chunk", help="Kept rows per generation chunk (default every x batch)."
    )
    max_tokens: int | None = _option(None, "--max-tokens", help="Generation max_tokens (3072).")
    prompts_per_batch: int | None = _option(None, "--prompts-per-batch")
    num_tasks: int | None = _option(None, "--num-tasks", help="Tasks asked per prompt (20).")
    prompt_style: str | None = _option(None, "--prompt-style", help="raw or chat.")
    train_model: str | None = _option(
        None, "--train-model", help="Model to train (default: embedded SmolLM2-135M)."
    )

    def feedback(self) -> Any:
        """The feedback schedule (target kept, chunk size, every N steps)."""
        from tunesmith.train.config import FeedbackConfig

        return FeedbackConfig(self.num_instructions, self.rows_per_chunk, self.every)

    def gen_params(self) -> dict[str, Any]:
        """The generator's parameters (None = the SeDi generator's default)."""
        return {"max_tokens": self.max_tokens, "prompts_per_batch": self.prompts_per_batch,
                "num_tasks": self.num_tasks, "prompt_style": self.prompt_style}  # fmt: skip


@train_app.command("sedi-loop")
@c.options
def sedi_loop(
    out: Path = c.OUT,
    *,
    loop: SediLoopOptions,
    preset: str = PRESET,
    lr: float = LR,
    batch_size: int = typer.Option(
        None, "--batch-size", help="Clusters = rows per step, a power of two (8; sedi 16)."
    ),
    max_steps: int = MAX_STEPS,
    max_length: int = MAX_LENGTH,
    template: str = TEMPLATE,
    lora: bool = LORA,
    precision: str = PRECISION,
    save_steps: int = SAVE_STEPS,
    seed: int = SEED,
    device: str = DEVICE,
    llm: c.LLMOptions,
    run: c.RunOptions,
) -> None:
    """SeDi-Instruct's loop: generate with --model while training --train-model on the kept
    rows; the highest grad-norm batches become seeds, the lowest-scoring seeds are evicted."""
    from tunesmith.train.batching import quadrant_dims

    cfg = sft_config(
        preset, model=loop.train_model, lr=lr, batch_size=batch_size, max_steps=max_steps,
        max_length=max_length, template=template, lora=lora, precision=precision,
        save_steps=save_steps, seed=seed, device=device,
    )  # fmt: skip
    cfg.check()
    quadrant_dims(cfg.batch_size)  # clusters = rows per step: a power of two
    fb = loop.feedback()
    quiet_transformers()
    from tunesmith.train.sedi_loop import run_sedi_feedback

    s = run_sedi_feedback(out, llm_config=llm.config(), sft=cfg, feedback=fb, seeds=loop.seeds,
                          gen_params=loop.gen_params(), threads=llm.threads,
                          **c.driver_flags(run_sedi_feedback, run))  # fmt: skip
    typer.echo(
        f"kept {s.get('kept', 0)} rows, trained {s.get('steps', 0)} steps "
        f"(final loss {s.get('final_loss') or 0:.4f}), {s.get('seed_replacements', 0)} seed "
        f"replacements, {s.get('calls', 0)} calls -> {s.get('model_dir')}"
    )
    c.write_report_for(out, run.report)


def register(app: typer.Typer) -> None:
    app.add_typer(train_app, name="train")
