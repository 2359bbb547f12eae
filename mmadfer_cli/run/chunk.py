"""One chunk of one video, from file to rows: the function every engine schedules.

A chunk is a run of consecutive segments (``--chunk`` seconds). ``run_chunk``
decodes it, finds, tracks and crops the faces and computes the filterbank (the
``ClipSource``), hands each segment's face clips to a ``Predictor`` (the model
behind a batching queue: a thread here, a service actor on Ray) without waiting
(``submit_chunk``), and makes the rows once the probabilities are back
(``SubmittedChunk.finish``; the local engine's workers leave that to a thread of
their own and go on to their next chunk). A video that cannot be read
or a stage that fails becomes a ``Failure``; only the predictor failing (the
model) is an error of the whole run. Engines differ in where this runs, never in
what it does.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch

from mmadfer_cli.faces import FaceDetector
from mmadfer_cli.run.clips import ClipSettings, HeldVideo, SegmentClips, TrackLog, count_chunks
from mmadfer_cli.run.errors import Failure, failure
from mmadfer_cli.run.rows import segment_rows


@dataclass
class ChunkJob:
    """Chunk ``index`` of ``count`` of a video, and the track log its source fills."""

    index: int
    count: int
    log: TrackLog = field(default_factory=TrackLog)


ClipSource = Callable[[Path, ChunkJob], Iterable[SegmentClips]]
"""The media stage chain for one chunk of a video: its segments with face clips and filterbank,
streamed; it fills the job's ``log`` for stitching track ids."""

Pending = Callable[[], np.ndarray]
"""Waits for a request's probabilities (B, classes)."""


class Predictor(Protocol):
    """The model behind a queue: clips go in at once, their probabilities come back later."""

    def submit(self, clips: Sequence[torch.Tensor], fbanks: Sequence[torch.Tensor]) -> Pending:
        """Queue uint8 clips (16, 3, 224, 224) with their fbanks (512, 128)."""
        ...


class PredictorError(Exception):
    """The predictor (the model) failed: an error of the run, not of the video."""

    def __init__(self, cause: BaseException) -> None:
        super().__init__(str(cause))
        self.cause = cause


@dataclass
class Plan:
    """A planned video: its id and chunk count, or why it could not be opened."""

    video_id: str | None
    chunks: int
    failure: Failure | None = None


@dataclass
class ChunkOutput:
    """A chunk's rows (chunk-local track ids), its track log and counters, or why it failed."""

    rows: list[dict[str, Any]] = field(default_factory=list)
    log: TrackLog = field(default_factory=TrackLog)
    segments: int = 0
    clips: int = 0
    damaged: list[tuple[float, float, str]] = field(default_factory=list)
    produce_s: float = 0.0  # busy seconds of the media stages
    failure: Failure | None = None


def plan_video(
    path: Path,
    video_id: Callable[[Path], str],
    count_chunks: Callable[[Path], int],
    node: str | None = None,
) -> Plan:
    """Open a video: its id and how many chunks it has, or why it cannot be read."""
    vid = None
    try:
        vid = video_id(path)
        return Plan(vid, count_chunks(path))
    except Exception as exc:
        return Plan(vid, 0, failure(exc, node))


@dataclass
class SubmittedChunk:
    """A chunk whose segments are all made and handed to the predictor (or why it failed):
    ``finish`` waits for their probabilities and makes the rows."""

    out: ChunkOutput
    waiting: list[tuple[SegmentClips, Pending | None]] = field(default_factory=list)

    def finish(self, video: str, video_id: str | None, class_names: Sequence[str]) -> ChunkOutput:
        """The chunk's rows (``video``: the path as given). Raises ``PredictorError``."""
        for clips, pending in self.waiting:
            probs = _wait(pending) if pending is not None else _no_faces(clips, class_names)
            self.out.rows += segment_rows(video, video_id, clips, probs, class_names)
        self.waiting = []
        return self.out


def submit_chunk(
    source: ClipSource,
    path: Path,
    job: ChunkJob,
    predictor: Predictor,
    node: str | None = None,
    stopping: Callable[[], bool] = lambda: False,
) -> SubmittedChunk | None:
    """Chunk ``job`` of the video at ``path`` made and handed to ``predictor`` without waiting
    for it, or its failure. None when ``stopping`` said so between segments. Raises
    ``PredictorError``."""
    chunk = SubmittedChunk(ChunkOutput(log=job.log))
    out = chunk.out
    try:
        segments = iter(source(path, job))
        try:
            while not stopping():
                t0 = time.perf_counter()
                clips = next(segments, None)
                out.produce_s += time.perf_counter() - t0
                if clips is None:
                    return chunk
                out.segments += 1
                out.clips += len(clips.faces)
                if clips.error is not None:
                    segment = clips.segment
                    out.damaged.append((float(segment.start_s), float(segment.end_s), clips.error))
                chunk.waiting.append((_without_pixels(clips), _submit(predictor, clips)))
            return None
        finally:
            close_segments(segments)
    except PredictorError:
        raise
    except Exception as exc:
        return SubmittedChunk(ChunkOutput(failure=failure(exc, node)))


def run_chunk(
    source: ClipSource,
    path: Path,
    video: str,
    video_id: str | None,
    job: ChunkJob,
    predictor: Predictor,
    class_names: Sequence[str],
    node: str | None = None,
    stopping: Callable[[], bool] = lambda: False,
) -> ChunkOutput | None:
    """Chunk ``job`` of the video at ``path`` (``video``: the path as given): its rows, or a
    failure. None when ``stopping`` said so between segments. Raises ``PredictorError``."""
    chunk = submit_chunk(source, path, job, predictor, node, stopping)
    return chunk.finish(video, video_id, class_names) if chunk is not None else None


def close_segments(segments: Iterable[SegmentClips]) -> None:
    """Close a source's segment iterator (a generator holding an open video), if it has a
    ``close``: a chunk, or a wrapper around a source, that stops early lets the video go."""
    close = getattr(segments, "close", None)
    if close is not None:
        close()


def _submit(predictor: Predictor, clips: SegmentClips) -> Pending | None:
    if not clips.faces:
        return None
    faces = [f.clip for f in clips.faces]
    try:
        return predictor.submit(faces, [clips.fbank] * len(faces))
    except Exception as exc:
        raise PredictorError(exc) from exc


def _wait(pending: Pending) -> np.ndarray:
    try:
        return pending()
    except Exception as exc:
        raise PredictorError(exc) from exc


def _no_faces(clips: SegmentClips, class_names: Sequence[str]) -> np.ndarray:
    return np.zeros((len(clips.faces), len(class_names)), np.float32)


def _without_pixels(clips: SegmentClips) -> SegmentClips:
    """A segment kept until its predictions come back: its face crops are no longer needed."""
    faces = [dataclasses.replace(f, clip=torch.empty(0, dtype=torch.uint8)) for f in clips.faces]
    return dataclasses.replace(clips, faces=faces)


def media_source(
    settings: ClipSettings, make_detector: Callable[[], FaceDetector], chunk_s: float = 0.0
) -> tuple[Callable[[], ClipSource], Callable[[Path], int]]:
    """The real media stage chain (each worker that opens it gets a face detector from
    ``make_detector``), and the chunk count of a video for ``chunk_s``-second chunks."""

    def open_source() -> ClipSource:
        detector = make_detector()
        held = HeldVideo()

        def source(path: Path, job: ChunkJob) -> Iterable[SegmentClips]:
            return held.segments(path, settings, detector, chunk_s, job.index, job.log)

        return source

    return open_source, lambda path: count_chunks(path, settings, chunk_s)
