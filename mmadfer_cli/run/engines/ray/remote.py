"""What runs on the cluster's workers: planning a video, running a chunk, and the service actor.

A chunk task runs the media chain of one chunk (decode, faces, tracking, crops,
filterbank, and face embeddings for re-identification) where Ray places it, and
sends each segment's face clips to a service actor; it returns the chunk's rows
and track log, never pixels, so the driver and the object store stay small.
A service actor holds the model (and, on a GPU, the face detector), each
behind a ``Batched`` queue, so the clips and frames of all chunks that call it
meet in full batches. On the CPU each chunk task finds faces itself, as a local
worker does. Errors come back as values: an unreadable file names the node.
"""

from __future__ import annotations

import dataclasses
import functools
import os
import socket
import time
import traceback
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from mmadfer_cli.api import settings_detector
from mmadfer_cli.faces import FaceDetector, detector_weights
from mmadfer_cli.faces.embedding import FaceEmbedder
from mmadfer_cli.media.video import video_id
from mmadfer_cli.run.allocator import keep_freed_memory
from mmadfer_cli.run.batching import Batched
from mmadfer_cli.run.clips import ClipSettings, TrackLog, count_chunks
from mmadfer_cli.run.engines.local import (
    ChunkJob,
    error_message,
    expected,
    media_source,
    model_predictor,
)
from mmadfer_cli.run.reid import with_embeddings
from mmadfer_cli.table.sinks import segment_rows


@dataclass(frozen=True)
class ChunkSpec:
    """What every chunk of a run needs besides its place: the settings that decide the rows."""

    settings: ClipSettings
    chunk_s: float
    class_names: tuple[str, ...]
    reid_frames: int | None = None  # faces embedded per track and segment; None: no re-id


class RemoteFailure(Exception):
    """An unexpected error on a worker; its message carries the worker's traceback."""


@dataclass
class Failure:
    """Why a video could not be planned or a chunk not run (the message of its error row)."""

    message: str
    exception: RemoteFailure | None  # None for an expected error (unreadable, not a video)


@dataclass
class Plan:
    """A planned video: its id and chunk count, or why it could not be opened."""

    video_id: str | None
    chunks: int
    failure: Failure | None = None


@dataclass
class ChunkOutput:
    """A chunk's rows (local track ids), its track log and counters, or why it failed."""

    rows: list[dict[str, Any]] = field(default_factory=list)
    log: TrackLog = field(default_factory=TrackLog)
    segments: int = 0
    clips: int = 0
    damaged: list[tuple[float, float, str]] = field(default_factory=list)
    produce_s: float = 0.0
    failure: Failure | None = None


def _failure(exc: BaseException) -> Failure:
    """An error as a row's message; a file this node cannot read names the node (shared
    storage missing there), and an unexpected error keeps the worker's traceback."""
    message = error_message(exc)
    if isinstance(exc, OSError):
        message = f"{message} (on node {socket.gethostname()})"
    if expected(exc):
        return Failure(message, None)
    return Failure(message, RemoteFailure("".join(traceback.format_exception(exc)).rstrip()))


def plan_video(path: str, settings: ClipSettings, chunk_s: float) -> Plan:
    """Open a video on a worker: its id and how many chunks it has."""
    vid = None
    try:
        vid = video_id(path)
        return Plan(vid, count_chunks(Path(path), settings, chunk_s))
    except Exception as exc:
        return Plan(vid, 0, _failure(exc))


class _ServiceDetector:
    """A ``FaceDetector`` that sends frames to a service actor's shared GPU detector."""

    def __init__(self, service: Any, name: str, weights: str | None) -> None:
        self.service, self.name, self.weights_sha256 = service, name, weights

    def detect(self, frames: np.ndarray | Sequence[np.ndarray]) -> list[np.ndarray]:
        import ray

        return ray.get(self.service.detect.remote(np.asarray(frames)))


@functools.lru_cache(maxsize=2)
def _own_detector(settings: ClipSettings) -> FaceDetector:
    return settings_detector(settings, torch.device("cpu"))


def warm_worker(settings: ClipSettings, gpu_detector: bool) -> None:
    """Run first on each worker: importing this module and loading the CPU face detector (kept
    per process) would otherwise delay the first chunk of every worker."""
    keep_freed_memory()
    if not gpu_detector:
        _own_detector(settings)


@functools.lru_cache(maxsize=1)
def _embedder() -> FaceEmbedder:
    return FaceEmbedder()


