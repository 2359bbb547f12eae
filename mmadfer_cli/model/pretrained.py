"""Start MMA-DFER's encoders from the self-supervised MAE-Face and AudioMAE ViT-B weights.

As the official code does: the weights are read from the checkpoint's
``model`` entry; the face position embedding is resized (bicubic) from the
checkpoint's square grid to the model's image grid, the audio one from the
AudioMAE grid (1024 / 16 x 128 / 16 = 64 x 8) to the model's (512 / 16 x 8 =
32 x 8); the positions of the learnable prompt tokens, which the pre-trained
models do not have, are drawn from a standard normal; decoder and head
weights of the checkpoints are ignored, and everything MMA-DFER adds keeps
its fresh initialisation.
"""

from __future__ import annotations

import argparse
import math
import pickle
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from mmadfer_cli.plural import counted

# Weights every ViT-B encoder checkpoint must provide (the backbone).
_BACKBONE_PREFIXES = ("patch_embed.", "blocks.", "cls_token", "norm.", "pos_embed")


class PretrainedError(ValueError):
    """A pre-trained encoder checkpoint that does not fit the model."""


@dataclass(frozen=True)
class LoadReport:
    """What loading one encoder did: weights loaded, ignored (checkpoint only) and left fresh."""

    loaded: tuple[str, ...]
    ignored: tuple[str, ...]
    fresh: tuple[str, ...]

    def describe(self, shown: int = 3) -> str:
        """One line for the training log, so that a wrong or partial checkpoint shows before
        hours of training: counts, with the first few names of each kind."""

        def names(keys: tuple[str, ...]) -> str:
            more = ", ..." if len(keys) > shown else ""
            return f" ({', '.join(keys[:shown])}{more})" if keys else ""

        return (
            f"{counted(len(self.loaded), 'weight')} loaded; "
            f"{len(self.ignored)} only in the checkpoint, left out{names(self.ignored)}; "
            f"{len(self.fresh)} new in this model, initialised afresh{names(self.fresh)}"
        )


def read_encoder_state(path: Path) -> dict[str, torch.Tensor]:
    """The ``model`` state dict of an MAE-style checkpoint, read without running pickled code.

    MAE and AudioMAE save their ``argparse.Namespace`` next to the weights;
    that one class is allowed, nothing else.
    """
    path = Path(path)
    if not path.is_file():
        raise PretrainedError(f"{path}: no such file")
    try:
        with torch.serialization.safe_globals([argparse.Namespace]):
            checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError) as error:
        raise PretrainedError(
            f"{path}: not a readable weights-only PyTorch checkpoint ({error})"
        ) from None
    state = checkpoint.get("model") if isinstance(checkpoint, dict) else None
    if not isinstance(state, dict):
        raise PretrainedError(f"{path}: no 'model' entry with the encoder weights")
    return {k.removeprefix("module."): v for k, v in state.items() if isinstance(v, torch.Tensor)}


def resize_pos_embed(
    posemb: torch.Tensor, old_grid: tuple[int, int], new_grid: tuple[int, int]
) -> torch.Tensor:
    """(1, 1 + H*W, C) -> (1, 1 + H'*W', C): the CLS position kept, the grid resized bicubic."""
    if posemb.shape[1] != 1 + old_grid[0] * old_grid[1]:
        raise PretrainedError(
            f"position embedding has {posemb.shape[1] - 1} patch positions, not {old_grid[0]} x {old_grid[1]}"
        )
    cls, grid = posemb[:, :1], posemb[0, 1:]
    if tuple(old_grid) == tuple(new_grid):
        return posemb.clone()
    grid = grid.reshape(1, old_grid[0], old_grid[1], -1).permute(0, 3, 1, 2).float()
    grid = F.interpolate(grid, size=new_grid, mode="bicubic", align_corners=False)
    grid = grid.permute(0, 2, 3, 1).reshape(1, new_grid[0] * new_grid[1], -1).to(posemb.dtype)
    return torch.cat([cls, grid], dim=1)


def _load_encoder(
    encoder: nn.Module,
    state: dict[str, torch.Tensor],
    old_grid: tuple[int, int],
    new_grid: tuple[int, int],
    generator: torch.Generator,
    path: Path,
) -> LoadReport:
    missing = [p for p in _BACKBONE_PREFIXES if not any(k.startswith(p) for k in state)]
    if missing:
        raise PretrainedError(
            f"{path}: not a ViT encoder checkpoint (no {', '.join(missing)} weights)"
        )
    own = encoder.state_dict()
    posemb = resize_pos_embed(state["pos_embed"], old_grid, new_grid)
    target = own["pos_embed"]
    if posemb.shape[-1] != target.shape[-1]:
        raise PretrainedError(
            f"{path}: width {posemb.shape[-1]}, the model's is {target.shape[-1]}"
        )
    prompt_rows = target.shape[1] - posemb.shape[1]
    tail = torch.randn(1, prompt_rows, target.shape[-1], generator=generator)
    new_state = {"pos_embed": torch.cat([posemb, tail.to(posemb.dtype)], dim=1)}
    ignored = []
    for key, value in state.items():
        if key == "pos_embed":
            continue
        if key not in own:
            ignored.append(key)
            continue
        if own[key].shape != value.shape:
            raise PretrainedError(
                f"{path}: {key} has shape {tuple(value.shape)}, the model's is {tuple(own[key].shape)}"
            )
        new_state[key] = value
    encoder.load_state_dict(new_state, strict=False)
    fresh = tuple(sorted(set(own) - set(new_state)))
    return LoadReport(tuple(sorted(new_state)), tuple(sorted(ignored)), fresh)


def load_pretrained_encoders(
    model: nn.Module, image_checkpoint: Path, audio_checkpoint: Path, seed: int = 0
) -> tuple[LoadReport, LoadReport]:
    """Load MAE-Face weights into ``model.image_encoder`` and AudioMAE into ``model.audio_model``."""
    config = model.config
    patch = config.patch_size
    generator = torch.Generator().manual_seed(seed)

    image_state = read_encoder_state(image_checkpoint)
    side = math.isqrt(image_state.get("pos_embed", torch.zeros(1, 1, 1)).shape[1] - 1)
    image_grid = (config.image_size // patch, config.image_size // patch)
    image = _load_encoder(
        model.image_encoder, image_state, (side, side), image_grid, generator, image_checkpoint
    )

    audio_state = read_encoder_state(audio_checkpoint)
    mel_cells = config.mel_bins // patch
    audio_positions = audio_state.get("pos_embed", torch.zeros(1, 1, 1)).shape[1] - 1
    audio_old = (audio_positions // mel_cells, mel_cells)
    audio_grid = (config.fbank_frames // patch, mel_cells)
    audio = _load_encoder(
        model.audio_model, audio_state, audio_old, audio_grid, generator, audio_checkpoint
    )
    return image, audio
