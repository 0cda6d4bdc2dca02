"""Training settings: :class:`SFTConfig` and the presets (no torch import, so the CLI can
validate options before loading anything heavy)."""

from __future__ import annotations

import dataclasses
from typing import Any

from tunesmith.errors import ConfigError

ORDERS = ("shuffle", "sequential")
PRECISIONS = ("auto", "fp32", "bf16", "fp16")

#: SeDi-Instruct Table 3 training settings.
PRESETS: dict[str, dict[str, Any]] = {
    "sedi": {
        "learning_rate": 2e-5,
        "batch_size": 16,
        "epochs": 3.0,
        "warmup_ratio": 0.03,
        "weight_decay": 0.0,
        "max_length": 512,
    },
}


@dataclasses.dataclass
class SFTConfig:
    """Everything that decides a training run (stored verbatim in the manifest).

    Attributes:
        model: HF folder or hub id (offline: cached only); None = embedded SmolLM2-135M-Instruct.
        template: ``auto`` (chat template if the tokenizer has one), ``chat`` or ``alpaca``.
        max_steps: stop after this many optimizer steps (overrides ``epochs`` when > 0).
        order: ``shuffle`` (seeded, reshuffled each epoch) or ``sequential`` (rows as given).
        lora: train LoRA adapters (``lora_r``, ``lora_alpha``, ``lora_dropout``) instead of all
            weights; they are merged into the saved model.
        precision: ``auto`` (bf16 on a CUDA device that has it, else fp32), ``fp32``, ``bf16``,
            ``fp16`` (mixed precision).
        save_steps: checkpoint every this many steps (the resume granularity).
        device: ``auto``, ``cpu``, ``cuda`` or ``mps``.
    """

    model: str | None = None
    template: str = "auto"
    max_length: int = 512
    learning_rate: float = 2e-5
    batch_size: int = 8
    epochs: float = 3.0
    max_steps: int = 0
    warmup_ratio: float = 0.03
    weight_decay: float = 0.0
    lr_scheduler: str = "linear"
    max_grad_norm: float = 1.0
    seed: int = 42
    order: str = "shuffle"
    lora: bool = False
    lora_r: int = 16
    lora_alpha: int = 32
    lora_dropout: float = 0.05
    precision: str = "auto"
    gradient_checkpointing: bool = False
    save_steps: int = 50
    device: str = "auto"

    @classmethod
    def from_preset(cls, preset: str | None, **overrides: Any) -> SFTConfig:
        """The preset's settings with ``overrides`` (those not None) on top."""
        if preset and preset not in PRESETS:
            raise ConfigError(f"unknown preset '{preset}'; choose from {', '.join(PRESETS)}")
        values = {**(PRESETS[preset] if preset else {})}
        values.update({k: v for k, v in overrides.items() if v is not None})
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - names)
        if unknown:
            raise ConfigError(f"unknown training option '{unknown[0]}'")
        return cls(**values)

    def check(self) -> None:
        if self.order not in ORDERS:
            raise ConfigError(f"order must be one of {', '.join(ORDERS)}, not '{self.order}'")
        if self.precision not in PRECISIONS:
            raise ConfigError(f"precision must be one of {', '.join(PRECISIONS)}")
        if self.batch_size < 1 or self.max_length < 2 or self.learning_rate <= 0:
            raise ConfigError("batch_size >= 1, max_length >= 2 and learning_rate > 0 are required")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclasses.dataclass
class FeedbackConfig:
    """The feedback loop's own settings.

    Attributes:
        num_instructions: stop generating once this many instructions are kept.
        rows_per_chunk: instructions kept per generation chunk (default ``every * batch_size``,
            so each feedback decision shapes the next chunk).
        every: feedback period in optimizer steps (10 in the paper); the first period is skipped.
        rouge_threshold: a candidate seed must have ROUGE-L below this to every current seed.
    """

    num_instructions: int = 200
    rows_per_chunk: int = 0
    every: int = 10
    rouge_threshold: float = 0.7
