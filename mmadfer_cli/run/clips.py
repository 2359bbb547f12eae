"""The stage chain from a video file to the model's inputs, one segment at a time.

``iter_video_clips`` opens a video, plans its segments, and for each segment
decodes only its 16 sampled frames, detects and tracks faces on them, cuts a
16-frame 224 x 224 clip per person who is visible in enough of those frames,
and computes the filterbank of the segment's audio. It yields as it goes, so
memory stays bounded by one segment whatever the video's length.
"""

from __future__ import annotations

import bisect
import contextlib
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from mmadfer_cli.faces import FaceDetector, create_detector, keep_faces
from mmadfer_cli.faces.crops import crop_faces
from mmadfer_cli.faces.embedding import FaceEmbeddings
from mmadfer_cli.faces.tracking import FaceTracker, fill_gaps
from mmadfer_cli.media.fbank import silent_fbank, waveform_fbank
from mmadfer_cli.media.segments import Segment, plan_segments, span_segment
from mmadfer_cli.media.video import (
    DamagedAudioError,
    DamagedFramesError,
    Video,
    open_video,
)

SOUNDTRACKS = ("video", "silent")
"""What the model hears in a segment: the video's own sound, or the silence a video without an
audio track gets (every face then judged on its face alone: no speaker's voice colours a
listener's label)."""
DETECT_MAX_SIDE = 1920  # larger frames are shrunk for face detection (see detect_faces)
DETECT_CPU_PIXELS = 1 << 22  # pixels per detector call on the CPU (about two 1080p frames)


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
    soundtrack: str = "video"  # one of SOUNDTRACKS


def settings_detector(settings: ClipSettings, device: torch.device) -> FaceDetector:
    """The face detector the settings name, on ``device`` (MTCNN searching from the smallest
    face kept)."""
    return create_detector(
        settings.detector,
        settings.face_models,
        threshold=settings.face_threshold,
        device=device,
        min_face=settings.min_face_px,
    )


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
    error: str | None = None  # why this segment cannot be annotated (a damaged stretch)


def plan(video: Video, settings: ClipSettings) -> list[Segment]:
    return plan_segments(
        video.frame_times,
        video.info.duration_s,
        window_s=settings.window_s,
        stride_s=settings.stride_s,
        min_segment_s=settings.min_segment_s,
    )


def segment_fbank(
    video: Video, segment: Segment, soundtrack: str = "video"
) -> tuple[bool, torch.Tensor]:
    """(has_audio, fbank) of a segment; the official zero filterbank when there is no sound, and
    with the ``silent`` soundtrack, which takes the path of a video without an audio track."""
    waveform = (
        None if soundtrack == "silent" else video.audio(segment.audio_start_s, segment.audio_end_s)
    )
    if waveform is None or waveform.shape[1] == 0:
        return False, silent_fbank()
    return True, waveform_fbank(torch.from_numpy(waveform), video.info.sample_rate)


@dataclass(frozen=True)
class Chunk:
    """Segments ``[first, stop)`` of a video's plan: the unit of parallel work and retry."""

    index: int
    first: int
    stop: int


def plan_chunks(segment_count: int, settings: ClipSettings, chunk_s: float) -> list[Chunk]:
    """Consecutive segments of about ``chunk_s`` seconds each (0: the whole video, one chunk)."""
    if chunk_s <= 0 or segment_count == 0:
        return [Chunk(0, 0, segment_count)]
    per_chunk = max(1, round(chunk_s / (settings.stride_s or settings.window_s)))
    firsts = range(0, segment_count, per_chunk)
    return [Chunk(k, a, min(a + per_chunk, segment_count)) for k, a in enumerate(firsts)]


def warmup_s(settings: ClipSettings) -> float:
    """How long before its first segment a chunk's tracker starts: enough for the frames its
    first segment shares with the previous chunk, for every track a whole-video tracker would
    still hold (``max_gap_s``), and for their motion estimates to settle."""
    return settings.window_s + settings.max_gap_s + 2.0


@dataclass
class TrackLog:
    """What a chunk's tracker did near the chunk's edges, to give its tracks video-wide ids
    (``stitch``): per frame, boxes and local track ids in the warm-up (``head``, frames up to
    ``boundary``, the previous chunk's last tracked frame) and in the last ``warmup_s`` seconds
    (``tail``); the frame where each local track began; the tracks seen after the boundary."""

    boundary: int = -1
    head: dict[int, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)
    tail: dict[int, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)
    births: dict[int, int] = field(default_factory=dict)
    own: set[int] = field(default_factory=set)


DECODE_BATCH = 16  # warm-up frames decoded at a time (bounds memory on large frames)


