"""Labelled video spans (CSV rows) through the tool's own media and face stages.

The face stage runs once per row, as ``annotate`` would see that span: on the
official test-time frames of the span, keeping the face track seen on most of
them (the labelled person is taken to be the most visible one). That track's
box is then interpolated to every frame of the span (linear between the
sampled frames, the nearest one before the first and after the last), and
only the frames' boxes and the span's filterbank are kept. Items decode their
frames when loaded: the test-time frames for validation and evaluation, and
at training time the official train-time choice (a random frame from each of
16 equal parts of the span, drawn again every epoch), cropped as ``annotate``
crops. Every bad row (unreadable video, no face) is reported at once by line,
before training or evaluation starts.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from mmadfer_cli.faces import create_detector
from mmadfer_cli.faces.crops import crop_faces
from mmadfer_cli.faces.detection import FaceDetector
from mmadfer_cli.faces.tracking import fill_gaps
from mmadfer_cli.media.segments import official_frame_indices, window_frames
from mmadfer_cli.media.video import MediaError, Video, open_video, video_id
from mmadfer_cli.plural import counted
from mmadfer_cli.recipe import augment
from mmadfer_cli.recipe.labelled_data import DataError, VideoSpanClip
from mmadfer_cli.run.clips import ClipSettings, iter_video_clips

OPEN_VIDEOS = 4  # videos a loading process keeps open (rows of one video often come together)


@dataclass(frozen=True)
class SpanFaces:
    """One row's span: its frames, the labelled face's box on each, and its filterbank."""

    video: Path
    frames: np.ndarray  # int64 (n,): every frame of the span, ascending
    boxes: np.ndarray  # float32 (n, 4): x1, y1, x2, y2 of the face on each of those frames
    test_frames: tuple[int, ...]  # the official test-time frames (16, absolute indices)
    fbank: torch.Tensor  # float32 (512, 128)


def _span_faces(clip: VideoSpanClip, detector: FaceDetector, settings: ClipSettings) -> SpanFaces:
    start = clip.start_s or 0.0
    with open_video(clip.video) as video:
        duration = video.info.duration_s
        end = min(clip.end_s if clip.end_s is not None else duration, duration)
        if end <= start:
            raise ValueError(f"span {start}-{end} s is outside the video ({duration:.2f} s)")
        frames = window_frames(video.frame_times, start, end)
    (segment_clips,) = iter_video_clips(clip.video, settings, detector, span=(start, end))
    segment = segment_clips.segment
    if not segment_clips.faces:
        raise ValueError(
            f"no face on at least {settings.min_face_frames} of the 16 frames of {clip.video}"
        )
    face = max(segment_clips.faces, key=lambda f: (f.face_frames, f.face_score))
    sampled = [int(frames[i]) for i in official_frame_indices(len(frames))]
    if sampled != list(segment.frame_indices):
        raise ValueError(f"the span's frames of {clip.video} changed between two reads")
    # the track's boxes on the sampled frames, interpolated to every frame of the span
    test = np.asarray(segment.frame_indices)
    unique, first = np.unique(test, return_index=True)
    known = np.zeros((len(frames), 4), np.float32)
    found = np.zeros(len(frames), bool)
    positions = np.searchsorted(frames, unique)
    known[positions] = face.boxes[first]
    found[positions] = True
    return SpanFaces(
        video=Path(clip.video),
        frames=frames.astype(np.int64),
        boxes=fill_gaps(known, found),
        test_frames=tuple(int(i) for i in test),
        fbank=segment_clips.fbank,
    )


class SpanClips:
    """The extracted spans by line number; the dataset's span loader.

    ``spans(row, generator)`` gives (uint8 face frames (16, 3, 224, 224), fbank):
    the test-time frames when ``generator`` is None, else the train-time draw.
    """

    def __init__(self, spans: dict[int, SpanFaces]) -> None:
        self.spans = spans
        self._videos: OrderedDict[Path, Video] = OrderedDict()

    def __len__(self) -> int:
        return len(self.spans)

    def __getitem__(self, line: int) -> SpanFaces:
        return self.spans[line]

    def __getstate__(self) -> dict:
        return {"spans": self.spans}  # open videos stay in their process

    def __setstate__(self, state: dict) -> None:
        self.__init__(state["spans"])

    def frame_indices(self, clip: VideoSpanClip, generator: torch.Generator | None) -> list[int]:
        """The 16 frames an item uses: test-time, or a random one from each of 16 equal parts."""
        span = self.spans[clip.line]
        if generator is None:
            return list(span.test_frames)
        return [
            int(span.frames[i]) for i in augment.train_frame_indices(len(span.frames), generator)
        ]

    def _video(self, path: Path) -> Video:
        video = self._videos.pop(path, None)
        if video is None:
            video = open_video(path)
        self._videos[path] = video
        while len(self._videos) > OPEN_VIDEOS:
            self._videos.popitem(last=False)[1].close()
        return video

    def __call__(
        self, clip: VideoSpanClip, generator: torch.Generator | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        span = self.spans[clip.line]
        indices = self.frame_indices(clip, generator)
        try:
            frames = self._video(span.video).frames(indices)
        except (MediaError, IndexError) as error:
            raise DataError(f"line {clip.line}: {span.video}: {error}") from error
        boxes = span.boxes[np.searchsorted(span.frames, indices)]
        return crop_faces(list(frames), boxes), span.fbank


def _cache_file(cache: Path, clip: VideoSpanClip, settings: ClipSettings, backend: str) -> Path:
    """Where a span's faces are kept: named by the video's content, the span and the settings."""
    key = json.dumps(
        {
            "video": video_id(clip.video),
            "span": [clip.start_s, clip.end_s],
            "settings": dataclasses.asdict(settings),
            "detector": backend,
        },
        sort_keys=True,
        default=str,
    )
    return cache / f"{hashlib.sha256(key.encode()).hexdigest()[:32]}.npz"


def _load_span(path: Path, video: Path) -> SpanFaces | None:
    """A cached span (plain arrays, never pickles), or None when absent or unreadable."""
    try:
        with np.load(path, allow_pickle=False) as data:
            return SpanFaces(
                video=video,
                frames=data["frames"],
                boxes=data["boxes"],
                test_frames=tuple(int(i) for i in data["test_frames"]),
                fbank=torch.from_numpy(data["fbank"]),
            )
    except (OSError, KeyError, ValueError):
        return None


def _save_span(path: Path, span: SpanFaces) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with tmp.open("wb") as f:
        np.savez(
            f,
            frames=span.frames,
            boxes=span.boxes,
            test_frames=np.asarray(span.test_frames, np.int64),
            fbank=span.fbank.numpy(),
        )
    os.replace(tmp, path)


def extract_span_clips(
    clips: Sequence[VideoSpanClip],
    settings: ClipSettings | None = None,
    progress: Callable[[int, int], None] | None = None,
    cache: Path | None = None,
) -> SpanClips:
    """Run the face stage on every row; the result loads each row's clip and fbank.

    With ``cache``, each row's faces are kept there (one small file per span), so a
    resumed or repeated run skips the face stage for spans whose video is unchanged.
    """
    settings = settings or ClipSettings()
    detector = create_detector(settings.detector, settings.face_models, settings.face_threshold)
    spans: dict[int, SpanFaces] = {}
    errors = []
    for done, clip in enumerate(clips, start=1):
        try:
            stored = cache and _cache_file(cache, clip, settings, detector.name)
            span = stored and _load_span(stored, Path(clip.video))
            if span is None:
                span = _span_faces(clip, detector, settings)
                if stored:
                    _save_span(stored, span)
            spans[clip.line] = span
        except (ValueError, MediaError, OSError) as error:
            errors.append(f"line {clip.line}: {error}")
        if progress is not None:
            progress(done, len(clips))
    if errors:
        raise DataError(f"{counted(len(errors), 'bad video row')}:\n  " + "\n  ".join(errors))
    return SpanClips(spans)
