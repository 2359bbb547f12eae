"""The temporal transformer over per-frame features, with a class token.

Module nesting mirrors the official ``Temporal_Transformer_Cls`` so that
released weights load by name (``layers.0.0.fn.fn.to_kv.weight`` ...). Its
feed-forward uses the tanh approximation of GELU, as the official one does.
"""

from __future__ import annotations

import torch
from torch import nn

from mmadfer_cli.model.attention import attention


class TemporalAttention(nn.Module):
    """Multi-head self-attention with separate q and kv projections and no biases on them."""

    def __init__(self, dim: int, heads: int, head_dim: int) -> None:
        super().__init__()
        inner = heads * head_dim
        self.heads = heads
        self.to_q = nn.Linear(dim, inner, bias=False)
        self.to_kv = nn.Linear(dim, 2 * inner, bias=False)
        # The official module skips the output projection only for one head of full width.
        self.to_out = (
            nn.Sequential(nn.Linear(inner, dim)) if (heads, head_dim) != (1, dim) else nn.Identity()
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, _ = x.shape
        k, v = self.to_kv(x).chunk(2, dim=-1)
        q, k, v = (t.reshape(b, n, self.heads, -1).transpose(1, 2) for t in (self.to_q(x), k, v))
        x = attention(q, k, v)
        return self.to_out(x.transpose(1, 2).reshape(b, n, -1))


class FeedForward(nn.Module):
    """Linear -> tanh-GELU -> Linear; positions 0 and 3 as in the released keys (``net.0``, ``net.3``)."""

    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(dim, hidden),
            nn.GELU(approximate="tanh"),
            nn.Identity(),  # the official dropout slot
            nn.Linear(hidden, dim),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class PreNormResidual(nn.Module):
    """``x + fn(norm(x))``. ``norm2`` exists in every released checkpoint but is never used."""

    def __init__(self, dim: int, fn: nn.Module) -> None:
        super().__init__()
        self.fn = _PreNorm(dim, fn)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.fn(x)


class _PreNorm(nn.Module):
    def __init__(self, dim: int, fn: nn.Module) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(dim)
        self.norm2 = nn.LayerNorm(dim)
        self.fn = fn

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fn(self.norm(x))


class _Layers(nn.Module):
    def __init__(self, dim: int, depth: int, heads: int, head_dim: int, mlp_dim: int) -> None:
        super().__init__()
        self.layers = nn.ModuleList(
            nn.ModuleList(
                (
                    PreNormResidual(dim, TemporalAttention(dim, heads, head_dim)),
                    PreNormResidual(dim, FeedForward(dim, mlp_dim)),
                )
            )
            for _ in range(depth)
        )


class TemporalTransformer(nn.Module):
    """(B, T, dim) frame features -> (B, dim) class-token output."""

    def __init__(
        self, *, frames: int, dim: int, depth: int, heads: int, head_dim: int, mlp_dim: int
    ) -> None:
        super().__init__()
        self.cls_token = nn.Parameter(torch.randn(1, 1, dim))
        self.pos_embedding = nn.Parameter(torch.randn(1, frames + 1, dim))
        self.temporal_transformer = _Layers(dim, depth, heads, head_dim, mlp_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, _ = x.shape
        x = torch.cat((self.cls_token.expand(b, -1, -1), x), dim=1)
        x = x + self.pos_embedding[:, : n + 1]
        for attn, ff in self.temporal_transformer.layers:
            x = ff(attn(x))
        return x[:, 0]
