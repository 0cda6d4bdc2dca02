"""The denoiser: a transformer over latent sequences with time conditioning (LD4LG, section 4).

Input per position is the noisy latent x_t concatenated with the self-conditioning estimate of
x0 (zeros when absent); the noise level t enters through a sinusoidal embedding and an MLP that
sets per-block scale/shift/gate (adaLN-Zero, as LD4LG's time conditioning; the blocks start as
the identity). Padding positions are masked out of attention. DiffTune's Table 7 denoiser is
12 layers x 768; every size here is a setting.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


def time_embedding(t: torch.Tensor, dim: int) -> torch.Tensor:
    """Sinusoidal embedding of t in [0, 1] scaled to 0..1000: (B,) -> (B, dim)."""
    half = dim // 2
    freqs = torch.exp(-math.log(10000.0) * torch.arange(half, device=t.device) / half)
    args = (t.float() * 1000).unsqueeze(1) * freqs.unsqueeze(0)  # (B, half)
    return torch.cat([args.sin(), args.cos()], dim=1)


class Block(nn.Module):
    """Pre-norm transformer block whose norms are modulated by the time embedding."""

    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.norm1 = nn.LayerNorm(dim, elementwise_affine=False)
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        self.norm2 = nn.LayerNorm(dim, elementwise_affine=False)
        self.mlp = nn.Sequential(nn.Linear(dim, 4 * dim), nn.GELU(), nn.Linear(4 * dim, dim))
        self.modulation = nn.Linear(dim, 6 * dim)
        nn.init.zeros_(self.modulation.weight)  # adaLN-Zero: gates start at 0
        nn.init.zeros_(self.modulation.bias)

    def forward(self, h: torch.Tensor, temb: torch.Tensor, attn_mask: torch.Tensor) -> torch.Tensor:
        """h (B, L, D), temb (B, D), attn_mask (B, 1, 1, L) bool -> (B, L, D)."""
        shift1, scale1, gate1, shift2, scale2, gate2 = (
            self.modulation(temb).unsqueeze(1).chunk(6, -1)
        )
        x = self.norm1(h) * (1 + scale1) + shift1
        b, length, d = x.shape
        q, k, v = self.qkv(x).view(b, length, 3, self.heads, d // self.heads).unbind(2)
        att = F.scaled_dot_product_attention(
            q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2), attn_mask=attn_mask
        )  # (B, H, L, D/H)
        h = h + gate1 * self.proj(att.transpose(1, 2).reshape(b, length, d))
        x = self.norm2(h) * (1 + scale2) + shift2
        return h + gate2 * self.mlp(x)


class Denoiser(nn.Module):
    """Predicts x0 (or v / eps) from x_t, the step and the self-conditioning estimate.

    Args:
        latent_dim: d, the width of a latent vector.
        dim, layers, heads: transformer size.
        max_len: longest latent sequence (positions are learned).
    """

    def __init__(self, latent_dim: int, dim: int, layers: int, heads: int, max_len: int) -> None:
        super().__init__()
        self.latent_dim = latent_dim
        self.in_proj = nn.Linear(2 * latent_dim, dim)
        self.pos = nn.Embedding(max_len, dim)
        self.time_mlp = nn.Sequential(nn.Linear(dim, 4 * dim), nn.SiLU(), nn.Linear(4 * dim, dim))
        self.blocks = nn.ModuleList(Block(dim, heads) for _ in range(layers))
        self.norm_out = nn.LayerNorm(dim)
        self.out_proj = nn.Linear(dim, latent_dim)

    def forward(
        self, x_t: torch.Tensor, t: torch.Tensor, mask: torch.Tensor,
        self_cond: torch.Tensor | None = None,
    ) -> torch.Tensor:  # fmt: skip
        """x_t (B, L, d), t (B,) in [0, 1], mask (B, L) bool, self_cond (B, L, d) -> (B, L, d)."""
        if self_cond is None:
            self_cond = torch.zeros_like(x_t)
        pos = torch.arange(x_t.shape[1], device=x_t.device)
        h = self.in_proj(torch.cat([x_t, self_cond], -1)) + self.pos(pos)  # (B, L, D)
        temb = self.time_mlp(time_embedding(t, self.pos.embedding_dim))  # (B, D)
        h = h + temb.unsqueeze(1)
        temb = F.silu(temb)
        attn_mask = mask[:, None, None, :]  # keys that are real tokens
        for block in self.blocks:
            h = block(h, temb, attn_mask)
        return self.out_proj(self.norm_out(h))
