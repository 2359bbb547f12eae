"""The local engine: worker threads run chunks; the model batches their clips in one thread.

Each worker opens videos (planning their chunks, which go to the front of the
work queue so that every worker helps with a long video) and runs chunks with
``chunk.submit_chunk``, leaving their rows to a thread of its own (``_Finisher``).
Their face clips meet in one ``Batched`` model queue, which runs the model on
everything waiting, up to ``--batch-size`` clips, in its own thread; the queue
holds a bounded number of clips, so memory does not grow with the length or
number of videos. The calling thread collects plans and chunk outputs into
``Videos`` and yields each video once all its chunks are in.
"""

from __future__ import annotations

import collections
import contextlib
import os
import queue
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from mmadfer_cli.run.batching import Batched, BatchedClosed
from mmadfer_cli.run.chunk import (
    ChunkJob,
    ChunkOutput,
    ClipSource,
    Plan,
    PredictorError,
    SubmittedChunk,
    plan_video,
    submit_chunk,
)
from mmadfer_cli.run.core_turns import CoreTurns
from mmadfer_cli.run.errors import PipelineError, failing_stage
from mmadfer_cli.run.thread_pools import release_thread_pool
from mmadfer_cli.run.videos import PipelineEvents, PipelineStats, VideoResult, Videos, VideoTask

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
class _Planned:
    index: int
    plan: Plan


@dataclass
class _ChunkDone:
    index: int
    chunk: int
    out: ChunkOutput


@dataclass
class _WorkerExit:
    fatal: BaseException | None = None
    stage: str = "worker start-up"
    videos: tuple[str, ...] = ()


def _model_exit(exc: PredictorError, video: str) -> _WorkerExit | None:
    """How a worker ends when the model failed while it handed on or waited for ``video``'s
    clips; None when the model's queue closed (the run is ending: nothing to report)."""
    if isinstance(exc.cause, BatchedClosed):
        return None
    return _WorkerExit(exc.cause, "the model", (video,))


def _put(out: queue.Queue, item: object, stop: threading.Event) -> bool:
    """Put ``item``, waiting for room unless the run is stopping; False when it stopped."""
    while not stop.is_set():
        try:
            out.put(item, timeout=0.1)
            return True
        except queue.Full:
            continue
    return False


@dataclass(frozen=True)
class _Work:
    """A video to open (``chunk`` None), or chunk ``chunk`` of ``count`` of a planned video."""

    task: VideoTask
    chunk: int | None = None
    count: int = 0
    video_id: str | None = None


class _WorkQueue:
    """Videos to open and chunks to run; a video's chunks jump the queue, so that the workers
    finish a video together before starting new ones (its rows become durable sooner)."""

    def __init__(self, videos: Iterable[VideoTask]) -> None:
        self._items: collections.deque[_Work] = collections.deque(_Work(task) for task in videos)
        self._changed = threading.Condition()
        self._opening = 0  # workers planning a video: its chunks may still come
        self._closed = False
        self.failed: set[int] = set()  # videos whose other chunks are skipped

    def take(self, stop: threading.Event) -> _Work | None:
        """The next item; None once there is none and none can come (or the run stops)."""
        with self._changed:
            while not self._items and self._opening and not stop.is_set():
                self._changed.wait(0.1)
            if not self._items or stop.is_set() or self._closed:
                return None
            item = self._items.popleft()
            if item.chunk is None:
                self._opening += 1
            return item

    def close(self) -> None:
        """Hand out nothing more (the run is ending: workers finish what they hold)."""
        with self._changed:
            self._closed = True
            self._changed.notify_all()

    def planned(self, task: VideoTask, plan: Plan) -> None:
        """A video is planned (no chunks when it could not be): its chunks after the first (which
        its planner runs) go first in the queue."""
        with self._changed:
            self._opening -= 1
            self._items.extendleft(
                _Work(task, k, plan.chunks, plan.video_id) for k in range(plan.chunks - 1, 0, -1)
            )
            self._changed.notify_all()


class _ModelQueue:
    """The ``Predictor`` of the local engine: the model behind a ``Batched`` queue."""

    def __init__(
        self,
        predict: Predict,
        batch_size: int,
        max_clips: int,
        threads: int,
        turns: CoreTurns | None = None,
    ) -> None:
        def run(items: list[tuple[torch.Tensor, torch.Tensor]]) -> np.ndarray:
            if torch.get_num_threads() != threads:  # the serving thread's own count: all cores
                use_threads(threads)
            with turns.model() if turns is not None else contextlib.nullcontext():
                return predict([c for c, _ in items], [f for _, f in items])

        more_coming = turns.media_busy if turns is not None else None
        self.batched = Batched(run, batch_size, gather_s=0.05, name="mmadfer-model",
                               max_waiting=max_clips, more_coming=more_coming)  # fmt: skip

    def submit(
        self, clips: Sequence[torch.Tensor], fbanks: Sequence[torch.Tensor]
    ) -> Callable[[], np.ndarray]:
        pending = self.batched.submit(list(zip(clips, fbanks, strict=True)))
        return lambda: np.asarray(pending())


