"""Schedules, the objectives' algebra and the DDPM/DDIM sampler against an oracle denoiser."""

from __future__ import annotations

import pytest
import torch

from tunesmith.generate.diff_tune.denoiser import Denoiser
from tunesmith.generate.diff_tune.diffusion import GaussianDiffusion, alpha_bar_schedule


@pytest.mark.parametrize("name", ["linear", "cosine"])
def test_schedules_fall_from_one_to_almost_zero(name: str) -> None:
    ab = alpha_bar_schedule(name, 1000)
    assert ab.shape == (1000,) and bool((ab[1:] < ab[:-1]).all())
    assert ab[0] > 0.99 and ab[-1] < 1e-3


def test_linear_schedule_is_ho_et_al() -> None:
    betas = torch.linspace(1e-4, 0.02, 1000, dtype=torch.float64)
    assert torch.allclose(alpha_bar_schedule("linear", 1000), torch.cumprod(1 - betas, 0))


def oracle(diffusion: GaussianDiffusion, x0: torch.Tensor):  # type: ignore[no-untyped-def]
    """A denoiser that knows x0 and answers in the diffusion's objective."""

    def fn(x_t, t, mask, self_cond):  # type: ignore[no-untyped-def]
        steps = (t * diffusion.steps).round().long()
        ab = diffusion.alpha_bar[steps].view(-1, 1, 1)
        eps = (x_t - ab.sqrt() * x0) / (1 - ab).sqrt()
        return diffusion.target(x0, eps, steps)

    return fn


@pytest.mark.parametrize("objective", ["pred_x0", "pred_v", "pred_eps"])
@pytest.mark.parametrize("sampler", ["ddim", "ddpm"])
def test_sampler_with_an_oracle_returns_the_clean_latents(objective: str, sampler: str) -> None:
    diffusion = GaussianDiffusion(steps=1000, schedule="linear", objective=objective, loss="l1")
    x0 = torch.randn(3, 5, 4, generator=torch.Generator().manual_seed(0))
    z = torch.randn(3, 5, 4, generator=torch.Generator().manual_seed(1))
    mask = torch.ones(3, 5, dtype=torch.bool)
    out = diffusion.sample(oracle(diffusion, x0), z, mask, sampling_steps=50, sampler=sampler,
                           generator=torch.Generator().manual_seed(2))  # fmt: skip
    assert torch.allclose(out, x0, atol=1e-3)


def test_loss_ignores_padding_and_is_zero_for_the_oracle() -> None:
    diffusion = GaussianDiffusion(steps=100, schedule="cosine", objective="pred_v", loss="l2")
    x0 = torch.randn(2, 6, 4)
    mask = torch.tensor([[1, 1, 1, 0, 0, 0], [1, 1, 1, 1, 1, 1]], dtype=torch.bool)
    torch.manual_seed(0)
    assert diffusion.training_loss(oracle(diffusion, x0), x0, mask, 0.5).item() < 1e-8


def test_denoiser_shapes_and_padding_does_not_leak() -> None:
    torch.manual_seed(0)
    den = Denoiser(latent_dim=8, dim=32, layers=2, heads=4, max_len=10)
    for p in den.parameters():  # leave adaLN-Zero so attention actually mixes positions
        torch.nn.init.normal_(p, std=0.2)
    x = torch.randn(2, 7, 8)
    mask = torch.tensor([[1] * 4 + [0] * 3, [1] * 7], dtype=torch.bool)
    t = torch.tensor([0.1, 0.9])
    out = den(x, t, mask)
    assert out.shape == (2, 7, 8)
    y = x.clone()
    y[0, 4:] = 100.0  # change padded positions only
    assert torch.allclose(den(y, t, mask)[0, :4], out[0, :4], atol=1e-5)
    assert not torch.allclose(den(x, t.flip(0), mask), out)  # time conditioning matters