def detect_faces(detector: FaceDetector, frames: np.ndarray) -> list[np.ndarray]:
    """Faces in frames, found on copies shrunk to at most ``DETECT_MAX_SIDE`` pixels.

    Beyond 1080p a detector's memory and time grow with the pixels (MTCNN held
    about 1 GB more for a 4K segment) while the faces it adds are tiny (under
    40 px at 4K, 1 % of the height). Frames up to 1920 px, like the videos the
    model was trained on, are detected as they are. Shrinking is by an integer
    factor with box averaging; boxes come back in the original pixels.
    """
    if not len(frames):
        return []
    height, width = frames[0].shape[:2]
    factor = -(-max(height, width) // DETECT_MAX_SIDE)  # ceiling division
    # On the CPU a few frames per call: a detector's working memory grows with the batch.
    # (A GPU detector shared by the workers wants many frames per call instead.)
    on_cpu = _on_cpu(detector)
    step = max(1, DETECT_CPU_PIXELS * factor**2 // (height * width)) if on_cpu else len(frames)
    found: list[np.ndarray] = []
    for first in range(0, len(frames), step):
        part = frames[first : first + step]
        if factor > 1:
            part = np.stack([_shrink(frame, factor) for frame in part])
        found += detector.detect(part)
    if factor == 1:
        return found
    scale = np.array([factor] * 4 + [1], np.float32)
    return [boxes * scale if len(boxes) else boxes for boxes in found]


def _on_cpu(detector: object) -> bool:
    """Whether a detector (seen through the wrappers that count or share it) runs on the CPU."""
    while (inner := getattr(detector, "detector", None)) is not None:
        detector = inner
    device = getattr(detector, "device", None)
    return device is None or torch.device(device).type == "cpu"


def _shrink(frame: np.ndarray, factor: int) -> np.ndarray:
    """Box-average ``factor`` x ``factor`` pixel blocks (a partial last row or column dropped)."""
    h, w = frame.shape[0] // factor, frame.shape[1] // factor
    total = np.zeros((h, w, frame.shape[2]), np.uint32)
    for dy in range(factor):
        for dx in range(factor):
            total += frame[dy : h * factor : factor, dx : w * factor : factor]
    return ((total + factor * factor // 2) // (factor * factor)).astype(np.uint8)


def iter_video_clips(
    path: str | os.PathLike[str],
    settings: ClipSettings,
    detector: FaceDetector,
    span: tuple[float, float] | None = None,
    chunk_s: float = 0.0,
    chunk_index: int = 0,
    log: TrackLog | None = None,
    video: Video | None = None,
) -> Iterator[SegmentClips]:
    """Segments of one video, in order, each with its face clips and filterbank.

    With ``span`` (start, end seconds), only that one segment, instead of the
    settings' windows over the whole video. With ``chunk_s`` > 0, only the
    segments of chunk ``chunk_index`` (``plan_chunks``); its tracker starts
    ``warmup_s`` earlier on the same sampled frames, and ``log`` records what
    ``stitch`` needs to number its tracks as one tracker over the whole video would.

    Faces are detected and tracked on the union of all segments' sampled frames in
    time order, so that overlapping windows (a stride shorter than the window) share
    one consistent set of tracks. Frames are kept only while a segment still needs them.
    A segment with frames or sound that cannot be decoded (a damaged stretch) comes with
    its ``error`` and no faces; the others are unaffected. ``video``: ``path`` already open
    (``HeldVideo``), read from where it is and left open.
    """
    log = log if log is not None else TrackLog()
    with contextlib.nullcontext(video) if video is not None else open_video(path) as video:
        segments = [span_segment(video.frame_times, 0, *span)] if span else plan(video, settings)
        chunks = plan_chunks(len(segments), settings, chunk_s)
        if chunk_index >= len(chunks) or not segments:
            return
        first, stop = chunks[chunk_index].first, chunks[chunk_index].stop
        times = video.frame_times
        tracker = FaceTracker(settings.track_iou, settings.max_gap_s)
        sampled = sorted({int(i) for s in segments for i in s.frame_indices})
        log.boundary = max(segments[first - 1].frame_indices) if first > 0 else -1
        tail_from = float(times[max(segments[stop - 1].frame_indices)]) - warmup_s(settings)
        seen: dict[int, tuple[np.ndarray, np.ndarray]] = {}  # frame -> (boxes, track ids)
        decoded: dict[int, np.ndarray] = {}  # frame -> pixels
        damaged: dict[int, str] = {}  # frame that cannot be decoded -> why

        def track(batch: list[int], needed_from: int) -> None:
            try:
                frames = video.frames(batch)
            except DamagedFramesError as error:  # track what decoded, remember the rest
                damaged.update(dict.fromkeys(error.missing, str(error)))
                batch = sorted(error.frames)
                if not batch:
                    return
                frames = np.stack([error.frames[i] for i in batch])
            for index, frame, found in zip(
                batch, frames, detect_faces(detector, frames), strict=True
            ):
                boxes = keep_faces(
                    found,
                    video.info.width,
                    video.info.height,
                    settings.face_threshold,
                    settings.min_face_px,
                    settings.max_faces,
                )
                time_s = float(times[index])
                ids = tracker.update(time_s, boxes)
                seen[index] = (boxes, ids)
                if index >= needed_from:
                    decoded[index] = frame
                for track_id in ids.tolist():
                    log.births.setdefault(track_id, index)
                    if index > log.boundary:
                        log.own.add(track_id)
                if index <= log.boundary:
                    log.head[index] = (boxes[:, :4].copy(), ids)
                if time_s >= tail_from:
                    log.tail[index] = (boxes[:, :4].copy(), ids)

        done = bisect.bisect_right(sampled, log.boundary)  # sampled[:done] belong to earlier chunks
        if first > 0:  # warm up on the previous chunk's last seconds
            warm_from = float(times[log.boundary]) - warmup_s(settings)
            start = next(i for i, f in enumerate(sampled) if times[f] >= warm_from)
            needed_from = segments[first].frame_indices[0]
            for a in range(start, done, DECODE_BATCH):
                track(sampled[a : min(a + DECODE_BATCH, done)], needed_from)
        for k in range(first, stop):
            segment = segments[k]
            upto = bisect.bisect_right(sampled, max(segment.frame_indices))
            batch, done = sampled[done:upto], upto
            if batch:
                track(batch, 0)
            why = next((damaged[i] for i in segment.frame_indices if i in damaged), None)
            if why is None:
                item = _segment_clips(video, segment, decoded, seen, settings)
            else:
                heard = video.info.has_audio and settings.soundtrack != "silent"
                item = SegmentClips(segment, heard, silent_fbank(), [], error=why)
            if k + 1 < len(segments):  # forget frames no later segment samples
                keep = segments[k + 1].frame_indices[0]
                seen = {i: v for i, v in seen.items() if i >= keep}
                decoded = {i: v for i, v in decoded.items() if i >= keep}
            yield item


def _segment_clips(
    video: Video,
    segment: Segment,
    decoded: dict[int, np.ndarray],
    seen: dict[int, tuple[np.ndarray, np.ndarray]],
    settings: ClipSettings,
) -> SegmentClips:
    """A segment whose frames all decoded: its face clips and filterbank."""
    unique = np.unique(segment.frame_indices)
    frames = [decoded[int(i)] for i in unique]  # views of the decoded batches: no copy
    positions = np.searchsorted(unique, segment.frame_indices)
    faces = _face_clips(segment, unique, positions, frames, seen, settings)
    try:
        has_audio, fbank = segment_fbank(video, segment, settings.soundtrack)
    except DamagedAudioError as error:
        return SegmentClips(segment, True, silent_fbank(), [], error=str(error))
    return SegmentClips(segment, has_audio, fbank, faces)


class HeldVideo:
    """A worker's last video, kept open for its next chunk of the same video.

    A video's chunks are queued in order, so a worker's next chunk of it lies further on:
    its reader goes on from where the last chunk stopped instead of opening the file again
    and decoding the sound from the top (what a chunk deep in a long video costs, see
    ``media``). Opened afresh after an error.
    """

    def __init__(self) -> None:
        self._video: Video | None = None

    def segments(
        self,
        path: str | os.PathLike[str],
        settings: ClipSettings,
        detector: FaceDetector,
        chunk_s: float,
        chunk_index: int,
        log: TrackLog,
    ) -> Iterator[SegmentClips]:
        """``iter_video_clips`` of one chunk, on the held video when it is ``path``."""
        held = self._video
        if held is None or held.path != Path(path):
            self.close()
            self._video = open_video(path)
        try:
            yield from iter_video_clips(
                path,
                settings,
                detector,
                chunk_s=chunk_s,
                chunk_index=chunk_index,
                log=log,
                video=self._video,
            )
        except BaseException:  # an error, or the run stopped mid-chunk (GeneratorExit)
            self.close()
            raise

    def close(self) -> None:
        if self._video is not None:
            self._video.close()
            self._video = None


def count_chunks(path: str | os.PathLike[str], settings: ClipSettings, chunk_s: float) -> int:
    """How many chunks ``plan_chunks`` makes of a video (opens it: raises ``MediaError``)."""
    with open_video(path) as video:
        return len(plan_chunks(len(plan(video, settings)), settings, chunk_s))


def _face_clips(
    segment: Segment,
    unique: np.ndarray,
    positions: np.ndarray,
    frames: list[np.ndarray],
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