class _Finisher:
    """A worker's chunks waiting for their probabilities, finished (rows made and reported) in
    order in a thread of their own, so that the worker goes on to its next chunk at once: the
    model's batches fill up with the next video's clips (on the CPU the model waits for them
    while a worker is at work: ``CoreTurns.working``) and, on a GPU, the media stages do not
    stop at each video's end for the model's last batch."""

    def __init__(self, out: queue.Queue, stop: threading.Event, class_names: Sequence[str]) -> None:
        self._out, self._stop, self._class_names = out, stop, class_names
        self._chunks: queue.Queue = queue.Queue()
        self.failed: _WorkerExit | None = None  # the model failed: the worker reports this
        self.closed = False  # the model's queue closed: the run is ending
        self._thread = threading.Thread(target=self._run, daemon=True, name="mmadfer-rows")
        self._thread.start()

    @property
    def ok(self) -> bool:
        return self.failed is None and not self.closed

    def hand(
        self, task: VideoTask, chunk: int, video_id: str | None, submitted: SubmittedChunk
    ) -> None:
        self._chunks.put((task, chunk, video_id, submitted))

    def close(self) -> None:
        """Wait until every chunk handed on is finished (or the model failed)."""
        self._chunks.put(None)
        self._thread.join()

    def _run(self) -> None:
        while (job := self._chunks.get()) is not None:
            task, chunk, video_id, submitted = job
            if not self.ok:
                continue
            try:
                done = submitted.finish(task.video, video_id, self._class_names)
            except PredictorError as exc:
                self.failed = _model_exit(exc, task.video)
                self.closed = self.failed is None
                continue
            except Exception as exc:  # a bug in making rows: the run stops with it, not hangs
                self.failed = _WorkerExit(exc, "making rows", (task.video,))
                continue
            _put(self._out, _ChunkDone(task.index, chunk, done), self._stop)


def produce(
    work: _WorkQueue,
    out: queue.Queue,
    stages: Stages,
    model: _ModelQueue,
    class_names: Sequence[str],
    stop: threading.Event,
    threads: int | None = None,
    turns: CoreTurns | None = None,
) -> None:
    """Worker loop: open videos (planning their chunks) and run chunks, reporting to ``out``."""
    try:
        if threads is not None:
            use_threads(threads)
        source = stages.open_source()
        if turns is not None:
            source = turns.source(source)
    except BaseException as exc:
        _put(out, _WorkerExit(fatal=exc), stop)
        return
    finisher = _Finisher(out, stop, class_names)
    with turns.working() if turns is not None else contextlib.nullcontext():
        exit_now = _produce(work, out, stages, source, model, stop, finisher)
    model.batched.wake()  # a batch waiting for this worker's clips goes now
    finisher.close()  # once the model no longer waits for them
    if exit_now is not None:
        _put(out, exit_now, stop)
    elif finisher.failed is not None:
        _put(out, finisher.failed, stop)
    elif not finisher.closed:
        _put(out, _WorkerExit(), stop)


def _produce(
    work: _WorkQueue,
    out: queue.Queue,
    stages: Stages,
    source: ClipSource,
    model: _ModelQueue,
    stop: threading.Event,
    finisher: _Finisher,
) -> _WorkerExit | None:
    """``produce``'s work: the exit to report at once when the model failed at a hand-over."""

    def stopping() -> bool:
        return stop.is_set() or not finisher.ok

    while not stopping():
        item = work.take(stop)
        if item is None:
            break
        task = item.task
        if task.index in work.failed:
            continue
        if item.chunk is None:
            plan = Plan(None, 0)
            try:
                plan = plan_video(task.path, stages.video_id, stages.chunks)
                if not _put(out, _Planned(task.index, plan), stop):
                    break
            finally:
                work.planned(task, plan)
            if not plan.chunks:
                continue
            item = _Work(task, 0, plan.chunks, plan.video_id)
        try:
            done = submit_chunk(source, task.path, ChunkJob(item.chunk, item.count), model,
                                stopping=stopping)  # fmt: skip
        except PredictorError as exc:
            exit_now = _model_exit(exc, task.video)
            if exit_now is None:
                finisher.closed = True
            return exit_now
        if done is None:
            break
        if done.out.failure is not None:
            work.failed.add(task.index)
        finisher.hand(task, item.chunk, item.video_id, done)
    return None


