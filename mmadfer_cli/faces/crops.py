"""Cut the face out of each frame the way the official preprocessing does.

A square of the face box's longer side, centred on the face, resized to
224 x 224 with bilinear interpolation as PIL does it (antialiased when
shrinking). Where the square would leave the frame it is shifted back inside
(no padding, so no black borders the model never saw in training); only when
the face is larger than the frame's shorter side is the square shrunk to fit.
Crops stay uint8 until the model's device.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F

CROP_SIZE = 224


def square_box(box: np.ndarray, width: int, height: int) -> tuple[int, int, int]:
    """(x0, y0, side) of the square crop for an x1, y1, x2, y2 face box in a width x height frame."""
    x1, y1, x2, y2 = (float(v) for v in box[:4])
    side = round(max(x2 - x1, y2 - y1))
    side = int(min(max(side, 1), width, height))
    x0 = round((x1 + x2) / 2 - side / 2)
    y0 = round((y1 + y2) / 2 - side / 2)
    return int(np.clip(x0, 0, width - side)), int(np.clip(y0, 0, height - side)), side


def crop_faces(
    frames: Sequence[np.ndarray], boxes: np.ndarray, size: int = CROP_SIZE
) -> torch.Tensor:
    """Square face crops of uint8 RGB frames (H, W, 3) at ``boxes`` (n, 4): uint8 (n, 3, size, size)."""
    out = torch.empty((len(frames), 3, size, size), dtype=torch.uint8)
    for i, (frame, box) in enumerate(zip(frames, boxes, strict=True)):
        height, width = frame.shape[:2]
        x0, y0, side = square_box(box, width, height)
        patch = torch.from_numpy(np.ascontiguousarray(frame[y0 : y0 + side, x0 : x0 + side]))
        patch = patch.permute(2, 0, 1)[None].float()
        resized = F.interpolate(
            patch, size=(size, size), mode="bilinear", antialias=True, align_corners=False
        )
        out[i] = resized[0].round().clamp(0, 255).to(torch.uint8)
    return out
