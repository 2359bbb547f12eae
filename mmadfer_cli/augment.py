"""The official train-time frame sampling and clip augmentations, in torch.

The official loader (PIL + torchvision) draws one random frame from each of 16
equal parts of a clip, then applies, with one draw shared by all 16 frames:
brightness jitter (factor uniform in [1 - 0.5, 1 + 0.5]), a random-sized crop
(8-100 % of the area, aspect 3/4-4/3, resized to the model's image size) and a
horizontal flip with probability 0.5. All randomness comes from the
``torch.Generator`` passed in, so a run is repeatable and resumable.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def _uniform(low: float, high: float, generator: torch.Generator) -> float:
    return low + (high - low) * float(torch.rand((), generator=generator))


def _randint(low: int, high: int, generator: torch.Generator) -> int:
    """Integer uniform in [low, high], both ends included (as ``random.randint``)."""
    return int(torch.randint(low, high + 1, (), generator=generator))


def train_frame_indices(n: int, generator: torch.Generator, count: int = 16) -> list[int]:
    """A random frame from each of ``count`` equal parts of an n-frame clip.

    Clips shorter than ``count`` frames use every frame, the last repeated.
    """
    if n < 1:
        raise ValueError("a clip needs at least one frame")
    part = n // count
    if part > 0:
        offsets = torch.randint(0, part, (count,), generator=generator)
        return [i * part + int(o) for i, o in enumerate(offsets)]
    return [min(i, n - 1) for i in range(count)]


def resize(clip: torch.Tensor, size: int) -> torch.Tensor:
    """Float (T, 3, H, W) -> (T, 3, size, size), bilinear, antialiased when shrinking (as PIL)."""
    if clip.shape[-2:] == (size, size):
        return clip
    return F.interpolate(
        clip, size=(size, size), mode="bilinear", antialias=True, align_corners=False
    )


def brightness_jitter(
    clip: torch.Tensor, strength: float, generator: torch.Generator
) -> torch.Tensor:
    """Scale all frames by one factor drawn from [max(0, 1 - strength), 1 + strength]."""
    if strength <= 0:
        return clip
    factor = _uniform(max(0.0, 1.0 - strength), 1.0 + strength, generator)
    return (clip * factor).clamp_(0.0, 1.0)


def random_sized_crop(clip: torch.Tensor, size: int, generator: torch.Generator) -> torch.Tensor:
    """One crop of 8-100 % of the area, aspect 3/4-4/3, for all frames, resized to size x size.

    After ten failed draws, falls back as the official code does: the shorter
    side is scaled to ``size`` and a random size x size window is cut.
    """
    height, width = clip.shape[-2:]
    for _ in range(10):
        area = _uniform(0.08, 1.0, generator) * width * height
        aspect = _uniform(3 / 4, 4 / 3, generator)
        w = round(math.sqrt(area * aspect))
        h = round(math.sqrt(area / aspect))
        if float(torch.rand((), generator=generator)) < 0.5:
            w, h = h, w
        if w <= width and h <= height:
            x = _randint(0, width - w, generator)
            y = _randint(0, height - h, generator)
            return resize(clip[..., y : y + h, x : x + w], size)
    scale = size / min(height, width)
    new_h, new_w = max(size, round(height * scale)), max(size, round(width * scale))
    scaled = F.interpolate(
        clip, size=(new_h, new_w), mode="bilinear", antialias=True, align_corners=False
    )
    x = _randint(0, new_w - size, generator)
    y = _randint(0, new_h - size, generator)
    return scaled[..., y : y + size, x : x + size]


def random_flip(clip: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Mirror all frames left-right with probability 0.5."""
    if float(torch.rand((), generator=generator)) < 0.5:
        return clip.flip(-1)
    return clip


def train_transform(
    clip: torch.Tensor, size: int, generator: torch.Generator, brightness: float = 0.5
) -> torch.Tensor:
    """uint8 (T, 3, H, W) -> float (T, 3, size, size) in [0, 1] with the official augmentations."""
    x = clip.float().div_(255.0)
    x = brightness_jitter(x, brightness, generator)
    x = random_sized_crop(x, size, generator)
    return random_flip(x, generator).contiguous()


def test_transform(clip: torch.Tensor, size: int) -> torch.Tensor:
    """uint8 (T, 3, H, W) -> float (T, 3, size, size) in [0, 1], resized without cropping."""
    return resize(clip.float().div_(255.0), size).clamp_(0.0, 1.0)
