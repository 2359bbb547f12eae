"""The Python API for notebooks and scripts: ``annotate(paths) -> DataFrame``.

``annotate`` runs the same stages, with the same defaults, as ``mmadfer
annotate`` (which builds its run with ``prepare`` below) and returns the table
in memory, in input order, typed as ``read_results`` returns a file. Bad input
raises (``PathNotFoundError``, ``ValueError``, the model registry's errors); a
video that cannot be read becomes an ``error`` row, as in the CLI.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import torch

from mmadfer_cli import __version__
from mmadfer_cli.faces import create_detector, detector_weights
from mmadfer_cli.faces.detection import FaceDetector
from mmadfer_cli.faces.embedding import FaceEmbedder, weights_sha256
from mmadfer_cli.media.discover import discover_videos, path_text
from mmadfer_cli.media.video import video_id
from mmadfer_cli.model.compiled import compile_model
from mmadfer_cli.model.devices import resolve_device
from mmadfer_cli.model.inference import (
    Bfloat16Mode,
    Precision,
    bfloat16_mode,
    cast_weights,
    resolve_precision,
)
from mmadfer_cli.model.registry import resolve_model
from mmadfer_cli.run.allocator import keep_freed_memory
from mmadfer_cli.run.clips import ClipSettings
from mmadfer_cli.run.engines.local import (
    Stages,
    VideoTask,
    default_workers,
    media_source,
    model_predictor,
    run_pipeline,
    worker_threads,
)
from mmadfer_cli.run.reid import DEFAULT_THRESHOLD, People, ReidSettings, with_embeddings
from mmadfer_cli.run.shared_detector import CountedDetector, DetectorStats, SharedDetector
from mmadfer_cli.table.read import table_frame
from mmadfer_cli.table.sinks import RunInfo, rows_table

ENGINES = ("local", "ray")
"""Where ``annotate`` runs: this machine's threads, or a Ray cluster."""


