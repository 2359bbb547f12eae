"""Rows from a segment's predictions: the one place where result rows are made.

One row per face track with its label, probabilities and box; one ``no_face``
row for a segment without any track; one ``error`` row for a segment in a
damaged stretch, or for a whole video that could not be read.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from mmadfer_cli.media.discover import path_text
from mmadfer_cli.table.schema import prob_column

if TYPE_CHECKING:
    from mmadfer_cli.run.clips import SegmentClips

EMBEDDINGS_KEY = "_embeddings"
"""A row's face embeddings (re-identification), carried until people are assigned, never written."""


def segment_rows(
    video: str,
    video_id: str | None,
    seg: SegmentClips,
    probs: np.ndarray,
    class_names: Sequence[str],
) -> list[dict[str, Any]]:
    """Rows of one segment: one per face track (``probs`` row i is ``seg.faces[i]``), else
    ``no_face``; one ``error`` row for a segment that could not be read."""
    base = {
        "video": video,
        "video_id": video_id,
        "segment": seg.segment.index,
        "start_s": float(seg.segment.start_s),
        "end_s": float(seg.segment.end_s),
        "has_audio": bool(seg.has_audio),
    }
    if seg.error is not None:
        return [{**base, "status": "error", "error": path_text(seg.error)}]
    if not seg.faces:
        return [{**base, "status": "no_face"}]
    if probs.shape != (len(seg.faces), len(class_names)):
        raise ValueError(
            f"expected probabilities {(len(seg.faces), len(class_names))}, got {probs.shape}"
        )
    rows = []
    for face, p in zip(seg.faces, probs, strict=True):
        best = int(np.argmax(p))
        x, y, w, h = face.bbox
        rows.append(
            {
                **base,
                "track_id": int(face.track_id),
                "status": "ok",
                "label": class_names[best],
                "confidence": float(p[best]),
                **{prob_column(name): float(v) for name, v in zip(class_names, p, strict=True)},
                "face_frames": int(face.face_frames),
                "face_score": float(face.face_score),
                "bbox_x": float(x),
                "bbox_y": float(y),
                "bbox_w": float(w),
                "bbox_h": float(h),
                **({EMBEDDINGS_KEY: face.embeddings} if face.embeddings is not None else {}),
            }
        )
    rows.sort(key=lambda r: r["track_id"])
    return rows


def error_row(video: str, video_id: str | None, message: str) -> dict[str, Any]:
    """The single row that stands for a video that could not be processed."""
    return {"video": video, "video_id": video_id, "status": "error", "error": message}