def run_pipeline(
    videos: Sequence[VideoTask],
    stages: Stages,
    class_names: Sequence[str],
    *,
    batch_size: int = 8,
    workers: int = 2,
    queue_size: int | None = None,
    events: PipelineEvents | None = None,
    stats: PipelineStats | None = None,
    threads_per_worker: int | None = None,
) -> Iterator[VideoResult]:
    """Run every video through the stages; yield each video as soon as it is finished.

    Videos come out in the order they finish, so a long video never holds back
    the results (and their durability) of short ones done meanwhile. A video that
    fails in the media stages gives one error result and the run goes on. At most
    ``queue_size`` face clips (default: two batches and two per worker) wait for the model
    besides the batch it runs. Each worker sets its own ``threads_per_worker`` PyTorch threads
    (see ``worker_threads``); the model keeps the caller's, and then the two take turns at the
    cores (``CoreTurns``: on the CPU, running at once slows both). Closing the generator (or
    Ctrl-C in the caller) stops the workers and waits for each to finish its current segment.
    """
    if batch_size < 1 or workers < 1:
        raise ValueError("batch_size and workers must be at least 1")
    events = events or PipelineEvents()
    stats = stats if stats is not None else PipelineStats()
    started = time.perf_counter()
    work = _WorkQueue(videos)
    out: queue.Queue = queue.Queue()
    stop = threading.Event()
    waiting = queue_size or 2 * batch_size + 2 * workers
    turns = CoreTurns() if threads_per_worker is not None else None
    if turns is not None:
        release_thread_pool()  # the caller's, from loading the model: see thread_pools
    model = _ModelQueue(stages.predict, batch_size, waiting, torch.get_num_threads(), turns)
    threads = [
        threading.Thread(
            target=produce,
            args=(work, out, stages, model, class_names, stop, threads_per_worker, turns),
            daemon=True,
            name=f"mmadfer-{i}",
        )
        for i in range(workers)
    ]
    for thread in threads:
        thread.start()
    state = Videos(videos, events, stats)
    alive = len(threads)
    fatal: _WorkerExit | None = None
    try:
        while state and alive:
            try:
                item = out.get(timeout=0.1)
            except queue.Empty:
                continue
            if isinstance(item, _WorkerExit):
                alive -= 1
                if item.fatal is not None and fatal is None:
                    fatal = item  # the others finish their chunks first: finished work is kept
                    work.close()
                continue
            if isinstance(item, _Planned):
                state.planned(item.index, item.plan)
            else:
                state.chunk_done(item.index, item.chunk, item.out)
            yield from state.finished([item.index])
        if fatal is not None and fatal.fatal is not None:
            stage = fatal.stage if fatal.videos else failing_stage(fatal.fatal, fatal.stage)
            raise PipelineError(stage, fatal.videos, fatal.fatal) from fatal.fatal
        if state:
            raise RuntimeError("pipeline workers exited with videos unfinished")
    finally:
        model_stats = model.batched.stats
        stats.model_s, stats.batches = model_stats.busy_s, model_stats.calls
        if turns is not None:  # busy times included the waits for a turn
            stats.produce_s -= turns.media_wait_s
            stats.model_s -= turns.model_wait_s
        stats.wall_s = time.perf_counter() - started
        # Let every worker finish its current segment and close its video: native decoder
        # threads must not be torn down by interpreter exit (that aborts the process).
        stop.set()
        model.batched.close()
        with contextlib.suppress(queue.Empty):
            while True:
                out.get_nowait()
        for thread in threads:
            thread.join()


WORKERS_PER_CORE, MAX_WORKERS = 4, 64
"""The most workers worth their memory: each holds its own face detector and embedder (about
35 MiB on the CPU, measured) and a segment's frames (up to 0.5 GiB on 4K video, Memory in
docs/BENCHMARKS.md), and more than a few per core only wait for a core."""


def max_workers() -> int:
    """The most workers a run starts on this machine, whatever ``--workers`` asks."""
    return min(MAX_WORKERS, WORKERS_PER_CORE * (os.cpu_count() or 1))


def default_workers(device: torch.device) -> int:
    """Feeding a GPU one worker per CPU core, at most 16 with CUDA (decoding is the limit there)
    and 8 with a Mac's GPU. On the CPU one per two cores, at most 8, each with cores / workers
    threads (two up to 16 cores): the workers' media stages run between model batches
    (``CoreTurns``), and a lone video's segments come one at a time, so a worker of one thread
    would leave the other core idle in its turn (a 60-s video on 2 cores: 95 s against 105 s
    with two workers of one thread; a folder of short videos: the same)."""
    cores = os.cpu_count() or 1
    if device.type == "cpu":
        return max(1, min(cores // 2, 8))
    return max(1, min(cores, 16 if device.type == "cuda" else 8))


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
