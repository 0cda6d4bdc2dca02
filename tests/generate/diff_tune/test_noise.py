"""DiffTune's Z_T sampler: share and variance of redrawn vectors, Student-t, seeding."""

from __future__ import annotations

import math

import pytest
import torch

from tunesmith.errors import ConfigError
from tunesmith.generate.diff_tune.noise import draw_noise, student_t

SHAPE = (2000, 50, 16)  # 100,000 token vectors, 1.6M coordinates


def seeded(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def test_high_variance_redraws_thirty_percent_of_vectors_with_variance_ten() -> None:
    noise, redrawn = draw_noise(SHAPE, "high_variance", generator=seeded())
    # share: binomial sd over 100K vectors is 0.0014
    assert abs(redrawn.float().mean().item() - 0.3) < 0.005
    wide, base = noise[redrawn], noise[~redrawn]  # (N, d) rows
    assert abs(wide.var().item() - 10.0) < 0.1  # sd of the estimate ~0.02
    assert abs(base.var().item() - 1.0) < 0.01
    assert abs(noise.mean().item()) < 0.01
    # whole vectors are redrawn, never single coordinates: a redrawn row has a large norm
    assert wide.pow(2).sum(-1).median() > 5 * base.pow(2).sum(-1).median()


@pytest.mark.parametrize(("share", "variance"), [(0.1, 4.0), (0.6, 25.0)])
def test_share_and_variance_are_settings(share: float, variance: float) -> None:
    noise, redrawn = draw_noise(SHAPE, "high_variance", share=share, variance=variance,
                                generator=seeded(1))  # fmt: skip
    assert abs(redrawn.float().mean().item() - share) < 0.006
    assert abs(noise[redrawn].var().item() / variance - 1) < 0.02


def test_gaussian_and_all_high_variance() -> None:
    noise, redrawn = draw_noise(SHAPE, "gaussian", generator=seeded(2))
    assert not redrawn.any() and abs(noise.var().item() - 1.0) < 0.01
    noise, redrawn = draw_noise(SHAPE, "all-high-variance", generator=seeded(3))
    assert redrawn.all() and abs(noise.var().item() - 10.0) < 0.1


def test_student_t_two_degrees_of_freedom_matches_its_quantiles() -> None:
    x = student_t((400_000,), 2, seeded(4)).abs()
    # for df = 2, P(|T| <= m) = m / sqrt(2 + m^2): the median is sqrt(2/3), the 90% point 4/sqrt(2*0.19)
    for q in (0.5, 0.9):
        expected = math.sqrt(2 * q * q / (1 - q * q))
        assert abs(torch.quantile(x[:100_000], q).item() / expected - 1) < 0.03
    noise, redrawn = draw_noise((10, 5, 4), "student_t", generator=seeded(5))
    assert noise.shape == (10, 5, 4) and not redrawn.any()


def test_same_seed_same_noise_other_seed_other_noise() -> None:
    a, ra = draw_noise((8, 12, 4), generator=seeded(7))
    b, rb = draw_noise((8, 12, 4), generator=seeded(7))
    c, _ = draw_noise((8, 12, 4), generator=seeded(8))
    assert torch.equal(a, b) and torch.equal(ra, rb) and not torch.equal(a, c)


def test_bad_settings_are_one_line_errors() -> None:
    with pytest.raises(ConfigError, match="unknown noise strategy 'uniform'"):
        draw_noise((1, 1, 1), "uniform")
    with pytest.raises(ConfigError, match="share"):
        draw_noise((1, 1, 1), share=1.5)
    with pytest.raises(ConfigError, match="positive integer"):
        student_t((3,), 0)
