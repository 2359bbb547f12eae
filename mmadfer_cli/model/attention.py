"""Scaled dot-product attention for both transformers, with a faster form for bfloat16 CPUs.

PyTorch's fused CPU kernel ran the visual encoder's bfloat16 attention (sequences of 203
tokens, heads of 64) at about a seventh of the matrix units' rate: a fifth of the whole model's
time on two cores. Two plain batched products with the softmax between them in float32 ran the
same attention in less than half the time (53 against 125 ms a layer for 8 clips). The scores
come out of the first product in bfloat16, which moves the output about 1.5 times as far from
float32 as the fused kernel does, well inside the model's own bfloat16 drift: over the whole
model, logits moved no further (``benchmarks/autocast_drift.py``). They take a few batch
elements at a time, so that the float32 scores stay in cache. The GPUs, float32 and float16
keep PyTorch's kernel.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

CPU_GROUP = 4  # batch elements (all their heads) per step of the CPU form


def attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """softmax(q kᵀ / √d) v over (batch, heads, tokens, d) tensors."""
    if q.device.type != "cpu" or q.dtype != torch.bfloat16:
        return F.scaled_dot_product_attention(q, k, v)
    scale = q.shape[-1] ** -0.5
    parts = []
    for first in range(0, len(q), CPU_GROUP):
        part = slice(first, first + CPU_GROUP)
        scores = (q[part] @ k[part].transpose(-2, -1)).float().mul_(scale)
        parts.append(scores.softmax(-1).to(v.dtype) @ v[part])
    return torch.cat(parts)
