"""Small building blocks shared by the attention-based strategies and the modality-balancing
ones: multi-head attention with a key mask, a feed-forward block, the image's feature maps as
tokens with Fourier position features, and the per-modality training score.

Every block acts on each unit's own tokens only (no batch statistics: layer norm, not batch
norm), so a unit's prediction never depends on the other units of its batch.

>>> import torch
>>> att = CrossAttention(8, heads=2)
>>> att(torch.zeros(3, 4, 8), torch.zeros(3, 5, 8)).shape
torch.Size([3, 4, 8])
"""

from __future__ import annotations

import math

import torch
from torch import nn


def attend(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor | None = None
) -> torch.Tensor:
    """Scaled dot-product attention over the last two dimensions: ``q`` ``(..., Lq, e)``,
    ``k`` and ``v`` ``(..., Lk, e)``; ``mask`` ``(..., Lk)`` True for the keys to use (every
    query needs one). Masked keys get exactly zero weight."""
    scores = q @ k.transpose(-1, -2) / math.sqrt(q.shape[-1])
    if mask is not None:
        scores = scores.masked_fill(~mask.unsqueeze(-2), float("-inf"))
    return torch.softmax(scores, dim=-1) @ v


class CrossAttention(nn.Module):
    """Pre-norm multi-head attention of ``x`` ``(N, Lq, d)`` over ``context`` ``(N, Lk, c)``
    (``context`` = ``x`` for self-attention); returns the update ``(N, Lq, d)``."""

    def __init__(self, dim: int, *, heads: int, context_dim: int | None = None) -> None:
        super().__init__()
        c = context_dim or dim
        if dim % heads:
            raise ValueError(f"attention width {dim} is not divisible by {heads} heads")
        self.heads = heads
        self.norm_q = nn.LayerNorm(dim)
        self.norm_kv = nn.LayerNorm(c)
        self.q = nn.Linear(dim, dim, bias=False)
        self.kv = nn.Linear(c, 2 * dim, bias=False)
        self.out = nn.Linear(dim, dim)

    def _split(self, t: torch.Tensor) -> torch.Tensor:
        n, length, d = t.shape
        return t.view(n, length, self.heads, d // self.heads).transpose(1, 2)

    def forward(
        self, x: torch.Tensor, context: torch.Tensor, mask: torch.Tensor | None = None
    ) -> torch.Tensor:
        q = self._split(self.q(self.norm_q(x)))
        k, v = (self._split(t) for t in self.kv(self.norm_kv(context)).chunk(2, dim=-1))
        m = None if mask is None else mask.unsqueeze(1)  # the same keys for every head
        out = attend(q, k, v, m).transpose(1, 2).reshape(x.shape)
        return self.out(out)


class FeedForward(nn.Module):
    """Pre-norm two-layer perceptron with GELU; returns the update."""

    def __init__(self, dim: int, *, mult: int = 2, dropout: float = 0.0) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.LayerNorm(dim),
            nn.Linear(dim, mult * dim),
            nn.GELU(),
            nn.Dropout(dropout),
            nn.Linear(mult * dim, dim),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


def fourier_positions(h: int, w: int, *, bands: int) -> torch.Tensor:
    """Fourier features of the grid positions of an ``h`` x ``w`` map, ``(h * w, 4 * bands
    + 2)``: each coordinate scaled to [-1, 1], itself and its sine and cosine at ``bands``
    frequencies (1 .. ``bands``, times pi), as the Perceiver encodes positions."""
    ys = torch.linspace(-1.0, 1.0, h) if h > 1 else torch.zeros(1)
    xs = torch.linspace(-1.0, 1.0, w) if w > 1 else torch.zeros(1)
    grid = torch.stack(torch.meshgrid(ys, xs, indexing="ij"), dim=-1).reshape(-1, 2)
    freqs = torch.arange(1, bands + 1, dtype=grid.dtype) * math.pi
    angles = grid.unsqueeze(-1) * freqs  # (hw, 2, bands)
    return torch.cat([grid, angles.sin().flatten(1), angles.cos().flatten(1)], dim=1)


class MapTokens(nn.Module):
    """An image's last feature maps ``(K, C, h, w)`` as ``h * w`` tokens ``(K, h * w, d)``:
    each position's channels with its Fourier position features, projected to ``d``."""

    def __init__(self, channels: int, dim: int, *, bands: int = 4) -> None:
        super().__init__()
        self.bands = bands
        self.proj = nn.Linear(channels + 4 * bands + 2, dim)

    def forward(self, maps: torch.Tensor) -> torch.Tensor:
        k, _, h, w = maps.shape
        pos = fourier_positions(h, w, bands=self.bands).to(maps.dtype)
        feats = maps.flatten(2).transpose(1, 2)  # (K, hw, C)
        return self.proj(torch.cat([feats, pos.unsqueeze(0).expand(k, -1, -1)], dim=2))


def aligned_score(kind: str, logits: torch.Tensor, y: torch.Tensor) -> float:
    """How well ``logits`` fit the labels, averaged over read-outs (no gradient): the
    probability given to the true bucket for length of stay, else the mean over labels of
    ``y * p + (1 - y) * (1 - p)``. The modality-balancing strategies compare it between
    the unimodal heads to find the stronger modality."""
    with torch.no_grad():
        if kind == "los":
            p = torch.softmax(logits, dim=1).gather(1, y.long().view(-1, 1))
            return float(p.mean())
        p = torch.sigmoid(logits)
        t = y.float().view_as(p)
        return float((t * p + (1 - t) * (1 - p)).mean())
