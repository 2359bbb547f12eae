"""A run made ready: the model loaded, a face detector checked, the stages wired.

What the run records about itself (``RunInfo``: model, checksum, the settings
that decide the rows) is made here too, so that every output and every resume
compares the same thing.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch

from mmadfer_cli import __version__
from mmadfer_cli.faces import detector_weights
from mmadfer_cli.faces.detection import FaceDetector
from mmadfer_cli.faces.embedding import FaceEmbedder, weights_sha256
from mmadfer_cli.media.video import video_id
from mmadfer_cli.model.compiled import compile_model
from mmadfer_cli.model.inference import (
    Bfloat16Mode,
    Precision,
    bfloat16_mode,
    cast_weights,
    model_predictor,
)
from mmadfer_cli.model.registry import resolve_model
from mmadfer_cli.run.chunk import media_source
from mmadfer_cli.run.clips import ClipSettings, settings_detector
from mmadfer_cli.run.engines.local import Stages
from mmadfer_cli.run.reid import People, ReidSettings, with_embeddings
from mmadfer_cli.run.shared_detector import CountedDetector, DetectorStats, SharedDetector
from mmadfer_cli.table.schema import RunInfo


def recorded_settings(
    settings: ClipSettings,
    detector: FaceDetector,
    precision: str,
    bfloat16: Bfloat16Mode | None = None,
) -> dict:
    """The settings that decide the rows, as recorded in the output and compared on resume
    (with bfloat16, also how it ran: ``bfloat16_mode``)."""
    recorded = dataclasses.asdict(settings)
    recorded["face_models"] = str(settings.face_models) if settings.face_models else None
    recorded["detector_backend"] = detector.name
    recorded["detector_weights_sha256"] = detector_weights(detector)
    recorded["precision"] = precision
    if precision == "bfloat16":
        recorded["bfloat16_mode"] = bfloat16
    return recorded


def recorded_reid(reid: ReidSettings | None) -> dict | None:
    """Re-identification as recorded with the results: the embedding model, its checksum and
    the threshold (None: ``--no-reid``)."""
    if reid is None:
        return None
    return {
        "model": FaceEmbedder.name,
        "sha256": weights_sha256(),
        "threshold": reid.threshold,
        "scope": reid.scope,
        "frames": reid.frames,
    }


@dataclass(frozen=True)
class Prepared:
    """A run ready to go: what it records (``run``), the stage functions of the pipeline, and
    what gives each finished video's rows their ``person_id`` (None without re-identification)."""

    run: RunInfo
    stages: Stages
    people: People | None = None
    detection: DetectorStats = field(default_factory=DetectorStats)  # all workers' detection
    model: torch.nn.Module | None = None  # for engines that run it elsewhere (Ray's actors)


def prepare(
    settings: ClipSettings,
    *,
    model: str | None,
    checkpoint: Path | None,
    device: torch.device,
    precision: Precision,
    first_detector: Callable[[ClipSettings, torch.device], FaceDetector] = settings_detector,
    reid: ReidSettings | None = None,
    chunk_s: float = 60.0,
    bfloat16: Bfloat16Mode | None = None,
    compile_batch: int | None = None,
) -> Prepared:
    """Load the model and a face detector and wire the stages of a run.

    ``first_detector`` makes the detector that is checked before any work
    starts (the CLI shows its warnings its own way). On CUDA, MTCNN is one
    detector shared by all workers, batching their frames; elsewhere each worker
    thread makes its own. Videos are processed in chunks of ``chunk_s`` seconds
    (0: whole videos). With ``reid``, each worker also embeds the faces it cuts
    (``People`` then assigns the people of each finished video). With bfloat16 precision the
    model runs in ``bfloat16`` mode (default: the device's faster one, ``bfloat16_mode``).
    With ``compile_batch`` the model is compiled (``torch.compile``) for batches of that size
    before this returns (``CompileError`` where it cannot be).
    """
    net, record = resolve_model(model, checkpoint, device=str(device))
    bfloat16 = (bfloat16 or bfloat16_mode(device)) if precision == "bfloat16" else None
    net = cast_weights(net, precision, bfloat16)
    runs: torch.nn.Module = net
    if compile_batch is not None:
        runs = compile_model(net, device, precision, compile_batch)
    first = first_detector(settings, device)
    embedders = [FaceEmbedder()] if reid is not None else []
    run = RunInfo(
        model_name=record.name,
        model_sha256=record.sha256,
        class_names=tuple(record.class_names),
        settings={
            **recorded_settings(settings, first, precision, bfloat16),
            "reid": recorded_reid(reid),
        },
        tool_version=__version__,
        torch_version=torch.__version__,
    )
    shared = SharedDetector(first) if device.type == "cuda" and first.name == "mtcnn" else None
    detection = shared.stats if shared is not None else DetectorStats()
    detectors = [first]

    def make_detector() -> FaceDetector:
        # Called in worker threads: the first reuses the checked detector.
        if shared is not None:
            return shared
        own = detectors.pop() if detectors else settings_detector(settings, device)
        return CountedDetector(own, detection)

    open_source, chunks = media_source(settings, make_detector, chunk_s)
    if reid is not None:
        open_source = with_embeddings(
            open_source, lambda: embedders.pop() if embedders else FaceEmbedder(), reid.frames
        )
    stages = Stages(
        open_source=open_source,
        video_id=video_id,
        predict=model_predictor(runs, device, precision, pad_to=compile_batch),
        chunks=chunks,
    )
    return Prepared(run, stages, People(reid) if reid is not None else None, detection, net)
