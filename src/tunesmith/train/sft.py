"""Supervised fine-tuning on any tunesmith dataset, on the Hugging Face ``Trainer``.

Every seed method ends by training a model on its data (SeDi-Instruct, Kim, Kim & Lee 2025, train
LLaMA-3-8B with lr 2e-5, batch 16, 3 epochs, warmup ratio 0.03, no weight decay, max length 512:
the ``sedi`` preset). This module adds, on top of the well-kept ``transformers.Trainer``:

- prompt-completion examples with the loss on response tokens only (:mod:`.data`), in the
  model's chat template or an Alpaca-style layout;
- full fine-tuning, or LoRA (peft) by a flag, merged into the saved model so that ``model/``
  loads like any HF checkpoint (``--backend transformers --model DIR/model``);
- per-step loss, learning rate and pre-clip gradient norm in ``train_log.jsonl``; a live bar;
- checkpoints, and a rerun of the same command resumes a killed run from the newest complete one;
- seeded determinism (``Trainer`` seeds torch and its sampler; no dropout is added here).

No gradient accumulation: one batch is one optimizer step, as SeDi's feedback loop needs (the
gradient norm of a step belongs to exactly one batch of rows).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from tunesmith.errors import ConfigError, MissingExtra, require
from tunesmith.records import Record
from tunesmith.train.config import PRESETS, SFTConfig
from tunesmith.train.data import Collator, Example, encode_all, resolve_template
from tunesmith.train.folder import TrainFolder

try:
    from transformers import Trainer
except ImportError as exc:  # the hf extra is not installed
    raise MissingExtra("transformers", "hf") from exc

__all__ = ["PRESETS", "SFTConfig", "build_trainer", "load_model", "run_training", "train_sft"]


def resolve_device(device: str) -> str:
    import torch

    if device != "auto":
        return device
    if torch.cuda.is_available():
        return "cuda"
    mps = getattr(torch.backends, "mps", None)
    return "mps" if mps is not None and mps.is_available() else "cpu"


def load_model(cfg: SFTConfig) -> tuple[Any, Any]:
    """The causal LM (fp32 master weights) and its tokenizer; LoRA-wrapped when ``cfg.lora``."""
    transformers: Any = require("transformers", "hf")
    from tunesmith.llm.models import resolve_hf_model

    path = resolve_hf_model(cfg.model)
    try:
        tok = transformers.AutoTokenizer.from_pretrained(path)
        model = transformers.AutoModelForCausalLM.from_pretrained(path, dtype="float32")
    except OSError as exc:
        raise ConfigError(f"cannot load model '{cfg.model}': {str(exc).splitlines()[0]}") from None
    if tok.pad_token_id is None:
        tok.pad_token = tok.eos_token
    if cfg.lora:
        peft: Any = require("peft", "train")
        lora = peft.LoraConfig(
            r=cfg.lora_r,
            lora_alpha=cfg.lora_alpha,
            lora_dropout=cfg.lora_dropout,
            target_modules="all-linear",
            task_type="CAUSAL_LM",
        )
        model = peft.get_peft_model(model, lora)
    return model, tok


class StepRecordingTrainer(Trainer):  # type: ignore[misc]
    """``Trainer`` that records, per optimizer step, its rows and non-pad token count.

    The collator passes the record ids as ``row_ids``; they are removed here before the forward
    pass. With no gradient accumulation one ``training_step`` call is one optimizer step, which
    becomes step ``global_step + 1`` once the optimizer has run.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.steps: dict[int, dict[str, Any]] = {}

    def training_step(
        self, model: Any, inputs: dict[str, Any], num_items_in_batch: Any = None
    ) -> Any:
        rows = inputs.pop("row_ids", [])
        tokens = int(inputs["attention_mask"].sum()) if "attention_mask" in inputs else 0
        step = int(self.state.global_step) + 1
        self.steps[step] = {"rows": list(rows), "tokens": tokens}
        self.steps.pop(step - 8, None)  # the callbacks read a step right after it ran
        return super().training_step(model, inputs, num_items_in_batch)

    def step_info(self, step: int) -> dict[str, Any]:
        return self.steps.get(step, {})


def training_arguments(cfg: SFTConfig, output_dir: Path, device: str) -> Any:
    """The ``TrainingArguments`` for ``cfg``: log every step, checkpoint every ``save_steps``."""
    transformers: Any = require("transformers", "hf")
    import torch

    fields = transformers.TrainingArguments.__dataclass_fields__
    # transformers 5 renamed gradient_checkpointing (the old name warns until v6)
    ckpt_arg = (
        "activation_checkpointing"
        if "activation_checkpointing" in fields
        else "gradient_checkpointing"
    )
    precision = cfg.precision
    if precision == "auto":
        precision = "bf16" if device == "cuda" and torch.cuda.is_bf16_supported() else "fp32"
    return transformers.TrainingArguments(
        output_dir=str(output_dir),
        per_device_train_batch_size=cfg.batch_size,
        gradient_accumulation_steps=1,
        learning_rate=cfg.learning_rate,
        num_train_epochs=cfg.epochs,
        max_steps=cfg.max_steps if cfg.max_steps > 0 else -1,
        warmup_steps=cfg.warmup_ratio,  # a float < 1 is a ratio of the total steps
        weight_decay=cfg.weight_decay,
        lr_scheduler_type=cfg.lr_scheduler,
        max_grad_norm=cfg.max_grad_norm,
        seed=cfg.seed,
        data_seed=cfg.seed,
        train_sampling_strategy="random" if cfg.order == "shuffle" else "sequential",
        bf16=precision == "bf16",
        fp16=precision == "fp16",
        **{ckpt_arg: cfg.gradient_checkpointing},
        logging_steps=1,
        save_strategy="steps",
        save_steps=cfg.save_steps,
        save_total_limit=2,
        report_to="none",
        remove_unused_columns=False,
        dataloader_num_workers=0,
        disable_tqdm=True,
        use_cpu=device == "cpu",
    )


