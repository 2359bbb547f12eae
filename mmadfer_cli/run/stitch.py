"""Video-wide track ids for a video processed in chunks.

Each chunk tracks its own segments with a tracker of its own that starts a few
seconds early, on the previous chunk's last sampled frames (``clips.warmup_s``).
By the chunk's first segment that tracker holds the same tracks, with the same
motion, as one tracker over the whole video would, so its local ids only need
renaming: a local track seen in the warm-up takes the id of the previous chunk's
track on the same face in the latest shared frame; a track born after the
boundary takes the next id, in order of birth, which is the number one tracker
over the whole video would give it. Chunks are stitched in order, each against
the previous one's ids.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from mmadfer_cli.faces.tracking import iou
from mmadfer_cli.run.clips import TrackLog

SAME_FACE_IOU = 0.5  # both chunks detected the same frame: their boxes agree to float rounding


def _pairs(a: np.ndarray, b: np.ndarray) -> list[tuple[int, int]]:
    """Greedy one-to-one pairs of boxes (most overlapping first) above SAME_FACE_IOU."""
    if len(a) == 0 or len(b) == 0:
        return []
    overlap = iou(a, b)
    pairs = []
    while True:
        i, j = np.unravel_index(np.argmax(overlap), overlap.shape)
        if overlap[i, j] < SAME_FACE_IOU:
            return pairs
        pairs.append((int(i), int(j)))
        overlap[i, :] = -1
        overlap[:, j] = -1


def stitch(logs: Sequence[TrackLog]) -> list[dict[int, int]]:
    """Per chunk, in order, its local track ids -> video-wide track ids."""
    maps: list[dict[int, int]] = []
    next_id = 0
    previous_tail: dict[int, tuple[np.ndarray, list[int | None]]] = {}
    for log in logs:
        mapping: dict[int, int] = {}
        for frame in sorted(set(log.head) & set(previous_tail), reverse=True):
            boxes, ids = log.head[frame]
            their_boxes, their_ids = previous_tail[frame]
            for i, j in _pairs(boxes, their_boxes):
                if their_ids[j] is not None:
                    mapping.setdefault(int(ids[i]), their_ids[j])
        for local in sorted(log.births, key=lambda t: (log.births[t], t)):
            if local not in mapping and (log.births[local] > log.boundary or local in log.own):
                mapping[local] = next_id
                next_id += 1
        maps.append(mapping)
        previous_tail = {
            frame: (boxes, [mapping.get(int(t)) for t in ids])
            for frame, (boxes, ids) in log.tail.items()
        }
    return maps
