"""On the CPU the model and the media stages take turns at the cores instead of sharing them.

PyTorch runs each operation on a team of threads that wait for one another at its end; a
media thread that takes a core from the model's team stalls the whole team at every
operation. Measured on 2 cores: a model batch and a face detector running at once took
17.8 s, one after the other 15.3 s, and 13.0 s with the detector on both cores in its turn;
a 60-s one-face video took 130 s sharing the cores, 105 s taking turns with two workers of
one thread and 95 s with one worker of two. A core each (the model cut to one thread while
media stages run) did no better: run at once, both slowed, the media stages by a fifth
(docs/BENCHMARKS.md). So a model batch runs alone on all cores, and the workers' media
stages (decoding, faces, filterbank: one segment at a time) run together between batches,
each with its own share of the cores. The model comes first: while it waits for its turn no
new segment starts. Since the two never overlap, a batch loses nothing by waiting for its
clips while workers are at work (``media_busy``), and full batches are faster per clip:
one clip at a time, a 60-s one-face video's 20 clips took the model 25.1 s, against 20.4 s
in batches of 8 (measured again with the model of 2026-12-07: 1.01 against 0.97 to
0.99 s a clip).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from mmadfer_cli.run.chunk import close_segments
from mmadfer_cli.run.thread_pools import release_thread_pool

if TYPE_CHECKING:
    from mmadfer_cli.run.chunk import ChunkJob, ClipSource
    from mmadfer_cli.run.clips import SegmentClips


class CoreTurns:
    """A readers-writer turn: the model alone (``model``) or any number of media stages
    (``media``), never both; a waiting model goes before media stages that have not started."""

    def __init__(self) -> None:
        self._changed = threading.Condition()
        self._media = 0
        self._media_waiting = 0
        self._model_waiting = 0
        self._model_running = False
        self._working = 0  # workers that hold or may take more work
        self.media_wait_s = 0.0  # summed over the media stages: time spent waiting for a turn
        self.model_wait_s = 0.0

    def media_busy(self) -> bool:
        """Whether more clips are on their way: a media stage holds or wants its turn, or a
        worker is at work between two turns (handing clips on, opening the next video)."""
        with self._changed:
            return bool(self._media or self._media_waiting or self._working)

    @contextmanager
    def working(self) -> Iterator[None]:
        """A worker's whole run: until it ends, the model may wait for its clips. A worker
        that then waits for the model's results must have left it."""
        with self._changed:
            self._working += 1
        try:
            yield
        finally:
            with self._changed:
                self._working -= 1
                self._changed.notify_all()

    @contextmanager
    def model(self) -> Iterator[None]:
        with self._changed:
            t0 = time.perf_counter()
            self._model_waiting += 1
            while self._media or self._model_running:
                self._changed.wait()
            self._model_waiting -= 1
            self._model_running = True
            self.model_wait_s += time.perf_counter() - t0
        try:
            yield
        finally:
            release_thread_pool()  # before the media stages start theirs (thread_pools)
            with self._changed:
                self._model_running = False
                self._changed.notify_all()

    @contextmanager
    def media(self) -> Iterator[None]:
        with self._changed:
            t0 = time.perf_counter()
            self._media_waiting += 1
            while self._model_running or self._model_waiting:
                self._changed.wait()
            self._media_waiting -= 1
            self._media += 1
            self.media_wait_s += time.perf_counter() - t0
        try:
            yield
        finally:
            release_thread_pool()
            with self._changed:
                self._media -= 1
                self._changed.notify_all()

    def source(self, source: ClipSource) -> ClipSource:
        """``source`` with each segment made in a media turn (the caller hands it on outside)."""

        def clips(path: Path, job: ChunkJob) -> Iterator[SegmentClips]:
            segments = iter(source(path, job))
            try:
                while True:
                    with self.media():
                        segment = next(segments, None)
                    if segment is None:
                        return
                    yield segment
            finally:
                close_segments(segments)

        return clips
