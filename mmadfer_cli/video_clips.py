"""Labelled video spans (CSV rows) through the tool's own media and face stages.

Each row becomes one 16-frame face clip and its filterbank, exactly as
``annotate`` would see that span: the official test-time frames of the span,
the face track seen on most of them (the labelled person is taken to be the
most visible one). Clips are extracted once, before training or evaluation,
so every bad row (unreadable video, no face) is reported at once by line.
Training then applies the official augmentations to these 16 frames; the
random per-part frame choice needs face frames a span's clip does not hold.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace

import torch

from mmadfer_cli.clips import ClipSettings, iter_video_clips, probe
from mmadfer_cli.faces import create_detector
from mmadfer_cli.labelled_data import DataError, VideoSpanClip
from mmadfer_cli.media import MediaError


def _span_clip(
    clip: VideoSpanClip, detector, settings: ClipSettings
) -> tuple[torch.Tensor, torch.Tensor]:
    duration = probe(clip.video).duration_s
    start = clip.start_s or 0.0
    end = min(clip.end_s if clip.end_s is not None else duration, duration)
    if end <= start:
        raise ValueError(f"span {start}-{end} s is outside the video ({duration:.2f} s)")
    # windows of the span's length every `start` seconds: the second one is the span
    span = replace(settings, window_s=end - start, stride_s=start or None, min_segment_s=0.0)
    for segment_clips in iter_video_clips(clip.video, span, detector):
        if abs(segment_clips.segment.start_s - start) > 1e-3:
            continue
        if not segment_clips.faces:
            raise ValueError(
                f"no face on at least {settings.min_face_frames} of the 16 frames of {clip.video}"
            )
        face = max(segment_clips.faces, key=lambda f: (f.face_frames, f.face_score))
        return face.clip, segment_clips.fbank
    raise ValueError(f"span {start}-{end} s not found in {clip.video}")


class SpanClips(dict):
    """Extracted (face clip, fbank) by line number; called with a row, returns its pair
    (the dataset's span loader)."""

    def __call__(self, clip: VideoSpanClip) -> tuple[torch.Tensor, torch.Tensor]:
        return self[clip.line]


def extract_span_clips(
    clips: Sequence[VideoSpanClip],
    settings: ClipSettings | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> SpanClips:
    """Face clip (uint8 (16, 3, 224, 224)) and fbank of every row, keyed by line number."""
    settings = settings or ClipSettings()
    detector = create_detector(settings.detector, settings.face_models, settings.face_threshold)
    out = SpanClips()
    errors = []
    for done, clip in enumerate(clips, start=1):
        try:
            out[clip.line] = _span_clip(clip, detector, settings)
        except (ValueError, MediaError) as error:
            errors.append(f"line {clip.line}: {error}")
        if progress is not None:
            progress(done, len(clips))
    if errors:
        raise DataError(f"{len(errors)} bad video row(s):\n  " + "\n  ".join(errors))
    return out
