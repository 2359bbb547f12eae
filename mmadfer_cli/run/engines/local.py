"""The streaming annotate loop: producers -> batches -> model -> rows per video.

Worker threads run the media stage chain (decode, faces, crops, filterbanks)
on chunks of videos (consecutive segments, ``--chunk`` seconds): the worker
that opens a video plans its chunks and puts them at the front of the work
queue, so that every worker helps with a long video. Segments go on a bounded
queue. The calling thread takes clips from the queue, batches them across
segments, tracks, chunks and videos, runs the model (a partial batch only once
its oldest clip has waited ``flush_after_s``, or when no more work is coming),
turns probabilities into rows as soon as a segment is complete (dropping its
pixels), and, once all of a video's chunks are done, gives its tracks
video-wide ids (``stitch``) and yields its rows. Memory is bounded by the queue
size, the batch size and the workers, whatever the length or number of videos.

The stages are plain callables (``Stages``), injected so that tests can fake
them and a distributed engine can run the same functions elsewhere.
"""

from __future__ import annotations

import collections
import contextlib
import os
import queue
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from mmadfer_cli.faces import FaceDetector
from mmadfer_cli.media.discover import path_text
from mmadfer_cli.media.video import MediaError
from mmadfer_cli.model.inference import Precision, predict_proba
from mmadfer_cli.run.clips import ClipSettings, HeldVideo, TrackLog, count_chunks
from mmadfer_cli.run.stitch import stitch
from mmadfer_cli.table.sinks import error_row, segment_rows

if TYPE_CHECKING:
    from mmadfer_cli.run.clips import SegmentClips

ClipSource = Callable[[Path, "ChunkJob"], Iterable["SegmentClips"]]
"""The media stage chain for one chunk of a video: its segments with face clips and filterbank,
streamed; it fills the job's ``log`` for stitching track ids."""

Predict = Callable[[Sequence[torch.Tensor], Sequence[torch.Tensor]], np.ndarray]
"""The model stage: uint8 clips (16, 3, 224, 224) and fbanks (512, 128) -> probabilities (B, classes)."""


@dataclass(frozen=True)
class Stages:
    """The pipeline's stage functions.

    ``open_source`` is called once in each worker thread, so that every worker
    owns its decoder and face detector.
    """

    open_source: Callable[[], ClipSource]
    video_id: Callable[[Path], str]
    predict: Predict
    chunks: Callable[[Path], int] = lambda path: 1
    """How many chunks a video is cut into (opens it; raises for an unreadable file)."""


@dataclass
class ChunkJob:
    """Chunk ``index`` of ``count`` of a video, and the track log its source fills."""

    index: int
    count: int
    log: TrackLog = field(default_factory=TrackLog)


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
    """Progress hooks, called in the consuming thread. The default does nothing."""

    def video_started(self, task: VideoTask) -> None:
        """A worker began this video."""

    def segments_done(self, task: VideoTask, count: int) -> None:
        """``count`` more segments of this video have their rows."""


# Where an unexpected error happened, by the innermost module of ours it passed through.
_STAGES = (
    ("mmadfer_cli.media.video", "decoding"),
    ("mmadfer_cli.media.segments", "segment planning"),
    ("mmadfer_cli.faces.tracking", "face tracking"),
    ("mmadfer_cli.faces.crops", "face crops"),
    ("mmadfer_cli.faces.embedding", "face embeddings"),
    ("mmadfer_cli.run.stitch", "track stitching"),
    ("mmadfer_cli.faces", "face detection"),
    ("mmadfer_cli.media.fbank", "audio filterbank"),
    ("mmadfer_cli.model", "model"),
)


def expected(exc: BaseException) -> bool:
    """Whether an error is a known way for input to be unusable (no traceback is of use)."""
    return isinstance(exc, (MediaError, OSError))


def failing_stage(exc: BaseException, default: str = "media stages") -> str:
    """The stage an unexpected error came from, for a one-line report."""
    modules = []
    tb = exc.__traceback__
    while tb is not None:
        modules.append(str(tb.tb_frame.f_globals.get("__name__", "")))
        tb = tb.tb_next
    for module in reversed(modules):
        for prefix, stage in _STAGES:
            if module == prefix or module.startswith(prefix + "."):
                return stage
    return default


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return path_text(text.splitlines()[0]) if text else ""


