"""What runs on the cluster's workers: planning a video, running a chunk, and the service actor.

A chunk task runs ``chunk.run_chunk`` (the same function as a local worker)
where Ray places it, with a service actor as its predictor; it returns the
chunk's rows and track log, never pixels, so the driver and the object store
stay small.
A service actor holds the model (and, on a GPU, the face detector), each
behind a ``Batched`` queue, so the clips and frames of all chunks that call it
meet in full batches. On the CPU each chunk task finds faces itself, as a local
worker does. Errors come back as values: an unreadable file names the node.
"""

from __future__ import annotations

import functools
import os
import socket
import traceback
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from mmadfer_cli.faces import FaceDetector, detector_weights
from mmadfer_cli.faces.embedding import FaceEmbedder
from mmadfer_cli.media.video import video_id
from mmadfer_cli.model.inference import model_predictor
from mmadfer_cli.run.allocator import keep_freed_memory
from mmadfer_cli.run.batching import Batched
from mmadfer_cli.run.chunk import (
    ChunkJob,
    ChunkOutput,
    Pending,
    Plan,
    media_source,
    plan_video,
    run_chunk,
)
from mmadfer_cli.run.clips import ClipSettings, count_chunks, settings_detector
from mmadfer_cli.run.errors import Failure
from mmadfer_cli.run.reid import with_embeddings


@dataclass(frozen=True)
class ChunkSpec:
    """What every chunk of a run needs besides its place: the settings that decide the rows."""

    settings: ClipSettings
    chunk_s: float
    class_names: tuple[str, ...]
    reid_frames: int | None = None  # faces embedded per track and segment; None: no re-id


class RemoteFailure(Exception):
    """An unexpected error on a worker; its message carries the worker's traceback."""


def _sent(found: Failure | None) -> Failure | None:
    """A failure as it travels to the driver: an unexpected error as its traceback in words."""
    if found is None or found.exception is None:
        return found
    text = "".join(traceback.format_exception(found.exception)).rstrip()
    return Failure(found.message, RemoteFailure(text))


def plan_task(path: str, settings: ClipSettings, chunk_s: float) -> Plan:
    """Open a video on a worker: its id and how many chunks it has."""
    plan = plan_video(Path(path), video_id, lambda p: count_chunks(p, settings, chunk_s), _node())
    plan.failure = _sent(plan.failure)
    return plan


def _node() -> str:
    return socket.gethostname()


class _ServiceDetector:
    """A ``FaceDetector`` that sends frames to a service actor's shared GPU detector."""

    def __init__(self, service: Any, name: str, weights: str | None) -> None:
        self.service, self.name, self.weights_sha256 = service, name, weights

    def detect(self, frames: np.ndarray | Sequence[np.ndarray]) -> list[np.ndarray]:
        import ray

        return ray.get(self.service.detect.remote(np.asarray(frames)))


class _ServicePredictor:
    """The ``Predictor`` of a chunk task: the service actor's batched model."""

    def __init__(self, service: Any) -> None:
        self.service = service

    def submit(self, clips: Sequence[torch.Tensor], fbanks: Sequence[torch.Tensor]) -> Pending:
        import ray

        ref = self.service.predict.remote(list(clips), list(fbanks))
        return lambda: ray.get(ref)


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


def chunk_task(
    spec: ChunkSpec,
    service: Any,
    detector: tuple[str, str | None] | None,
    path: str,
    video: str,
    vid: str | None,
    job: tuple[int, int],
) -> ChunkOutput:
    """Chunk ``job`` = (index, count) of a video through ``chunk.run_chunk``, with the service's
    predictions. ``detector`` (name, weights checksum) says the service finds the faces (a GPU);
    None: this task does, with its own (cached per worker process) detector."""
    keep_freed_memory()
    found: FaceDetector = (
        _ServiceDetector(service, *detector) if detector else _own_detector(spec.settings)
    )
    open_source, _ = media_source(spec.settings, lambda: found, spec.chunk_s)
    if spec.reid_frames is not None:
        open_source = with_embeddings(open_source, _embedder, spec.reid_frames)
    out = run_chunk(open_source(), Path(path), video, vid, ChunkJob(*job),
                    _ServicePredictor(service), spec.class_names, node=_node())  # fmt: skip
    assert out is not None  # never asked to stop
    out.failure = _sent(out.failure)
    return out


class Service:
    """The model (and, on a GPU, the face detector) for the chunks that call it, batching
    their clips (and frames) across chunks. ``--actors-per-gpu`` per GPU (default one), or one
    per node on a CPU cluster."""

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
