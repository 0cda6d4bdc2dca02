"""DiffTune's topic-diversity sampler: the starting noise Z_T of the reverse diffusion.

DiffTune (Wang & Liu 2023, section 2.2) draws Z_T in R^{l x d} from N(0, I) and then redraws a
share of the l token vectors (30% by default) from N(0, sigma^2 I) with sigma^2 = 10: those
vectors start far from the region the denoiser was trained on, so the decoded instruction drifts
to other topics. Table 3 compares this with the standard Gaussian, a Student-t with 2 degrees of
freedom and the higher variance on every vector (100%).

Only Z_T changes; the noise the DDPM sampler adds at each later step stays standard Gaussian.
"""

from __future__ import annotations

import torch

from tunesmith.errors import ConfigError

#: strategy name -> (share of token vectors redrawn, distribution of the redrawn vectors)
STRATEGIES = {
    "gaussian": "standard Gaussian N(0, I)",
    "high_variance": "a share (30%) of token vectors from N(0, variance * I)",
    "all_high_variance": "every token vector from N(0, variance * I)",
    "student_t": "Student-t with df degrees of freedom on every coordinate",
}
DEFAULT_STRATEGY = "high_variance"


def check_strategy(strategy: str) -> str:
    """The strategy name, or a one-line ConfigError listing the known ones."""
    name = strategy.replace("-", "_")
    if name not in STRATEGIES:
        raise ConfigError(
            f"unknown noise strategy '{strategy}' (choose from {', '.join(STRATEGIES)})"
        )
    return name


def draw_noise(
    shape: tuple[int, int, int],
    strategy: str = DEFAULT_STRATEGY,
    *,
    share: float = 0.3,
    variance: float = 10.0,
    df: int = 2,
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Z_T for a batch, and which token vectors were redrawn.

    Args:
        shape: (batch B, length L, latent dim d).
        strategy: one of :data:`STRATEGIES`.
        share: probability that a token vector is redrawn (``high_variance``); each vector is
            redrawn independently, so the expected share is exact for any length.
        variance: sigma^2 of the redrawn vectors (10 in DiffTune).
        df: Student-t degrees of freedom (a positive integer; 2 in DiffTune).
        generator: seeded torch generator (same seed, same noise).

    Returns:
        ``(noise (B, L, d), redrawn (B, L) bool)``.
    """
    name = check_strategy(strategy)
    b, length, _ = shape
    noise = torch.randn(shape, generator=generator)  # (B, L, d) ~ N(0, I)
    redrawn = torch.zeros((b, length), dtype=torch.bool)
    if name == "student_t":
        return student_t(shape, df, generator), redrawn
    if name == "gaussian":
        return noise, redrawn
    if name == "all_high_variance":
        redrawn = torch.ones((b, length), dtype=torch.bool)
    else:
        if not 0.0 <= share <= 1.0:
            raise ConfigError(f"noise share {share} must be between 0 and 1")
        redrawn = torch.rand((b, length), generator=generator) < share  # (B, L)
    wide = torch.randn(shape, generator=generator) * variance**0.5  # (B, L, d) ~ N(0, var I)
    return torch.where(redrawn.unsqueeze(-1), wide, noise), redrawn


def student_t(
    shape: tuple[int, ...], df: int, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Student-t draws: Z / sqrt(chi2_df / df), with chi2_df a sum of df squared normals.

    Written out (rather than ``torch.distributions.StudentT``) so a seeded generator applies.
    """
    if int(df) != df or df < 1:
        raise ConfigError(f"Student-t degrees of freedom must be a positive integer, not {df}")
    z = torch.randn(shape, generator=generator)
    chi2 = torch.randn((int(df), *shape), generator=generator).pow(2).sum(0)
    return z / (chi2 / df).sqrt()
