"""The stage chain from a video file to the model's inputs, one segment at a time.

``iter_video_clips`` opens a video, plans its segments, and for each segment
decodes only its 16 sampled frames, detects and tracks faces on them, cuts a
16-frame 224 x 224 clip per person who is visible in enough of those frames,
and computes the filterbank of the segment's audio. It yields as it goes, so
memory stays bounded by one segment whatever the video's length.
"""

from __future__ import annotations

import bisect
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from mmadfer_cli.audio import silent_fbank, waveform_fbank
from mmadfer_cli.faces import FaceDetector, keep_faces
from mmadfer_cli.faces.crops import crop_faces
from mmadfer_cli.faces.embedding import FaceEmbeddings
from mmadfer_cli.faces.tracking import FaceTracker, fill_gaps
from mmadfer_cli.media import Video, VideoInfo, open_video
from mmadfer_cli.segments import Segment, plan_segments, span_segment


@dataclass(frozen=True)
class ClipSettings:
    """Everything that decides which clips a video gives (recorded with the results)."""

    window_s: float = 3.0
    stride_s: float | None = None  # None: equal to the window
    min_segment_s: float = 1.0
    min_face_frames: int = 8  # of the 16 sampled frames
    face_threshold: float = 0.5
    min_face_px: int = 20  # shorter side of the face box, original pixels
    max_faces: int = 0  # 0: all faces; else the largest N per frame
    track_iou: float = 0.3
    max_gap_s: float = 1.0  # a track unseen for longer ends
    detector: str = "auto"
    face_models: Path | None = None


@dataclass(frozen=True)
class FaceClip:
    """One person in one segment: 16 face crops and how well the face was seen."""

    track_id: int
    clip: torch.Tensor  # uint8 (16, 3, 224, 224)
    face_frames: int  # of 16 sampled frames with a detection
    face_score: float  # mean detector score over those frames
    bbox: tuple[float, float, float, float]  # x, y, w, h: mean detected box, original pixels
    boxes: np.ndarray  # float32 (16, 4) x1, y1, x2, y2 cropped on each sampled frame (gaps filled)
    scores: np.ndarray | None = None  # float32 (16,) detector score per sampled frame, 0 in gaps
    embeddings: FaceEmbeddings | None = None  # identity vectors of a few frames (re-identification)


@dataclass(frozen=True)
class SegmentClips:
    """A segment with its audio filterbank and the face clips of the people in it."""

    segment: Segment
    has_audio: bool
    fbank: torch.Tensor  # float32 (512, 128)
    faces: list[FaceClip]


def probe(path: str | os.PathLike[str]) -> VideoInfo:
    """A video's metadata before iterating (raises ``MediaError``)."""
    with open_video(path) as video:
        return video.info


def plan(video: Video, settings: ClipSettings) -> list[Segment]:
    return plan_segments(
        video.frame_times,
        video.info.duration_s,
        window_s=settings.window_s,
        stride_s=settings.stride_s,
        min_segment_s=settings.min_segment_s,
    )


def segment_fbank(video: Video, segment: Segment) -> tuple[bool, torch.Tensor]:
    """(has_audio, fbank) of a segment; the official zero filterbank when there is no sound."""
    waveform = video.audio(segment.audio_start_s, segment.audio_end_s)
    if waveform is None or waveform.shape[1] == 0:
        return False, silent_fbank()
    return True, waveform_fbank(torch.from_numpy(waveform), video.info.sample_rate)


def iter_video_clips(
    path: str | os.PathLike[str],
    settings: ClipSettings,
    detector: FaceDetector,
    span: tuple[float, float] | None = None,
) -> Iterator[SegmentClips]:
    """Segments of one video, in order, each with its face clips and filterbank.

    With ``span`` (start, end seconds), only that one segment, instead of the
    settings' windows over the whole video.

    Faces are detected and tracked on the union of all segments' sampled frames in
    time order, so that overlapping windows (a stride shorter than the window) share
    one consistent set of tracks. Frames are kept only while a segment still needs them.
    """
    with open_video(path) as video:
        segments = [span_segment(video.frame_times, 0, *span)] if span else plan(video, settings)
        tracker = FaceTracker(settings.track_iou, settings.max_gap_s)
        sampled = sorted({int(i) for s in segments for i in s.frame_indices})
        done = 0  # sampled[:done] are detected and tracked
        seen: dict[int, tuple[np.ndarray, np.ndarray]] = {}  # frame -> (boxes, track ids)
        decoded: dict[int, np.ndarray] = {}  # frame -> pixels
        for k, segment in enumerate(segments):
            upto = bisect.bisect_right(sampled, max(segment.frame_indices))
            batch, done = sampled[done:upto], upto
            if batch:
                frames = video.frames(batch)
                for index, frame, found in zip(batch, frames, detector.detect(frames), strict=True):
                    boxes = keep_faces(
                        found,
                        video.info.width,
                        video.info.height,
                        settings.face_threshold,
                        settings.min_face_px,
                        settings.max_faces,
                    )
                    seen[index] = (boxes, tracker.update(float(video.frame_times[index]), boxes))
                    decoded[index] = frame
            unique = np.unique(segment.frame_indices)
            frames = np.stack([decoded[int(i)] for i in unique])
            positions = np.searchsorted(unique, segment.frame_indices)
            faces = _face_clips(segment, unique, positions, frames, seen, settings)
            has_audio, fbank = segment_fbank(video, segment)
            if k + 1 < len(segments):  # forget frames no later segment samples
                keep = segments[k + 1].frame_indices[0]
                seen = {i: v for i, v in seen.items() if i >= keep}
                decoded = {i: v for i, v in decoded.items() if i >= keep}
            yield SegmentClips(segment, has_audio, fbank, faces)


def _face_clips(
    segment: Segment,
    unique: np.ndarray,
    positions: np.ndarray,
    frames: np.ndarray,
    seen: dict[int, tuple[np.ndarray, np.ndarray]],
    settings: ClipSettings,
) -> list[FaceClip]:
    count = len(segment.frame_indices)
    tracks: dict[int, tuple[np.ndarray, np.ndarray]] = {}  # id -> (boxes (16, 5), found (16,))
    for slot, index in enumerate(segment.frame_indices):
        boxes, ids = seen[int(index)]
        for box, track_id in zip(boxes, ids, strict=True):
            track = tracks.setdefault(
                int(track_id), (np.zeros((count, 5), np.float32), np.zeros(count, bool))
            )
            track[0][slot] = box
            track[1][slot] = True
    clips = []
    for track_id in sorted(tracks):
        boxes, found = tracks[track_id]
        if int(found.sum()) < settings.min_face_frames:
            continue
        filled = fill_gaps(boxes[:, :4], found)
        crops = crop_faces([frames[p] for p in positions], filled)
        detected = boxes[found]
        x1, y1, x2, y2 = detected[:, :4].mean(axis=0)
        clips.append(
            FaceClip(
                track_id=track_id,
                clip=crops,
                face_frames=int(found.sum()),
                face_score=float(detected[:, 4].mean()),
                bbox=(float(x1), float(y1), float(x2 - x1), float(y2 - y1)),
                boxes=filled,
                scores=np.where(found, boxes[:, 4], 0.0).astype(np.float32),
            )
        )
    return clips
