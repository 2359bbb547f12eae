"""The official train-time frame sampling and clip augmentations, in torch.

The official loader (PIL + torchvision) draws one random frame from each of 16
equal parts of a clip, then applies, with one draw shared by all 16 frames:
brightness jitter (factor uniform in [1 - 0.5, 1 + 0.5]), a random-sized crop
(8-100 % of the area, aspect 3/4-4/3, resized to the model's image size) and a
horizontal flip with probability 0.5. Pixel values stay on the 0-255 scale and
are quantised where PIL stores 8-bit images: brightness truncates (PIL's blend
with black), resizing rounds. All randomness comes from the
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


def _resize_to(clip: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """0-255 float (T, 3, H, W) -> (T, 3, height, width), bilinear, antialiased when shrinking,
    rounded to whole values (PIL's 8-bit resize; the same size is returned unchanged)."""
    if clip.shape[-2:] == (height, width):
        return clip
    resized = F.interpolate(
        clip, size=(height, width), mode="bilinear", antialias=True, align_corners=False
    )
    return resized.round_().clamp_(0.0, 255.0)


def resize(clip: torch.Tensor, size: int) -> torch.Tensor:
    """0-255 float (T, 3, H, W) -> (T, 3, size, size) as PIL's 8-bit bilinear resize."""
    return _resize_to(clip, size, size)


def brightness_jitter(
    clip: torch.Tensor, strength: float, generator: torch.Generator
) -> torch.Tensor:
    """Scale all 0-255 frames by one factor drawn from [max(0, 1 - strength), 1 + strength].

    Truncated to whole values and clipped to 255, as PIL's ``ImageEnhance.Brightness``
    (a blend with black) stores its 8-bit result.
    """
    if strength <= 0:
        return clip
    factor = _uniform(max(0.0, 1.0 - strength), 1.0 + strength, generator)
    return (clip * factor).floor_().clamp_(0.0, 255.0)


def random_sized_crop(clip: torch.Tensor, size: int, generator: torch.Generator) -> torch.Tensor:
    """One crop of 8-100 % of the area, aspect 3/4-4/3, for all frames, resized to size x size.

    After ten failed draws, falls back as the official code does: the shorter
    side is scaled to ``size`` (the longer one truncated, as torchvision's
    ``Resize``) and a random size x size window is cut (one for all frames; the
    official fallback draws one per frame).
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
    short, long = min(height, width), max(height, width)
    new_long = int(size * long / short)
    new_h, new_w = (size, new_long) if height <= width else (new_long, size)
    scaled = _resize_to(clip, new_h, new_w)
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
    x = brightness_jitter(clip.float(), brightness, generator)
    x = random_sized_crop(x, size, generator)
    return random_flip(x, generator).div_(255.0).contiguous()


def test_transform(clip: torch.Tensor, size: int) -> torch.Tensor:
    """uint8 (T, 3, H, W) -> float (T, 3, size, size) in [0, 1], resized without cropping."""
    return resize(clip.float(), size).div_(255.0)
