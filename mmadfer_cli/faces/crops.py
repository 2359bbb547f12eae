"""Cut the face out of each frame the way the official preprocessing does.

The official MAFW face extraction (``data_utils/extract_faces_mfaw.py``)
rounds the detector's box, clamps its top-left corner at 0, grows the
shorter side by ``diff // 2`` on each side to make it square, and slices the
frame, which clips the square where it leaves the frame (a face at the edge
gives a narrower region, later stretched to 224 x 224; no padding). The
region is then resized to 224 x 224 with bilinear interpolation as PIL does
it (antialiased when shrinking). Crops stay uint8 until the model's device.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F

CROP_SIZE = 224


def face_region(box: np.ndarray, width: int, height: int) -> tuple[int, int, int, int]:
    """(x0, y0, x1, y1) pixel region cut for an x1, y1, x2, y2 face box, by the official rule."""
    x1, y1, x2, y2 = (round(float(v)) for v in box[:4])
    x1, y1 = max(0, x1), max(0, y1)
    box_h, box_w = y2 - y1, x2 - x1
    if box_h > box_w:
        grow = (box_h - box_w) // 2
        x1, x2 = x1 - grow, x2 + grow
    elif box_w > box_h:
        grow = (box_w - box_h) // 2
        y1, y2 = y1 - grow, y2 + grow
    x0, y0 = min(max(0, x1), width - 1), min(max(0, y1), height - 1)
    return x0, y0, max(min(x2, width), x0 + 1), max(min(y2, height), y0 + 1)


def crop_faces(
    frames: Sequence[np.ndarray], boxes: np.ndarray, size: int = CROP_SIZE
) -> torch.Tensor:
    """Face crops of uint8 RGB frames (H, W, 3) at ``boxes`` (n, 4): uint8 (n, 3, size, size)."""
    out = torch.empty((len(frames), 3, size, size), dtype=torch.uint8)
    for i, (frame, box) in enumerate(zip(frames, boxes, strict=True)):
        height, width = frame.shape[:2]
        x0, y0, x1, y1 = face_region(box, width, height)
        patch = torch.from_numpy(np.ascontiguousarray(frame[y0:y1, x0:x1]))
        patch = patch.permute(2, 0, 1)[None].float()
        resized = F.interpolate(
            patch, size=(size, size), mode="bilinear", antialias=True, align_corners=False
        )
        out[i] = resized[0].round().clamp(0, 255).to(torch.uint8)
    return out
