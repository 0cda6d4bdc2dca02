"""Gaussian diffusion over latent sequences: schedules, the training loss and DDPM/DDIM steps.

DiffTune (Wang & Liu 2023, Table 7) trains with 1000 steps, a linear beta schedule and an L1
regression loss on the clean latent; LD4LG (Lovelace et al. 2023) uses a cosine schedule,
v-prediction and L2. Both are settings here. Timesteps are integers 0..T-1; the denoiser sees
t / T. All tensors are (B, L, d) latents with a (B, L) bool mask of real positions.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

from tunesmith.errors import ConfigError

#: denoiser(x_t (B,L,d), t (B,) in [0,1], mask (B,L), self_cond (B,L,d) | None) -> (B,L,d)
DenoiseFn = Callable[[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor | None], torch.Tensor]


def alpha_bar_schedule(name: str, steps: int) -> torch.Tensor:
    """Cumulative signal level alpha_bar_t for t = 0..T-1 (float64, decreasing)."""
    if name == "linear":  # Ho et al. 2020 betas 1e-4 .. 0.02, scaled to T steps
        scale = 1000 / steps
        betas = torch.linspace(scale * 1e-4, scale * 0.02, steps, dtype=torch.float64)
        return torch.cumprod(1 - betas, 0)
    if name == "cosine":  # Nichol & Dhariwal 2021
        s = 0.008
        x = torch.arange(steps + 1, dtype=torch.float64) / steps
        f = torch.cos((x + s) / (1 + s) * math.pi / 2) ** 2
        betas = (1 - f[1:] / f[:-1]).clamp(max=0.999)
        return torch.cumprod(1 - betas, 0)
    raise ConfigError(f"unknown noise schedule '{name}' (linear or cosine)")


class GaussianDiffusion:
    """Forward noising, the regression loss and the reverse sampler for one schedule/objective."""

    def __init__(self, *, steps: int, schedule: str, objective: str, loss: str) -> None:
        self.steps = steps
        self.objective = objective
        self.loss = loss
        self.alpha_bar = alpha_bar_schedule(schedule, steps).float()  # (T,)

    def _ab(self, t: torch.Tensor) -> torch.Tensor:
        return self.alpha_bar.to(t.device)[t].view(-1, 1, 1)  # (B, 1, 1)

    def q_sample(self, x0: torch.Tensor, t: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        """x_t = sqrt(ab_t) x0 + sqrt(1 - ab_t) eps."""
        ab = self._ab(t)
        return ab.sqrt() * x0 + (1 - ab).sqrt() * noise

    def predict(
        self, fn: DenoiseFn, x_t: torch.Tensor, t: torch.Tensor, mask: torch.Tensor,
        self_cond: torch.Tensor | None,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:  # fmt: skip
        """(raw output, x0 estimate, eps estimate) from the denoiser at integer steps t."""
        out = fn(x_t, t.float() / self.steps, mask, self_cond)
        ab = self._ab(t)
        if self.objective == "pred_x0":
            x0 = out
        elif self.objective == "pred_v":  # v = sqrt(ab) eps - sqrt(1-ab) x0
            x0 = ab.sqrt() * x_t - (1 - ab).sqrt() * out
        else:
            x0 = (x_t - (1 - ab).sqrt() * out) / ab.sqrt()
        eps = (x_t - ab.sqrt() * x0) / (1 - ab).sqrt().clamp(min=1e-8)
        return out, x0, eps

    def target(self, x0: torch.Tensor, noise: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        if self.objective == "pred_x0":
            return x0
        if self.objective == "pred_eps":
            return noise
        ab = self._ab(t)
        return ab.sqrt() * noise - (1 - ab).sqrt() * x0

    def training_loss(
        self, fn: DenoiseFn, x0: torch.Tensor, mask: torch.Tensor, self_condition_prob: float
    ) -> torch.Tensor:
        """Masked L1/L2 regression loss at uniformly drawn steps (global torch RNG).

        Self-conditioning (Chen et al. 2022, as LD4LG): with probability p, a first pass without
        gradients estimates x0, and the second pass sees that estimate as extra input.
        """
        b = x0.shape[0]
        t = torch.randint(0, self.steps, (b,), device=x0.device)  # (B,)
        noise = torch.randn_like(x0)
        x_t = self.q_sample(x0, t, noise)
        self_cond = None
        if self_condition_prob > 0 and torch.rand(()) < self_condition_prob:
            with torch.no_grad():
                _, est, _ = self.predict(fn, x_t, t, mask, None)
            self_cond = est.detach()
        out, _, _ = self.predict(fn, x_t, t, mask, self_cond)
        err = out - self.target(x0, noise, t)
        err = err.abs() if self.loss == "l1" else err.pow(2)
        m = mask.unsqueeze(-1).to(err.dtype)  # (B, L, 1)
        return (err * m).sum() / (m.sum() * x0.shape[-1]).clamp(min=1)

    def timesteps(self, sampling_steps: int) -> list[int]:
        """Evenly strided steps T-1 .. 0 for a sampler of ``sampling_steps`` steps."""
        n = max(1, min(sampling_steps, self.steps))
        grid = torch.linspace(self.steps - 1, 0, n).round().long().tolist()
        return sorted(set(grid), reverse=True)

    @torch.no_grad()
    def sample(
        self, fn: DenoiseFn, z_t: torch.Tensor, mask: torch.Tensor, *, sampling_steps: int,
        sampler: str = "ddpm", generator: torch.Generator | None = None,
    ) -> torch.Tensor:  # fmt: skip
        """Run the reverse process from Z_T (B, L, d) to an x0 estimate (B, L, d).

        One update covers DDPM (eta = 1, ancestral noise; with fewer steps than T this is the
        respaced DDPM) and DDIM (eta = 0, deterministic; Song et al. 2021).
        """
        if sampler not in ("ddpm", "ddim"):
            raise ConfigError(f"unknown sampler '{sampler}' (ddpm or ddim)")
        eta = 1.0 if sampler == "ddpm" else 0.0
        steps = self.timesteps(sampling_steps)
        x, x0, b = z_t, None, z_t.shape[0]
        for i, step in enumerate(steps):
            t = torch.full((b,), step, dtype=torch.long)
            _, x0, eps = self.predict(fn, x, t, mask, x0)
            ab = float(self.alpha_bar[step])
            ab_prev = float(self.alpha_bar[steps[i + 1]]) if i + 1 < len(steps) else 1.0
            sigma = eta * math.sqrt(max(0.0, (1 - ab_prev) / (1 - ab) * (1 - ab / ab_prev)))
            noise = torch.randn(x.shape, generator=generator) if sigma > 0 else 0.0
            dir_coef = math.sqrt(max(0.0, 1 - ab_prev - sigma**2))
            x = math.sqrt(ab_prev) * x0 + dir_coef * eps + sigma * noise
        assert x0 is not None
        return x0