def run_chunk(
    spec: ChunkSpec,
    service: Any,
    detector: tuple[str, str | None] | None,
    path: str,
    video: str,
    vid: str | None,
    job: tuple[int, int],
) -> ChunkOutput:
    """Chunk ``job`` = (index, count) of a video: its rows with the service's predictions.

    ``detector`` (name, weights checksum) says the service finds the faces (a GPU); None:
    this task does, with its own (cached per worker process) detector.
    """
    import ray

    keep_freed_memory()
    out = ChunkOutput()
    found: FaceDetector = (
        _ServiceDetector(service, *detector) if detector else _own_detector(spec.settings)
    )
    open_source, _ = media_source(spec.settings, lambda: found, spec.chunk_s)
    if spec.reid_frames is not None:
        open_source = with_embeddings(open_source, _embedder, spec.reid_frames)
    chunk = ChunkJob(*job, log=out.log)
    waiting: list[tuple[Any, Any]] = []  # (segment clips, predictions on their way)
    try:
        segments = iter(open_source()(Path(path), chunk))
        while True:
            t0 = time.perf_counter()
            clips = next(segments, None)
            out.produce_s += time.perf_counter() - t0
            if clips is None:
                break
            out.segments += 1
            out.clips += len(clips.faces)
            if clips.error is not None:
                segment = clips.segment
                out.damaged.append((float(segment.start_s), float(segment.end_s), clips.error))
            probs = None
            if clips.faces:
                faces = [f.clip for f in clips.faces]
                probs = service.predict.remote(faces, [clips.fbank] * len(faces))
            waiting.append((_without_pixels(clips), probs))
        for clips, probs in waiting:
            shape = (len(clips.faces), len(spec.class_names))
            values = ray.get(probs) if probs is not None else np.zeros(shape, np.float32)
            out.rows += segment_rows(video, vid, clips, values, spec.class_names)
    except Exception as exc:
        return ChunkOutput(failure=_failure(exc))
    return out


def _without_pixels(clips: Any) -> Any:
    """A segment kept until its predictions come back: its face crops are no longer needed."""
    faces = [dataclasses.replace(f, clip=torch.empty(0, dtype=torch.uint8)) for f in clips.faces]
    return dataclasses.replace(clips, faces=faces)


class Service:
    """The model (and, on a GPU, the face detector) for the chunks that call it, batching
    their clips (and frames) across chunks. One per GPU, or one per node on a CPU cluster."""

    def __init__(
        self,
        model_box: list[Any],
        device: str,
        precision: str,
        batch_size: int,
        detector_settings: ClipSettings | None = None,
    ) -> None:
        import ray

        # The model comes as a reference in a list, so that Ray passes the reference (which the
        # driver keeps alive for restarts) rather than copying the weights into the arguments.
        model: torch.nn.Module = ray.get(model_box[0])
        torch_device = torch.device(device)
        if torch_device.type == "cpu":
            keep_freed_memory()
            torch.set_num_threads(os.cpu_count() or 1)  # the chunk tasks wait on it: all cores
        model = model.to(torch_device).eval()
        predict = model_predictor(model, torch_device, precision)  # type: ignore[arg-type]

        def run(items: list[tuple[torch.Tensor, torch.Tensor]]) -> np.ndarray:
            return predict([c for c, _ in items], [f for _, f in items])

        # Batched runs at most batch_size clips per call: its stats count the model's batches.
        self._model = Batched(run, batch_size, gather_s=0.05, name="mmadfer-model")
        self._detector = None
        if detector_settings is not None:
            from mmadfer_cli.run.shared_detector import SharedDetector

            self._detector = SharedDetector(settings_detector(detector_settings, torch_device))

    def predict(self, clips: list[torch.Tensor], fbanks: list[torch.Tensor]) -> np.ndarray:
        return np.asarray(self._model(list(zip(clips, fbanks, strict=True))))

    def detect(self, frames: np.ndarray) -> list[np.ndarray]:
        assert self._detector is not None
        return self._detector.detect(list(frames))

    def detector(self) -> tuple[str, str | None] | None:
        """The GPU detector's name and weights checksum (None: chunks find faces themselves)."""
        if self._detector is None:
            return None
        return self._detector.name, detector_weights(self._detector)

    def stats(self) -> dict[str, float]:
        """Model batches, clips and busy seconds so far (and the detector's calls and frames)."""
        m = self._model.stats
        report = {"model_batches": m.calls, "model_clips": m.items, "model_s": m.busy_s}
        if self._detector is not None:
            d = self._detector.stats
            report |= {
                "detector_calls": d.calls,
                "detector_frames": d.frames,
                "detector_s": d.busy_s,
            }
        return report
