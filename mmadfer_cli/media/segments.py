"""Cut a video's timeline into segments and pick each segment's 16 frames.

A segment is the unit the model sees: ``window`` seconds of video (the model
was trained on 2-5 s clips), 16 frames sampled over it exactly as the
official test-time loader samples a clip, and the audio of the same span.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

CLIP_FRAMES = 16
_EPS = 1e-6  # seconds; absorbs float error in frame times such as i / fps


@dataclass(frozen=True)
class Segment:
    """One window of a video: its time span, 16 absolute frame indices and audio span."""

    index: int
    start_s: float
    end_s: float
    frame_indices: tuple[int, ...]
    audio_start_s: float
    audio_end_s: float


def official_frame_indices(n: int, count: int = CLIP_FRAMES) -> list[int]:
    """The official test-time sampling of ``count`` frames from a clip of ``n`` frames.

    More than ``count`` frames: the middle frame of each of ``count`` equal
    parts. Otherwise every frame, padded with the last one.
    """
    if n < 1:
        raise ValueError(f"a clip needs at least one frame, got {n}")
    if n > count:
        part = n / count
        return [int(part / 2.0 + part * i) for i in range(count)]
    return [min(i, n - 1) for i in range(count)]


def window_frames(frame_times: np.ndarray, start: float, end: float) -> np.ndarray:
    """Indices of frames that start inside [start, end), or the frame on screen at ``start``."""
    lo = int(np.searchsorted(frame_times, start - _EPS, side="left"))
    hi = int(np.searchsorted(frame_times, end - _EPS, side="left"))
    if hi > lo:
        return np.arange(lo, hi)
    shown = max(int(np.searchsorted(frame_times, start + _EPS, side="right")) - 1, 0)
    return np.array([shown])


def span_segment(
    frame_times: np.ndarray, index: int, start: float, end: float, count: int = CLIP_FRAMES
) -> Segment:
    """The segment ``index`` covering [start, end): its frames sampled the official way."""
    local = window_frames(frame_times, start, end)
    chosen = tuple(int(local[i]) for i in official_frame_indices(len(local), count))
    return Segment(index, start, end, chosen, start, end)


def plan_segments(
    frame_times: Sequence[float] | np.ndarray,
    duration_s: float,
    window_s: float = 3.0,
    stride_s: float | None = None,
    min_segment_s: float = 1.0,
    count: int = CLIP_FRAMES,
) -> list[Segment]:
    """Segments of a video whose frames start at ``frame_times`` (seconds, ascending).

    Windows of ``window_s`` every ``stride_s`` (default: the window, a
    contiguous timeline) until one reaches the end; a last partial window is
    kept when it lasts at least ``min_segment_s``, and a video shorter than
    that gives one segment of its whole length. Frame times (not an assumed
    constant rate) decide which frames belong to a window, so variable frame
    rate videos are sampled by time.
    """
    stride_s = window_s if stride_s is None else stride_s
    if window_s <= 0 or stride_s <= 0:
        raise ValueError("window and stride must be positive")
    if min_segment_s < 0:
        raise ValueError("min_segment must not be negative")
    times = np.asarray(frame_times, dtype=np.float64)
    if times.size == 0:
        raise ValueError("a video without frames has no segments")
    duration_s = max(float(duration_s), float(times[-1]))
    segments: list[Segment] = []
    for k in range(max(1, math.ceil(duration_s / stride_s))):
        start = k * stride_s
        end = min(start + window_s, duration_s)
        if segments and end - start < min_segment_s - _EPS:
            break
        segments.append(span_segment(times, len(segments), start, end, count))
        if end >= duration_s - _EPS:
            break
    return segments
