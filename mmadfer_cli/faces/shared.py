"""One face detector shared by all worker threads, batching their frames into large calls.

On a GPU a detector is fast only on many frames per call (MTCNN on an H200:
28 frames/s one frame per call, over 1,000 in batches of 64), while each
worker has only one segment's frames (16) at a time. Workers hand their
frames to one thread that owns the detector and takes everything waiting, up
to ``max_frames``, in one call. Results go back to each caller in its order.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from mmadfer_cli.faces import detector_weights
from mmadfer_cli.faces.detection import FaceDetector


@dataclass
class _Request:
    frames: Sequence[np.ndarray]
    done: threading.Event = field(default_factory=threading.Event)
    boxes: list[np.ndarray] | None = None
    error: BaseException | None = None


@dataclass
class DetectorStats:
    """Calls, frames and busy seconds of a run's face detection (summed over detectors)."""

    calls: int = 0
    frames: int = 0
    busy_s: float = 0.0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def add(self, frames: int, seconds: float) -> None:
        with self._lock:
            self.calls += 1
            self.frames += frames
            self.busy_s += seconds


class CountedDetector:
    """A worker's own detector, counted into the run's ``DetectorStats``."""

    def __init__(self, detector: FaceDetector, stats: DetectorStats) -> None:
        self.detector, self.stats = detector, stats
        self.name = detector.name
        self.weights_sha256 = detector_weights(detector)

    def detect(self, frames: Sequence[np.ndarray]) -> list[np.ndarray]:
        t0 = time.perf_counter()
        found = self.detector.detect(frames)
        self.stats.add(len(frames), time.perf_counter() - t0)
        return found


class SharedDetector:
    """A ``FaceDetector`` that many threads can call; their frames meet in one batch."""

    def __init__(self, detector: FaceDetector, max_frames: int = 256, gather_s: float = 0.002):
        self.detector = detector
        self.name = detector.name
        self.weights_sha256 = detector_weights(detector)
        self.max_frames = max_frames
        self.gather_s = gather_s  # a short wait for more requests when a call would be small
        self.stats = DetectorStats()
        self._waiting: list[_Request] = []
        self._ready = threading.Condition()
        self._thread = threading.Thread(target=self._serve, daemon=True, name="mmadfer-detector")
        self._thread.start()

    def detect(self, frames: Sequence[np.ndarray]) -> list[np.ndarray]:
        request = _Request(frames)
        with self._ready:
            self._waiting.append(request)
            self._ready.notify()
        request.done.wait()
        if request.error is not None:
            raise request.error
        assert request.boxes is not None
        return request.boxes

    def _take(self) -> list[_Request]:
        with self._ready:
            while not self._waiting:
                self._ready.wait()
            if sum(len(r.frames) for r in self._waiting) < self.max_frames // 4:
                self._ready.wait(self.gather_s)  # let the other workers' frames arrive
            taken, total = [], 0
            while self._waiting and (
                not taken or total + len(self._waiting[0].frames) <= self.max_frames
            ):
                request = self._waiting.pop(0)
                taken.append(request)
                total += len(request.frames)
            return taken

    def _serve(self) -> None:
        while True:
            requests = self._take()
            frames = [frame for r in requests for frame in r.frames]
            t0 = time.perf_counter()
            try:
                found = self.detector.detect(frames)
            except BaseException as exc:  # each caller gets the error of its batch
                for r in requests:
                    r.error = exc
                    r.done.set()
                continue
            self.stats.add(len(frames), time.perf_counter() - t0)
            first = 0
            for r in requests:
                r.boxes = found[first : first + len(r.frames)]
                first += len(r.frames)
                r.done.set()