def build_trainer(
    model: Any,
    tokenizer: Any,
    train_dataset: Any,
    cfg: SFTConfig,
    folder: TrainFolder,
    callbacks: Sequence[Any] = (),
    progress: bool = True,
) -> StepRecordingTrainer:
    """A :class:`StepRecordingTrainer` writing its log and checkpoints into ``folder``."""
    from transformers.trainer_callback import PrinterCallback

    from tunesmith.train.callbacks import CheckpointMarker, RichProgress, StepLog

    args = training_arguments(cfg, folder.checkpoints_dir, resolve_device(cfg.device))
    trainer = StepRecordingTrainer(
        model=model,
        args=args,
        train_dataset=train_dataset,
        data_collator=Collator(int(tokenizer.pad_token_id)),
        processing_class=tokenizer,
    )
    trainer.remove_callback(PrinterCallback)  # our own bar and log replace the printed dicts
    trainer.add_callback(StepLog(folder, trainer.step_info))
    trainer.add_callback(CheckpointMarker(folder))
    if progress:
        trainer.add_callback(RichProgress(trainer.step_info, "sft"))
    for cb in callbacks:
        trainer.add_callback(cb)
    return trainer


def save_model(model: Any, tokenizer: Any, folder: TrainFolder) -> Path:
    """Write the tuned model (LoRA merged in) and tokenizer to ``model/``, atomically."""
    staged = folder.staging_model_dir()
    if hasattr(model, "merge_and_unload"):
        model = model.merge_and_unload()
    model.save_pretrained(staged)
    tokenizer.save_pretrained(staged)
    return folder.publish_model(staged)


def train_sft(
    records: Sequence[Record],
    out: str | os.PathLike[str],
    cfg: SFTConfig | None = None,
    *,
    data_source: str = "",
    threads: int | None = None,
    progress: bool = True,
    force_new: bool = False,
) -> dict[str, Any]:
    """Fine-tune on ``records`` into run folder ``out``; a rerun resumes a killed run.

    Args:
        records: the training rows (instruction, input, output); rows without an output are
            skipped.
        out: the run folder (``train_log.jsonl``, ``checkpoints/``, ``model/``, manifest).
        cfg: the training settings (default :class:`SFTConfig`).
        data_source: where the records came from (stored in the manifest).
        threads: torch CPU threads (default ``$TUNESMITH_THREADS`` or 1).
        force_new: set a run already in ``out`` aside and start over.

    Returns:
        The run summary: steps, final loss, tokens, rows used and skipped, the model folder.
    """
    import torch

    cfg = cfg or SFTConfig()
    cfg.check()
    torch.set_num_threads(int(threads or os.environ.get("TUNESMITH_THREADS", "1")))
    from tunesmith.driver import fingerprint

    config = {"sft": cfg.to_dict(), "data": data_source}
    folder = TrainFolder.open(
        out, method="sft", config=config, inputs=fingerprint(records), force_new=force_new
    )
    if folder.is_done:
        return dict(folder.manifest.get("summary") or {})
    with folder.driver:  # records "failed" (+ error) or "stopped (budget)" if training raises
        model, tok = load_model(cfg)
        template = resolve_template(cfg.template, tok)
        examples, skipped = encode_all(records, tok, template, cfg.max_length)
        if not examples:
            raise ConfigError(f"no trainable rows in {data_source or 'the data'} (empty outputs?)")
        trainer = build_trainer(model, tok, examples, cfg, folder, progress=progress)
        return run_training(trainer, folder, model, tok, examples=examples, skipped=skipped)


def run_training(
    trainer: Any,
    folder: TrainFolder,
    model: Any,
    tokenizer: Any,
    *,
    examples: Sequence[Example],
    skipped: Sequence[str] = (),
    **summary: Any,
) -> dict[str, Any]:
    """Train (resuming from the newest complete checkpoint), save ``model/``, finish the run.

    Call it inside ``with folder.driver:`` so a failure or a budget stop is recorded.
    """
    ckpt = folder.last_checkpoint()
    if ckpt is not None:
        step = int(ckpt.name.split("-")[1])
        folder.truncate_logs(step)
        folder.log_event(stage="train", resumed_from_step=step)
    else:
        folder.truncate_logs(0)
    result = trainer.train(resume_from_checkpoint=str(ckpt) if ckpt else None)
    path = save_model(model, tokenizer, folder)
    log = folder.read_log()
    done = {
        "trained": True,
        "steps": int(result.global_step),
        "final_loss": log[-1]["loss"] if log else None,
        "train_loss": float(result.training_loss),
        "tokens": sum(int(r.get("tokens", 0)) for r in log),
        "rows": len(examples),
        "skipped_rows": len(skipped),
        "model_dir": str(path),
        **summary,
    }
    folder.finish("done", **done)
    return done
