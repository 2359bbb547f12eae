"""Face detectors counted into a run's statistics, and one shared by all worker threads.

On a GPU a detector is fast only on many frames per call (MTCNN on an H200:
28 frames/s one frame per call, over 1,000 in batches of 64), while each
worker has only one segment's frames (16) at a time: ``SharedDetector`` merges
the workers' frames into calls of up to ``max_frames`` (``batching.Batched``).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from mmadfer_cli.faces import detector_weights
from mmadfer_cli.faces.detection import FaceDetector
from mmadfer_cli.run.batching import Batched


@dataclass
class DetectorStats:
    """Calls, frames and busy seconds of a run's face detection (summed over its ``detectors``:
    one shared by the workers, or one per worker)."""

    calls: int = 0
    frames: int = 0
    busy_s: float = 0.0
    detectors: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def add_detector(self) -> None:
        with self._lock:
            self.detectors += 1

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
        stats.add_detector()

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
        self.stats = DetectorStats(detectors=1)
        self._batched = Batched(self._detect, max_frames, gather_s, name="mmadfer-detector")

    def _detect(self, frames: list[np.ndarray]) -> list[np.ndarray]:
        t0 = time.perf_counter()
        found = self.detector.detect(frames)
        self.stats.add(len(frames), time.perf_counter() - t0)
        return found

    def detect(self, frames: Sequence[np.ndarray]) -> list[np.ndarray]:
        return list(self._batched(frames))
