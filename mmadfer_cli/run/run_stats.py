"""``--stats FILE``: where a run's time went, as JSON, to tune ``--workers`` and ``--batch-size``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from mmadfer_cli.run.errors import os_reason
from mmadfer_cli.run.shared_detector import DetectorStats
from mmadfer_cli.run.videos import PipelineStats


def write_stats(
    path: Path,
    stats: PipelineStats,
    detection: DetectorStats,
    on_ray: Any,
    settings: tuple[int, int, float],
) -> str | None:
    """Where the time went, as JSON: busy seconds and shares of the wall time per stage, with the
    run's (workers, batch size, chunk seconds). Returns why it could not be written (a warning
    for the caller), else None."""
    workers, batch_size, chunk_s = settings
    wall = max(stats.wall_s, 1e-9)
    figures: dict[str, Any] = {
        "wall_s": stats.wall_s,
        "videos": stats.videos,
        "chunks": stats.chunks,
        "segments": stats.segments,
        "chunks_per_s": stats.chunks / wall,
        "segments_per_s": stats.segments / wall,
        "workers": workers,
        "chunk_s": chunk_s,
        "media": {  # decode, faces, crops, filterbank: summed over the workers
            "busy_s": stats.produce_s,
            "busy_share_per_worker": stats.produce_s / (wall * workers),
        },
        "detector": {  # one shared by the workers (GPU) or one per worker: busy_s summed
            "detectors": detection.detectors,
            "busy_s": detection.busy_s,
            "busy_share": detection.busy_s / (wall * max(detection.detectors, 1)),
            "calls": detection.calls,
            "frames": detection.frames,
            "frames_per_call": detection.frames / max(detection.calls, 1),
        },
        "model": {
            "busy_s": stats.model_s,
            "busy_share": stats.model_s / wall,
            "batches": stats.batches,
            "clips": stats.clips,
            "clips_per_batch": stats.clips / max(stats.batches, 1),
            "batch_size": batch_size,
        },
    }
    if on_ray is not None:  # the model (and GPU detector) ran in the service actors
        figures["ray"] = {
            "services": on_ray.services,
            "object_store_peak_bytes": on_ray.object_store_peak,
            **on_ray.service_stats,
        }
    try:
        path.write_text(json.dumps(figures, indent=2) + "\n")
    except OSError as exc:
        return f"cannot write --stats {path}: {os_reason(exc)}"
    return None
