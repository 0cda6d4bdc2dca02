"""Sampling instructions from a trained DiffTune model (Wang & Liu 2023, sections 2.2-2.3).

For each instruction: a length l drawn from the training set's empirical distribution of latent
lengths, Z_T of shape (l x d) from the chosen noise strategy (:mod:`.noise`; 30% of the token
vectors from N(0, 10 I) by default), the reverse diffusion with the EMA denoiser (DDPM or DDIM,
a settable number of steps), then beam search through the BART decoder with DiffTune's Table 8
settings (10 beams, no sampling, no repeated 2-grams, repetition penalty 4.0, 8-64 tokens).
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import torch

from tunesmith.errors import ConfigError
from tunesmith.generate.diff_tune.autoencoder import LatentAutoencoder, load_autoencoder
from tunesmith.generate.diff_tune.config import DiffTuneConfig
from tunesmith.generate.diff_tune.denoiser import Denoiser
from tunesmith.generate.diff_tune.diffusion import GaussianDiffusion
from tunesmith.generate.diff_tune.noise import DEFAULT_STRATEGY, check_strategy, draw_noise


@dataclasses.dataclass
class SamplingSettings:
    """How Z_T is drawn, how it is denoised and how latents are decoded (DiffTune defaults)."""

    strategy: str = DEFAULT_STRATEGY
    share: float = 0.3
    variance: float = 10.0
    df: int = 2
    sampling_steps: int = 250  # LD4LG samples with 250 steps
    sampler: str = "ddpm"
    num_beams: int = 10  # DiffTune Table 8
    no_repeat_ngram_size: int = 2
    repetition_penalty: float = 4.0
    min_length: int = 8
    max_length: int = 64
    batch_size: int = 32

    def check(self) -> None:
        self.strategy = check_strategy(self.strategy)
        if self.sampler not in ("ddpm", "ddim"):
            raise ConfigError(f"unknown sampler '{self.sampler}' (ddpm or ddim)")
        if self.sampling_steps < 1 or self.num_beams < 1 or self.batch_size < 1:
            raise ConfigError("sampling steps, beams and batch size must be positive")

    def decoding(self) -> dict[str, Any]:
        """Keyword arguments for ``generate`` (beam search, no sampling)."""
        return {"num_beams": self.num_beams, "do_sample": False, "early_stopping": True,
                "no_repeat_ngram_size": self.no_repeat_ngram_size,
                "repetition_penalty": self.repetition_penalty,
                "min_length": self.min_length, "max_length": self.max_length}  # fmt: skip


@dataclasses.dataclass
class DiffTuneModel:
    """A trained model folder, loaded: autoencoder, EMA denoiser, schedule, length table."""

    ae: LatentAutoencoder
    tokenizer: Any
    denoiser: Denoiser
    diffusion: GaussianDiffusion
    config: DiffTuneConfig
    lengths: dict[int, int]
    train_texts: list[str]


def model_folder(path: str | Path) -> Path:
    """The ``model/`` folder of a training run folder, or the folder itself."""
    p = Path(path)
    for cand in (p / "model", p):
        if (cand / "difftune.json").exists():
            return cand
    raise ConfigError(f"{p}: not a trained DiffTune model (no difftune.json; train it first)")


def load_model(path: str | Path) -> DiffTuneModel:
    """Load a model written by ``tunesmith train difftune`` (safetensors, no pickle)."""
    from safetensors.torch import load_file

    folder = model_folder(path)
    meta = json.loads((folder / "difftune.json").read_text(encoding="utf-8"))
    cfg = DiffTuneConfig(**meta["config"])
    ae, tokenizer = load_autoencoder(folder, cfg)
    den = Denoiser(meta["latent_dim"], cfg.dim, cfg.layers, cfg.heads, meta["max_len"])
    den.load_state_dict(load_file(str(folder / "denoiser.safetensors")))
    diffusion = GaussianDiffusion(steps=cfg.diffusion_steps, schedule=cfg.schedule,
                                  objective=cfg.objective, loss=cfg.loss)  # fmt: skip
    texts_path = folder / "train_texts.json"
    texts = json.loads(texts_path.read_text(encoding="utf-8")) if texts_path.exists() else []
    lengths = {int(k): int(v) for k, v in meta["lengths"].items()}
    return DiffTuneModel(ae, tokenizer, den.eval(), diffusion, cfg, lengths, texts)


def sample_lengths(lengths: dict[int, int], n: int, generator: torch.Generator) -> list[int]:
    """n latent lengths drawn from the empirical distribution ``{length: count}``."""
    values = torch.tensor(list(lengths), dtype=torch.long)
    weights = torch.tensor(list(lengths.values()), dtype=torch.float)
    return values[torch.multinomial(weights, n, replacement=True, generator=generator)].tolist()


@torch.no_grad()
def sample_latents(
    model: DiffTuneModel, n: int, settings: SamplingSettings, generator: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Denoised latents (n, L, d), their mask (n, L) and which vectors of Z_T were redrawn."""
    lens = sample_lengths(model.lengths, n, generator)
    longest = max(lens)
    mask = torch.arange(longest).unsqueeze(0) < torch.tensor(lens).unsqueeze(1)  # (n, L)
    z_t, redrawn = draw_noise((n, longest, model.ae.latent_dim), settings.strategy,
                              share=settings.share, variance=settings.variance, df=settings.df,
                              generator=generator)  # fmt: skip
    x0 = model.diffusion.sample(model.denoiser, z_t, mask, sampling_steps=settings.sampling_steps,
                                sampler=settings.sampler, generator=generator)  # fmt: skip
    return x0, mask, redrawn & mask


def decode(
    model: DiffTuneModel, z: torch.Tensor, mask: torch.Tensor, settings: SamplingSettings
) -> list[str]:
    """Latents (B, L, d) -> texts by beam search through the BART decoder."""
    ids = model.ae.generate(z, mask, **settings.decoding())
    return [t.strip() for t in model.tokenizer.batch_decode(ids, skip_special_tokens=True)]


def sample_instructions(
    model: DiffTuneModel, n: int, settings: SamplingSettings, *, seed: int = 0
) -> list[dict[str, Any]]:
    """n sampled instructions as ``{"text", "length", "redrawn"}`` (seeded, batched)."""
    settings.check()
    generator = torch.Generator().manual_seed(seed)
    out: list[dict[str, Any]] = []
    while len(out) < n:
        b = min(settings.batch_size, n - len(out))
        z, mask, redrawn = sample_latents(model, b, settings, generator)
        for text, m, r in zip(decode(model, z, mask, settings), mask, redrawn, strict=True):
            out.append({"text": text, "length": int(m.sum()), "redrawn": int(r.sum())})
    return out
