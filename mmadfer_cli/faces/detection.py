"""The face detector interface and the filters every backend's output goes through."""

from __future__ import annotations

from typing import Protocol

import numpy as np

EMPTY = np.zeros((0, 5), dtype=np.float32)


class FaceDetector(Protocol):
    """Finds faces in RGB frames.

    ``detect`` takes uint8 frames (N, H, W, 3) and returns one float32 array
    per frame of shape (k, 5): x1, y1, x2, y2 in pixels and a score in [0, 1].
    """

    name: str

    def detect(self, frames: np.ndarray) -> list[np.ndarray]: ...


class DetectorUnavailableError(RuntimeError):
    """The requested detector cannot run here; the message says how to fix it."""


def keep_faces(
    boxes: np.ndarray,
    width: int,
    height: int,
    threshold: float = 0.5,
    min_face_px: int = 20,
    max_faces: int = 0,
) -> np.ndarray:
    """The boxes scored at least ``threshold`` whose part inside the frame is at least
    ``min_face_px`` on its shorter side.

    Boxes keep the detector's coordinates, even where they pass the frame's edge: the official
    crop rule squares the detector's box first and clips the square after (``crops``).
    With ``max_faces`` > 0 only that many of the largest visible faces are kept.
    """
    if boxes.size == 0:
        return EMPTY
    boxes = boxes.astype(np.float32, copy=False)
    visible = boxes[:, :4].copy()
    visible[:, [0, 2]] = visible[:, [0, 2]].clip(0, width)
    visible[:, [1, 3]] = visible[:, [1, 3]].clip(0, height)
    sides = np.minimum(visible[:, 2] - visible[:, 0], visible[:, 3] - visible[:, 1])
    kept = (boxes[:, 4] >= threshold) & (sides >= min_face_px)
    boxes, visible = boxes[kept], visible[kept]
    if max_faces > 0 and len(boxes) > max_faces:
        areas = (visible[:, 2] - visible[:, 0]) * (visible[:, 3] - visible[:, 1])
        boxes = boxes[np.sort(np.argsort(-areas, kind="stable")[:max_faces])]
    return boxes
