"""A ViT-B encoder with MMA-DFER's learnable prompts and gated fusion inputs.

Parameter names follow timm's ``VisionTransformer`` and the released
MMA-DFER checkpoints, so official weights load without renaming. The token
sequence is ``[cls, patches..., prompts...]``: the initial prompts sit after
the patch tokens and progressive prompts are added to them every
``prompt_interval`` blocks.
"""

from __future__ import annotations

import torch
from torch import nn

from mmadfer_cli.model.attention import attention


class PatchEmbed(nn.Module):
    """Non-overlapping square patches -> tokens, row-major over the patch grid."""

    def __init__(self, in_chans: int, width: int, patch_size: int) -> None:
        super().__init__()
        self.proj = nn.Conv2d(in_chans, width, kernel_size=patch_size, stride=patch_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(x).flatten(2).transpose(1, 2)  # (B, C, H, W) -> (B, N, width)


class Attention(nn.Module):
    """Multi-head self-attention with a fused qkv projection (timm layout)."""

    def __init__(self, width: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(width, 3 * width)
        self.proj = nn.Linear(width, width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, c = x.shape
        q, k, v = self.qkv(x).reshape(b, n, 3, self.heads, c // self.heads).permute(2, 0, 3, 1, 4)
        x = attention(q, k, v)
        return self.proj(x.transpose(1, 2).reshape(b, n, c))


class Mlp(nn.Module):
    """Feed-forward with the exact (erf) GELU, as timm's ViT blocks."""

    def __init__(self, width: int, hidden: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(width, hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(x)))


def drop_path(x: torch.Tensor, rate: float, training: bool) -> torch.Tensor:
    """Stochastic depth: drop a residual branch for whole samples, rescaling the kept ones.

    The official recipe trains both encoders with it; at inference it is the identity.
    """
    if rate == 0.0 or not training:
        return x
    keep = 1.0 - rate
    mask = x.new_empty((x.shape[0],) + (1,) * (x.ndim - 1)).bernoulli_(keep)
    return x * mask / keep


class Block(nn.Module):
    """Pre-norm transformer block (LayerNorm eps 1e-6, as MAE-Face and AudioMAE)."""

    def __init__(
        self, width: int, heads: int, mlp_ratio: float, drop_path_rate: float = 0.0
    ) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(width, eps=1e-6)
        self.attn = Attention(width, heads)
        self.norm2 = nn.LayerNorm(width, eps=1e-6)
        self.mlp = Mlp(width, int(width * mlp_ratio))
        self.drop_path_rate = drop_path_rate

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + drop_path(self.attn(self.norm1(x)), self.drop_path_rate, self.training)
        return x + drop_path(self.mlp(self.norm2(x)), self.drop_path_rate, self.training)


class PromptedViT(nn.Module):
    """One modality's encoder, run block by block so that the fusion can act between blocks.

    ``embed`` turns the input into tokens, ``blocks[i]`` runs block i, ``fuse``
    adds the gated cross-modal signal (and the progressive prompts), and
    ``pool`` returns the normalised CLS token.
    """

    def __init__(
        self,
        *,
        in_chans: int,
        num_patches: int,
        width: int,
        depth: int,
        heads: int,
        mlp_ratio: float,
        patch_size: int,
        prompts: int,
        prompt_interval: int,
        fusion_dim: int,
        drop_path_rate: float = 0.0,
    ) -> None:
        super().__init__()
        groups = depth // prompt_interval
        self.num_patches = num_patches
        self.prompts = prompts
        self.prompt_interval = prompt_interval
        self.patch_embed = PatchEmbed(in_chans, width, patch_size)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, width))
        self.pos_embed = nn.Parameter(
            torch.randn(1, 1 + num_patches + prompts * groups, width) * 0.02
        )
        self.learnable_prompts_init = nn.Parameter(
            torch.randn(prompts * groups, width) * width**-0.5
        )
        self.learnable_prompts_progr = nn.ParameterList(
            nn.Parameter(torch.randn(prompts, width) * width**-0.5) for _ in range(groups)
        )
        # Stochastic depth grows linearly with depth, from 0 at the first block (timm's rule).
        rates = [drop_path_rate * i / max(depth - 1, 1) for i in range(depth)]
        self.blocks = nn.ModuleList(Block(width, heads, mlp_ratio, rate) for rate in rates)
        self.temporal_att_post = nn.ModuleList(
            nn.Sequential(nn.Linear(fusion_dim, width), nn.GELU()) for _ in range(depth)
        )
        self.all_gate = nn.ParameterList(nn.Parameter(torch.zeros(1)) for _ in range(depth))
        self.norm = nn.LayerNorm(width, eps=1e-6)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """Input (B, C, H, W) -> tokens (B, 1 + patches + prompts, width) with positions added."""
        x = self.patch_embed(x)
        b = x.shape[0]
        cls = self.cls_token.expand(b, -1, -1)
        prompts = self.learnable_prompts_init.expand(b, -1, -1)
        return torch.cat((cls, x, prompts), dim=1) + self.pos_embed

    def fuse(self, index: int, x: torch.Tensor, signal: torch.Tensor) -> torch.Tensor:
        """After block ``index``: add the gated low-dimensional ``signal`` and the progressive prompts."""
        x = x + torch.tanh(self.all_gate[index]) * self.temporal_att_post[index](signal)
        if index % self.prompt_interval == 0:
            group = index // self.prompt_interval
            start = 1 + self.num_patches + group * self.prompts
            x[:, start : start + self.prompts] += self.learnable_prompts_progr[group]
        return x

    def pool(self, x: torch.Tensor) -> torch.Tensor:
        """Final LayerNorm, then the CLS token (B, width)."""
        return self.norm(x)[:, 0]
