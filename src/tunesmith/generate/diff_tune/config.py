"""DiffTune settings and presets (Wang & Liu 2023, Table 7; LD4LG, Lovelace et al. 2023).

``paper`` is DiffTune's Table 7 (1000 steps, linear schedule, L1 loss, 12 x 768 denoiser, AdamW
1e-4, batch 64, warmup 1000, cosine decay, weight decay 1e-6, clip 1.0, EMA 0.9999, 300K steps)
over a BART-base-sized autoencoder. ``small`` is the CPU-sized model of the Table 3 benchmark and
``tiny`` trains in a few minutes on one CPU thread (tests, trying it out).
"""

from __future__ import annotations

import dataclasses
from typing import Any

from tunesmith.errors import ConfigError

SCHEDULES = ("linear", "cosine")
OBJECTIVES = ("pred_x0", "pred_v", "pred_eps")
LOSSES = ("l1", "l2")


@dataclasses.dataclass
class DiffTuneConfig:
    """Every setting of a DiffTune training run (stored verbatim in the run's manifest)."""

    # data and tokenizer
    field: str = "instruction"
    max_length: int = 64  # DiffTune: max length 64 tokens
    vocab_size: int = 8000  # byte-level BPE trained on the corpus (from-scratch autoencoder only)
    # autoencoder: a BART-architecture model trained from scratch, or a named pretrained BART
    autoencoder: str | None = None  # None = from scratch; else a local BART folder / hub id
    ae_d_model: int = 768
    ae_layers: int = 6
    ae_heads: int = 12
    ae_ffn: int = 3072
    ae_dropout: float = 0.1
    ae_steps: int = 20000
    ae_lr: float = 1e-4  # LD4LG autoencoder lr
    ae_batch_size: int = 64
    # LD4LG compression: a Perceiver resampler to num_latents x latent_dim (0 = per-token latents)
    num_latents: int = 0
    latent_dim: int = 64
    compress_layers: int = 3
    # denoiser and diffusion
    dim: int = 768
    layers: int = 12
    heads: int = 12
    diffusion_steps: int = 1000
    schedule: str = "linear"
    objective: str = "pred_x0"
    loss: str = "l1"
    self_condition_prob: float = 0.5  # LD4LG: self-conditioning with probability 0.5
    steps: int = 300000
    lr: float = 1e-4
    batch_size: int = 64
    warmup_steps: int = 1000
    weight_decay: float = 1e-6
    clip: float = 1.0
    ema_decay: float = 0.9999
    # run
    save_steps: int = 1000
    log_steps: int = 10
    seed: int = 42

    @classmethod
    def from_preset(cls, preset: str | None, **overrides: Any) -> DiffTuneConfig:
        """The preset's settings with the non-None ``overrides`` applied."""
        name = preset or "tiny"
        if name not in PRESETS:
            raise ConfigError(
                f"unknown difftune preset '{name}' (choose from {', '.join(PRESETS)})"
            )
        values = {**PRESETS[name], **{k: v for k, v in overrides.items() if v is not None}}
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ConfigError(f"unknown difftune setting '{unknown[0]}'")
        cfg = cls(**values)
        cfg.check()
        return cfg

    def check(self) -> None:
        """One-line ConfigError for an impossible setting."""
        for name, value, allowed in (
            ("schedule", self.schedule, SCHEDULES),
            ("objective", self.objective, OBJECTIVES),
            ("loss", self.loss, LOSSES),
        ):
            if value not in allowed:
                raise ConfigError(f"difftune {name} '{value}' (choose from {', '.join(allowed)})")
        if self.dim % self.heads or (self.autoencoder is None and self.ae_d_model % self.ae_heads):
            raise ConfigError("difftune: model width must be a multiple of the number of heads")
        if self.steps < 1 or self.ae_steps < 0 or self.batch_size < 1:
            raise ConfigError("difftune: steps and batch sizes must be positive")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


PRESETS: dict[str, dict[str, Any]] = {
    # DiffTune Table 7 (the autoencoder is BART-base-sized; name facebook/bart-base to use it)
    "paper": {},
    # CPU model of the Table 3 benchmark: a 2+2-layer x 128 BART, a 3 x 256 denoiser
    "small": {
        "vocab_size": 4000, "ae_d_model": 128, "ae_layers": 2, "ae_heads": 4, "ae_ffn": 512,
        "ae_steps": 1000, "ae_lr": 1e-3, "ae_batch_size": 32, "dim": 256, "layers": 3,
        "heads": 4, "steps": 1500, "lr": 5e-4, "batch_size": 64, "warmup_steps": 100,
        "ema_decay": 0.999, "save_steps": 250,
    },
    # a few minutes on one CPU thread
    "tiny": {
        "vocab_size": 1000, "ae_d_model": 64, "ae_layers": 2, "ae_heads": 4, "ae_ffn": 256,
        "ae_dropout": 0.0, "ae_steps": 300, "ae_lr": 2e-3, "ae_batch_size": 16, "dim": 64,
        "layers": 2, "heads": 4, "steps": 300, "lr": 1e-3, "batch_size": 16,
        "warmup_steps": 20, "ema_decay": 0.99, "save_steps": 100, "log_steps": 10,
    },
}  # fmt: skip
