"""Weights and inputs for model tests: the reference recipe and small random models."""

from __future__ import annotations

import json
import zlib
from pathlib import Path

import torch

from mmadfer_cli.model import MMADFER, MMADFERConfig, build_model


def reference_state_dict(reference: Path, dataset: str = "dfew") -> dict[str, torch.Tensor]:
    """Every released key (``module.`` prefix kept) filled by the reference README's recipe."""
    shapes = json.loads((reference / f"state_dict_{dataset}.json").read_text())
    state = {}
    for full_key, shape in shapes.items():
        key = full_key.removeprefix("module.")
        g = torch.Generator().manual_seed(zlib.crc32(key.encode()))
        t = torch.randn(shape, generator=g, dtype=torch.float32)
        if "gate" in key:
            t = 0.5 + 0.1 * t
        elif "pos_embedding" in key:
            t = 0.5 * t
        elif t.dim() == 1 and key.endswith(".weight"):
            t = 1.0 + 0.1 * t
        else:
            t = 0.02 * t
        state[full_key] = t
    return state


def reference_inputs(seed: int, batch: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The reference README's input recipe."""
    g = torch.Generator().manual_seed(seed)
    images = torch.rand((batch, 16, 3, 224, 224), generator=g)
    images = images * torch.linspace(0.1, 1.0, 16).view(1, 16, 1, 1, 1)
    audio = torch.randn((batch, 1, 512, 128), generator=g)
    return images, audio


def tiny_model(seed: int = 0, class_names: tuple[str, ...] | None = None) -> MMADFER:
    """A tiny random model with open fusion gates (the official init closes them), in eval mode."""
    torch.manual_seed(seed)
    config = MMADFERConfig.tiny() if class_names is None else MMADFERConfig.tiny(class_names)
    model = build_model(config)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "all_gate" in name:
                p.fill_(0.5)
    return model.eval()


def random_inputs(batch: int, seed: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    images = torch.rand((batch, 16, 3, 224, 224), generator=g)
    return images, torch.randn((batch, 1, 512, 128), generator=g)