def _named(exc: BaseException) -> str:
    """``Type: first line`` of an unexpected error (the type alone when it has no message)."""
    text = _first_line(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def error_message(exc: BaseException) -> str:
    """A one-line reason for an error row: the message alone for expected media errors; for an
    unexpected error, the stage it came from and the error."""
    if expected(exc):
        return _first_line(exc) or type(exc).__name__
    return f"internal error in {failing_stage(exc)}: {_named(exc)}"


class PipelineError(Exception):
    """An unexpected error that stops the run (the model failed, a worker could not start)."""

    def __init__(self, stage: str, videos: Sequence[str], cause: BaseException) -> None:
        where = f" while annotating {', '.join(videos)}" if videos else ""
        super().__init__(f"internal error in {stage}{where}: {_named(cause)}")
        self.cause = cause


# Items put on the queue by producers.
@dataclass
class _Start:
    index: int
    video_id: str


@dataclass
class _Planned:
    index: int
    chunks: int


@dataclass
class _Segment:
    index: int
    chunk: int
    clips: SegmentClips


@dataclass
class _End:
    index: int
    chunk: int
    log: TrackLog


@dataclass
class _Failed:
    index: int
    message: str
    exception: BaseException | None  # an unexpected error (None for an expected one)


@dataclass
class _WorkerExit:
    fatal: BaseException | None = None


def _put(out: queue.Queue, item: object, stop: threading.Event) -> bool:
    """Put ``item``, waiting for room unless the run is stopping; False when it stopped."""
    while not stop.is_set():
        try:
            out.put(item, timeout=0.1)
            return True
        except queue.Full:
            continue
    return False


class _WorkQueue:
    """Videos to open and chunks to run; a video's chunks jump the queue, so that the workers
    finish a video together before starting new ones (its rows become durable sooner)."""

    def __init__(self, videos: Iterable[VideoTask]) -> None:
        self._items: collections.deque[tuple[VideoTask, int | None, int]] = collections.deque(
            (task, None, 0) for task in videos
        )
        self._changed = threading.Condition()
        self._opening = 0  # workers planning a video: its chunks may still come
        self.failed: set[int] = set()  # videos whose other chunks are skipped

    def take(self, stop: threading.Event) -> tuple[VideoTask, int | None, int] | None:
        """The next item; None once there is none and none can come (or the run stops)."""
        with self._changed:
            while not self._items and self._opening and not stop.is_set():
                self._changed.wait(0.1)
            if not self._items or stop.is_set():
                return None
            item = self._items.popleft()
            if item[1] is None:
                self._opening += 1
            return item

    def planned(self, task: VideoTask, count: int) -> None:
        """A video is planned (``count`` chunks; 0 when it could not be): its other chunks go
        first in the queue."""
        with self._changed:
            self._opening -= 1
            if count:
                self._items.extendleft((task, k, count) for k in range(count - 1, 0, -1))
            self._changed.notify_all()


def _run_chunk(
    task: VideoTask,
    job: ChunkJob,
    source: ClipSource,
    out: queue.Queue,
    stop: threading.Event,
    stats: PipelineStats,
) -> bool:
    """Stream one chunk's segments, then its end; False when the run stopped meanwhile."""
    segments = iter(source(task.path, job))
    try:
        while True:
            t0 = time.perf_counter()
            clips = next(segments, None)
            stats.add_produce(time.perf_counter() - t0)
            if clips is None:
                break
            if not _put(out, _Segment(task.index, job.index, clips), stop):
                return False
    finally:
        close = getattr(segments, "close", None)
        if close is not None:
            close()
    return _put(out, _End(task.index, job.index, job.log), stop)


def produce(
    work: _WorkQueue,
    out: queue.Queue,
    stages: Stages,
    stop: threading.Event,
    stats: PipelineStats,
    threads: int | None = None,
) -> None:
    """Worker loop: open videos (planning their chunks) and run chunks, streaming to ``out``."""
    try:
        if threads is not None:
            use_threads(threads)
        source = stages.open_source()
    except BaseException as exc:
        _put(out, _WorkerExit(fatal=exc), stop)
        return
    while not stop.is_set():
        item = work.take(stop)
        if item is None:
            break
        task, chunk, count = item
        if task.index in work.failed:
            continue
        try:
            if chunk is None:
                try:
                    if not _put(out, _Start(task.index, stages.video_id(task.path)), stop):
                        break
                    count = stages.chunks(task.path)
                finally:
                    work.planned(task, count)
                if not _put(out, _Planned(task.index, count), stop):
                    break
                chunk = 0
            if not _run_chunk(task, ChunkJob(chunk, count), source, out, stop, stats):
                break
        except Exception as exc:
            work.failed.add(task.index)
            failed = _Failed(task.index, error_message(exc), None if expected(exc) else exc)
            if not _put(out, failed, stop):
                break
    _put(out, _WorkerExit(), stop)


@dataclass
class _Pending:
    """A segment waiting for predictions of its faces."""

    clips: SegmentClips | None
    probs: np.ndarray
    missing: int
    chunk: int


@dataclass
class VideoState:
    """A video being annotated: its rows so far (with their chunk), chunk logs and counters;
    ``result`` stitches the chunks' track ids once all are done (any engine)."""

    task: VideoTask
    video_id: str | None = None
    rows: list[tuple[int, dict[str, Any]]] = field(default_factory=list)  # (chunk, row)
    pending: int = 0  # segments whose faces are not all predicted yet
    segments: int = 0
    clips: int = 0
    chunks: int | None = None  # known once the video is planned
    logs: dict[int, TrackLog] = field(default_factory=dict)  # ended chunks
    error: str | None = None
    exception: BaseException | None = None
    damaged: list[tuple[float, float, str]] = field(default_factory=list)

    @property
    def finished(self) -> bool:
        ended = self.chunks is not None and len(self.logs) == self.chunks
        return self.error is not None or (ended and self.pending == 0)

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


class _Batcher:
    """Collects face clips across segments and videos, runs the model when asked."""

    def __init__(
        self,
        predict: Predict,
        class_names: Sequence[str],
        stats: PipelineStats,
        events: PipelineEvents,
    ) -> None:
        self.predict, self.class_names, self.stats, self.events = (
            predict,
            tuple(class_names),
            stats,
            events,
        )
        self.items: list[tuple[VideoState, _Pending, int]] = []
        self.oldest = 0.0  # when the oldest queued clip arrived

    def __len__(self) -> int:
        return len(self.items)

    def add(self, video: VideoState, chunk: int, clips: SegmentClips) -> None:
        """Queue a segment's faces (a face-less segment is complete at once)."""
        n = len(clips.faces)
        pending = _Pending(clips, np.zeros((n, len(self.class_names)), np.float32), n, chunk)
        if not self.items:
            self.oldest = time.perf_counter()
        video.segments += 1
        video.clips += n
        if clips.error is not None:
            segment = clips.segment
            video.damaged.append((float(segment.start_s), float(segment.end_s), clips.error))
        if n == 0:
            self._complete(video, pending)
            return
        video.pending += 1
        self.items += [(video, pending, i) for i in range(n)]

    def _complete(self, video: VideoState, pending: _Pending) -> None:
        assert pending.clips is not None
        if video.error is None:
            rows = segment_rows(
                video.task.video, video.video_id, pending.clips, pending.probs, self.class_names
            )
            video.rows += [(pending.chunk, row) for row in rows]
        pending.clips = None  # drop the pixels as soon as the rows exist
        self.stats.segments += 1
        self.events.segments_done(video.task, 1)

    def flush(self, limit: int) -> set[int]:
        """Run the model on up to ``limit`` queued clips; the videos that had clips in the batch."""
        batch, self.items = self.items[:limit], self.items[limit:]
        if not batch:
            return set()
        self.oldest = time.perf_counter()
        t0 = time.perf_counter()
        clips = [p.clips.faces[i].clip for _, p, i in batch]  # type: ignore[union-attr]
        fbanks = [p.clips.fbank for _, p, _ in batch]  # type: ignore[union-attr]
        try:
            probs = self.predict(clips, fbanks)
        except Exception as exc:
            videos = sorted({video.task.video for video, _, _ in batch})
            raise PipelineError("the model", videos, exc) from exc
        self.stats.model_s += time.perf_counter() - t0
        self.stats.batches += 1
        self.stats.clips += len(batch)
        for (video, pending, i), p in zip(batch, probs, strict=True):
            pending.probs[i] = p
            pending.missing -= 1
            if pending.missing == 0:
                video.pending -= 1
                self._complete(video, pending)
        return {video.task.index for video, _, _ in batch}


def run_pipeline(
    videos: Sequence[VideoTask],
    stages: Stages,
    class_names: Sequence[str],
    *,
    batch_size: int = 8,
    workers: int = 2,
    queue_size: int | None = None,
    flush_after_s: float = 2.0,
    events: PipelineEvents | None = None,
    stats: PipelineStats | None = None,
    threads_per_worker: int | None = None,
) -> Iterator[VideoResult]:
    """Run every video through the stages; yield each video as soon as it is finished.

    Videos come out in the order they finish, so a long video never holds back
    the results (and their durability) of short ones done meanwhile. A video that
    fails in the media stages gives one error result and the run goes on. The
    model runs on full batches; a partial one once its oldest clip has waited
    ``flush_after_s`` or no worker is left. Each worker sets its own ``threads_per_worker``
    PyTorch threads (see ``worker_threads``). Closing the generator (or Ctrl-C in
    the caller) stops the workers and waits for each to finish its current segment.
    """
    if batch_size < 1 or workers < 1:
        raise ValueError("batch_size and workers must be at least 1")
    events = events or PipelineEvents()
    stats = stats if stats is not None else PipelineStats()
    started = time.perf_counter()
    work = _WorkQueue(videos)
    out: queue.Queue = queue.Queue(maxsize=queue_size or 2 * workers + 2)
    stop = threading.Event()
    threads = [
        threading.Thread(
            target=produce,
            args=(work, out, stages, stop, stats, threads_per_worker),
            daemon=True,
            name=f"mmadfer-{i}",
        )
        for i in range(workers)
    ]
    for thread in threads:
        thread.start()
    state = {task.index: VideoState(task) for task in videos}  # videos not yet yielded
    touched: set[int] = set()  # videos whose state changed since the last check
    batcher = _Batcher(stages.predict, class_names, stats, events)
    alive = len(threads)
    try:
        while state:
            for index in sorted(touched):
                if index in state and state[index].finished:
                    result = state.pop(index).result()
                    stats.videos += 1
                    stats.errors += result.error is not None
                    yield result
            touched.clear()
            if not state:
                break
            if len(batcher) >= batch_size:
                touched |= batcher.flush(batch_size)
                continue
            waited = time.perf_counter() - batcher.oldest
            if len(batcher) and (alive == 0 or waited >= flush_after_s):
                touched |= batcher.flush(batch_size)  # no fuller batch is coming soon enough
                continue
            try:
                timeout = max(flush_after_s - waited, 0.001) if len(batcher) else None
                item = out.get(timeout=timeout) if alive else out.get_nowait()
            except queue.Empty:
                if alive == 0 and not len(batcher):
                    raise RuntimeError("pipeline workers exited with videos unfinished") from None
                continue
            if isinstance(item, _WorkerExit):
                alive -= 1
                if item.fatal is not None:
                    stage = failing_stage(item.fatal, "worker start-up")
                    raise PipelineError(stage, [], item.fatal) from item.fatal
                continue
            video = state[item.index]
            touched.add(item.index)
            if isinstance(item, _Start):
                video.video_id = item.video_id
                events.video_started(video.task)
            elif isinstance(item, _Planned):
                video.chunks = item.chunks
            elif isinstance(item, _Segment):
                batcher.add(video, item.chunk, item.clips)
            elif isinstance(item, _End):
                video.logs[item.chunk] = item.log
                stats.chunks += 1
            elif isinstance(item, _Failed):
                video.error, video.exception = item.message, item.exception
    finally:
        stats.wall_s = time.perf_counter() - started
        # Let every worker finish its current segment and close its video: native decoder
        # threads must not be torn down by interpreter exit (that aborts the process).
        stop.set()
        with contextlib.suppress(queue.Empty):
            while True:
                out.get_nowait()
        for thread in threads:
            thread.join()


def default_workers(device: torch.device) -> int:
    """One worker per CPU core, at most 8 (16 feeding a GPU, where decoding is the limit)."""
    return max(1, min(os.cpu_count() or 1, 16 if device.type == "cuda" else 8))


def worker_threads(workers: int, device: torch.device) -> int | None:
    """On the CPU, PyTorch threads for each worker, so that the workers together fill the cores
    without oversubscribing them (each thread's OpenMP team would otherwise spin on all);
    the model's thread keeps every core for the times the workers wait on it. None: leave as is."""
    if device.type != "cpu":
        return None
    return max(1, (os.cpu_count() or 1) // max(1, workers))


def use_threads(count: int) -> None:
    """Set the calling thread's own PyTorch thread count (OpenMP's is per thread). Reading the
    count first initialises this thread, which would otherwise later adopt another thread's."""
    torch.get_num_threads()
    torch.set_num_threads(count)


def model_predictor(
    model: torch.nn.Module,
    device: torch.device,
    precision: Precision = "float32",
    pad_to: int | None = None,
) -> Predict:
    """The model stage over a batch of clips: see ``predict_proba`` for how uint8 clips reach the
    device and which precision modes exist. ``pad_to``: a smaller batch is padded with blank
    clips to this size (for a model compiled for one batch shape) and their rows dropped."""

    def predict(clips: Sequence[torch.Tensor], fbanks: Sequence[torch.Tensor]) -> np.ndarray:
        images = torch.stack(list(clips))
        audio = torch.stack(list(fbanks)).unsqueeze(1)
        n = len(images)
        if pad_to is not None and n < pad_to:
            images, audio = (
                torch.cat([t, t.new_zeros((pad_to - n, *t.shape[1:]))]) for t in (images, audio)
            )
        return predict_proba(model, images, audio, device, precision)[:n].numpy()

    return predict


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
