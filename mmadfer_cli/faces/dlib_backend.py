"""dlib's HOG + linear SVM frontal face detector (``--detector dlib``), the speed baseline.

Its weights are compiled into the ``dlib`` module itself (installed from the
``dlib-bin`` wheel), so it works with no model download. It finds frontal and
near-frontal faces from about 40 pixels up; SCRFD is markedly more accurate on
profiles, small faces and hard lighting. Chosen over OpenCV's Haar cascades
(which OpenCV 5 no longer ships) because it found every face of the sample
videos in every frame with fewer false alarms, and faster.
"""

from __future__ import annotations

import numpy as np
from PIL import Image

WORK_SIZE = 1024  # longer side frames are shrunk to first: bounds the cost on HD video
# dlib's window finds faces from about 80 px; frames whose longer side is below this are
# doubled first (dlib's upsampling) so that the smaller faces of small videos are found too.
# Larger frames are not: doubling them costs 4x and, on large faces, finds fewer of them.
UPSAMPLE_BELOW = 720


class DlibHogDetector:
    """dlib's frontal face detector; scores are the logistic of the SVM margin."""

    name = "dlib"

    def __init__(self, threshold: float = 0.5, upsample: int | None = None) -> None:
        import dlib

        self._detector = dlib.get_frontal_face_detector()
        self._upsample = upsample
        # The SVM margin whose logistic is ``threshold``: candidates below it are dropped early.
        p = min(max(threshold, 1e-6), 1 - 1e-6)
        self._margin = float(np.log(p / (1 - p)))

    def _detect_one(self, frame: np.ndarray) -> np.ndarray:
        height, width = frame.shape[:2]
        scale = min(1.0, WORK_SIZE / max(height, width))
        image = frame
        if scale < 1.0:
            size = (round(width * scale), round(height * scale))
            image = np.asarray(Image.fromarray(frame).resize(size, Image.BILINEAR))
        upsample = self._upsample
        if upsample is None:
            upsample = 1 if max(image.shape[:2]) < UPSAMPLE_BELOW else 0
        rects, margins, _ = self._detector.run(np.ascontiguousarray(image), upsample, self._margin)
        if not rects:
            return np.zeros((0, 5), dtype=np.float32)
        boxes = np.array(
            [[r.left(), r.top(), r.right() + 1, r.bottom() + 1] for r in rects], dtype=np.float32
        )
        scores = 1.0 / (1.0 + np.exp(-np.asarray(margins, dtype=np.float32)))
        return np.concatenate([boxes / scale, scores[:, None]], axis=1)

    def detect(self, frames: np.ndarray) -> list[np.ndarray]:
        return [self._detect_one(frame) for frame in frames]