def run_settings(
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


def reid_settings(reid: ReidSettings | None) -> dict | None:
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


def clip_settings(
    window: float,
    stride: float | None,
    min_segment: float,
    min_face_frames: int,
    face_threshold: float,
    min_face_size: int,
    max_faces: int,
    track_iou: float,
    max_gap: float,
    detector: str,
    face_models: str | os.PathLike[str] | None,
) -> ClipSettings:
    """The segment and face settings from the options of ``mmadfer annotate`` (and ``annotate``)."""
    return ClipSettings(
        window_s=window,
        stride_s=stride,
        min_segment_s=min_segment,
        min_face_frames=min_face_frames,
        face_threshold=face_threshold,
        min_face_px=min_face_size,
        max_faces=max_faces,
        track_iou=track_iou,
        max_gap_s=max_gap,
        detector=detector,
        face_models=Path(face_models) if face_models is not None else None,
    )


def settings_detector(settings: ClipSettings, device: torch.device) -> FaceDetector:
    """The face detector the settings name, on ``device`` (MTCNN searching from the smallest
    face kept)."""
    return create_detector(
        settings.detector,
        settings.face_models,
        threshold=settings.face_threshold,
        device=device,
        min_face=settings.min_face_px,
    )


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
    """Load the model and a face detector and wire the stages (the CLI and ``annotate`` share it).

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
            **run_settings(settings, first, precision, bfloat16),
            "reid": reid_settings(reid),
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


def annotate(
    paths: str | os.PathLike[str] | Sequence[str | os.PathLike[str]],
    *,
    model: str | None = None,
    checkpoint: str | os.PathLike[str] | None = None,
    device: str = "auto",
    precision: str = "auto",
    batch_size: int = 8,
    workers: int = 0,
    chunk: float = 60.0,
    compile: bool = False,
    window: float = 3.0,
    stride: float | None = None,
    min_segment: float = 1.0,
    detector: str = "auto",
    face_models: str | os.PathLike[str] | None = None,
    face_threshold: float = 0.5,
    min_face_size: int = 20,
    max_faces: int = 0,
    min_face_frames: int = 8,
    track_iou: float = 0.3,
    max_gap: float = 1.0,
    recursive: bool = True,
    globs: Sequence[str] = (),
    reid: bool = True,
    reid_threshold: float = DEFAULT_THRESHOLD,
    reid_scope: str = "video",
    engine: str = "local",
    ray_address: str | None = None,
    actors_per_gpu: int = 1,
) -> pd.DataFrame:
    """Annotate videos (files or folders) and return the result table.

    The options are those of ``mmadfer annotate`` (``--min-face-size`` is
    ``min_face_size`` and so on, ``--no-reid`` is ``reid=False``), with the same defaults. The run's settings,
    model and versions are in ``df.attrs["mmadfer"]``, as in a Parquet file's
    metadata. On the CPU, as the command does, it keeps freed memory in the process
    (``allocator.keep_freed_memory``: 1.2x to 1.75x the model's speed there). With
    ``engine="ray"`` it joins (or starts, and leaves running for the next call) a Ray cluster.
    ``compile=True`` (local engine only) raises ``CompileError`` where torch.compile cannot work.
    """
    given = [paths] if isinstance(paths, (str, os.PathLike)) else list(paths)
    videos = discover_videos(given, recursive=recursive, globs=globs)
    if not videos:
        raise ValueError(f"no video files found in {', '.join(map(str, given))}")
    if engine not in ENGINES:
        raise ValueError(f"engine must be one of {', '.join(ENGINES)}, not {engine!r}")
    if compile and engine != "local":
        raise ValueError("compile=True needs the local engine (Ray's actors run the model as is)")
    bf16_as: Bfloat16Mode | None = None  # how bfloat16 runs: the device's way, or the GPU actors'
    if engine == "ray":  # the model is loaded here on the CPU, for the cluster's actors
        from mmadfer_cli.run.engines.ray.connect import cluster_info, cluster_precision, connect

        connect(ray_address)
        torch_device = torch.device("cpu")
        mode, bf16_as = cluster_precision(precision, cluster_info().gpus)
    else:
        torch_device = resolve_device(device)
        mode = resolve_precision(precision, torch_device)
    if torch_device.type == "cpu":
        keep_freed_memory()
    workers = workers or default_workers(torch_device)
    settings = clip_settings(window, stride, min_segment, min_face_frames, face_threshold,
                             min_face_size, max_faces, track_iou, max_gap, detector, face_models)  # fmt: skip
    reid_with = ReidSettings(reid_threshold, reid_scope) if reid else None
    prepared = prepare(
        settings,
        model=model,
        checkpoint=Path(checkpoint) if checkpoint is not None else None,
        device=torch_device,
        precision=mode,  # type: ignore[arg-type]
        reid=reid_with,
        chunk_s=chunk,
        bfloat16=bf16_as,
        compile_batch=batch_size if compile else None,
    )
    tasks = [VideoTask(i, path_text(p), p) for i, p in enumerate(videos)]
    if engine == "ray":
        from mmadfer_cli.run.engines.ray.driver import RayRun
        from mmadfer_cli.run.engines.ray.remote import ChunkSpec

        assert prepared.model is not None
        spec = ChunkSpec(settings, chunk, prepared.run.class_names,
                         reid_with.frames if reid_with else None)  # fmt: skip
        results = RayRun(prepared.model, mode, batch_size, actors_per_gpu).run(tasks, spec)
    else:
        results = run_pipeline(
            tasks,
            prepared.stages,
            prepared.run.class_names,
            batch_size=batch_size,
            workers=workers,
            threads_per_worker=worker_threads(workers, torch_device),
        )
    try:
        finished = sorted(results, key=lambda r: r.task.index)
    finally:
        results.close()
    if prepared.people is not None:  # in input order, so that run-wide ids are repeatable
        for result in finished:
            prepared.people.assign(result.rows)
    rows = [row for result in finished for row in result.rows]
    df = table_frame(rows_table(rows, prepared.run.schema()))
    df.attrs["mmadfer"] = prepared.run.to_json()
    return df
