"""Join per-frame face detections into person tracks.

Detection runs only on the frames the segments sample (16 per segment, a few
per second), so the tracker works in time rather than frame steps: each
track's box is moved by its velocity to the new frame's time and matched to
the detections by overlap (Hungarian assignment, scipy). A track that is not
seen for ``max_gap_s`` ends; a face seen again later starts a new track.
Tracker libraries were considered (norfair would downgrade numpy below 2);
the logic needed here is small.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy.optimize import linear_sum_assignment


def iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pairwise intersection over union of (n, 4) and (m, 4) x1, y1, x2, y2 boxes."""
    x1 = np.maximum(a[:, None, 0], b[None, :, 0])
    y1 = np.maximum(a[:, None, 1], b[None, :, 1])
    x2 = np.minimum(a[:, None, 2], b[None, :, 2])
    y2 = np.minimum(a[:, None, 3], b[None, :, 3])
    inter = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    union = area_a[:, None] + area_b[None, :] - inter
    return np.where(union > 0, inter / np.maximum(union, 1e-9), 0.0)


@dataclass
class _Track:
    track_id: int
    box: np.ndarray
    time_s: float
    velocity: np.ndarray = field(default_factory=lambda: np.zeros(4))

    def predict(self, time_s: float) -> np.ndarray:
        return self.box + self.velocity * (time_s - self.time_s)


class FaceTracker:
    """Online tracker over a video's sampled frames; call ``update`` in time order."""

    def __init__(self, iou_threshold: float = 0.3, max_gap_s: float = 1.0) -> None:
        self.iou_threshold = iou_threshold
        self.max_gap_s = max_gap_s
        self._tracks: list[_Track] = []
        self._next_id = 0

    def update(self, time_s: float, boxes: np.ndarray) -> np.ndarray:
        """Track ids for the (k, 4+) boxes of the frame shown at ``time_s``."""
        self._tracks = [t for t in self._tracks if time_s - t.time_s <= self.max_gap_s]
        ids = np.full(len(boxes), -1, dtype=np.int64)
        if len(boxes) and self._tracks:
            predicted = np.stack([t.predict(time_s) for t in self._tracks])
            overlap = iou(predicted, boxes[:, :4])
            rows, cols = linear_sum_assignment(-overlap)
            for r, c in zip(rows, cols, strict=True):
                if overlap[r, c] >= self.iou_threshold:
                    self._follow(self._tracks[r], boxes[c, :4], time_s)
                    ids[c] = self._tracks[r].track_id
        for c in np.nonzero(ids < 0)[0]:
            self._tracks.append(_Track(self._next_id, boxes[c, :4].astype(np.float64), time_s))
            ids[c] = self._next_id
            self._next_id += 1
        return ids

    @staticmethod
    def _follow(track: _Track, box: np.ndarray, time_s: float) -> None:
        step = time_s - track.time_s
        if step > 0:
            track.velocity = 0.5 * track.velocity + 0.5 * (box - track.box) / step
        track.box = box.astype(np.float64)
        track.time_s = time_s


def fill_gaps(boxes: np.ndarray, found: np.ndarray) -> np.ndarray:
    """Boxes for every position: linear between detections, the nearest one at the ends.

    ``boxes`` (n, 4) is read only where ``found`` (n,) is true.
    """
    positions = np.arange(len(boxes))
    known = np.nonzero(found)[0]
    if len(known) == 0:
        raise ValueError("a track needs at least one detection to fill from")
    return np.stack(
        [np.interp(positions, known, boxes[known, k]) for k in range(4)], axis=1
    ).astype(np.float32)
