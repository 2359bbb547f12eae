"""The videos of a run as their plans and chunks come back: rows, stitching, counters, events.

Every engine reports the same things (a video planned, a chunk done, a video
failed) to ``Videos``, which keeps each video's rows until all its chunks are
in, gives its tracks video-wide ids (``stitch``) and hands out the finished
video, so a video's result does not depend on the engine or the chunk size.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mmadfer_cli.run.chunk import ChunkOutput, Plan
from mmadfer_cli.run.clips import TrackLog
from mmadfer_cli.run.errors import Failure
from mmadfer_cli.run.rows import error_row
from mmadfer_cli.run.stitch import stitch


@dataclass(frozen=True)
class VideoTask:
    """One input video: ``video`` is the path as given (the ``video`` column)."""

    index: int
    video: str
    path: Path


@dataclass
class VideoResult:
    """A finished video: its rows, or the reason it failed (then ``rows`` is one error row)."""

    task: VideoTask
    video_id: str | None
    rows: list[dict[str, Any]]
    error: str | None
    segments: int
    tracks: int
    clips: int
    exception: BaseException | None = None  # an unexpected error, kept for --debug
    damaged: list[tuple[float, float, str]] = field(default_factory=list)
    """Segments that could not be read (start, end, why); the video's other rows are normal."""


@dataclass
class PipelineStats:
    """Counters and stage timings of a run (seconds; ``produce_s`` summed over workers)."""

    videos: int = 0
    errors: int = 0
    chunks: int = 0
    segments: int = 0
    clips: int = 0
    batches: int = 0
    produce_s: float = 0.0
    model_s: float = 0.0
    wall_s: float = 0.0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def add_produce(self, seconds: float) -> None:
        with self._lock:
            self.produce_s += seconds


class PipelineEvents:
    """Progress hooks, called in the engine's consuming thread. The default does nothing."""

    def video_started(self, task: VideoTask) -> None:
        """A worker began this video."""

    def segments_done(self, task: VideoTask, count: int) -> None:
        """``count`` more segments of this video have their rows."""


@dataclass
class VideoState:
    """A video being annotated: its rows so far (with their chunk), chunk logs and counters."""

    task: VideoTask
    video_id: str | None = None
    rows: list[tuple[int, dict[str, Any]]] = field(default_factory=list)  # (chunk, row)
    segments: int = 0
    clips: int = 0
    chunks: int | None = None  # known once the video is planned
    logs: dict[int, TrackLog] = field(default_factory=dict)  # finished chunks
    error: str | None = None
    exception: BaseException | None = None
    damaged: list[tuple[float, float, str]] = field(default_factory=list)

    @property
    def finished(self) -> bool:
        return self.error is not None or (self.chunks is not None and len(self.logs) == self.chunks)

    def result(self) -> VideoResult:
        if self.error is not None:
            rows = [error_row(self.task.video, self.video_id, self.error)]
            return VideoResult(self.task, self.video_id, rows, self.error, 0, 0, 0, self.exception)
        if (self.chunks or 0) > 1:  # one chunk: its tracker was the whole video's
            maps = stitch([self.logs[k] for k in range(self.chunks or 0)])
            for chunk, row in self.rows:
                if row.get("track_id") is not None:
                    row["track_id"] = maps[chunk][row["track_id"]]
        rows = sorted(
            (r for _, r in self.rows), key=lambda r: (r["segment"], r.get("track_id") or -1)
        )
        tracks = len({r["track_id"] for r in rows if r["status"] == "ok"})
        return VideoResult(
            self.task,
            self.video_id,
            rows,
            None,
            self.segments,
            tracks,
            self.clips,
            damaged=sorted(self.damaged),
        )


class Videos:
    """The run's unfinished videos; engines report plans, chunks and failures here."""

    def __init__(
        self, tasks: Sequence[VideoTask], events: PipelineEvents, stats: PipelineStats
    ) -> None:
        self.events, self.stats = events, stats
        self._state = {task.index: VideoState(task) for task in tasks}

    def __bool__(self) -> bool:
        return bool(self._state)

    def wanted(self, index: int) -> VideoState | None:
        """The video, while its chunks are still of use (not finished, not failed)."""
        video = self._state.get(index)
        return video if video is not None and video.error is None else None

    def started(self, index: int, video_id: str | None) -> None:
        video = self._state[index]
        video.video_id = video_id
        self.events.video_started(video.task)

    def planned(self, index: int, plan: Plan) -> int:
        """A video opened: how many chunks to run (0 when it failed)."""
        video = self._state[index]
        if video.video_id is None:
            self.started(index, plan.video_id)
        if plan.failure is not None:
            self.failed(index, plan.failure)
            return 0
        video.chunks = plan.chunks
        return plan.chunks

    def chunk_done(self, index: int, k: int, out: ChunkOutput) -> None:
        video = self.wanted(index)
        if video is None:
            return
        if out.failure is not None:
            self.failed(index, out.failure)
            return
        video.rows += [(k, row) for row in out.rows]
        video.logs[k] = out.log
        video.segments += out.segments
        video.clips += out.clips
        video.damaged += out.damaged
        self.stats.chunks += 1
        self.stats.segments += out.segments
        self.stats.clips += out.clips
        self.stats.add_produce(out.produce_s)
        self.events.segments_done(video.task, out.segments)

    def failed(self, index: int, failure: Failure) -> None:
        video = self.wanted(index)
        if video is not None:
            video.error, video.exception = failure.message, failure.exception

    def finished(self, indices: Sequence[int] | None = None) -> Iterator[VideoResult]:
        """The videos (of ``indices``, or any) that are done, each once."""
        for index in list(self._state if indices is None else indices):
            video = self._state.get(index)
            if video is not None and video.finished:
                result = self._state.pop(index).result()
                self.stats.videos += 1
                self.stats.errors += result.error is not None
                yield result
