"""The Python API for notebooks and scripts: ``annotate(paths) -> DataFrame``.

``annotate`` is ``mmadfer annotate`` as a function: the same options and
defaults (``--min-face-size`` is ``min_face_size``, ``--no-reid`` is
``reid=False``, ``--overwrite`` is ``resume=False``), the same run
(``run.runner.run``). Without ``out`` the table stays in memory; with ``out``
it is written, locked and resumed exactly as the command does, and read back.
Bad options or input raise ``UsageError`` (a ``ValueError``) with the command's
message; a video that cannot be read becomes an ``error`` row and a warning.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from mmadfer_cli.plural import agree, counted
from mmadfer_cli.run.options import DEFAULTS as D
from mmadfer_cli.run.options import ENGINES, AnnotateOptions, UsageError
from mmadfer_cli.run.progress import ProgressEvents, RunEvents
from mmadfer_cli.run.runner import run
from mmadfer_cli.table.read import read_results, table_frame

__all__ = ["ENGINES", "RunStopped", "UsageError", "annotate"]


class RunStopped(RuntimeError):
    """The run stopped before its last video (Ctrl-C, a write error, the model failing); the
    videos finished so far are kept in ``out``: call again to resume."""


def annotate(
    paths: str | os.PathLike[str] | Sequence[str | os.PathLike[str]],
    *,
    out: str | os.PathLike[str] | None = None,
    format: str | None = D.fmt,
    progress: bool = True,
    model: str | None = D.model,
    checkpoint: str | os.PathLike[str] | None = D.checkpoint,
    device: str = D.device,
    precision: str = D.precision,
    batch_size: int = D.batch_size,
    workers: int = D.workers,
    chunk: float = D.chunk,
    compile: bool = D.compile,
    window: float = D.window,
    stride: float | None = D.stride,
    min_segment: float = D.min_segment,
    soundtrack: str = D.soundtrack,
    detector: str = D.detector,
    face_models: str | os.PathLike[str] | None = D.face_models,
    face_threshold: float = D.face_threshold,
    min_face_size: int = D.min_face_size,
    max_faces: int = D.max_faces,
    min_face_frames: int = D.min_face_frames,
    track_iou: float = D.track_iou,
    max_gap: float = D.max_gap,
    recursive: bool = D.recursive,
    globs: Sequence[str] = D.globs,
    reid: bool = D.reid,
    reid_threshold: float = D.reid_threshold,
    reid_scope: str = D.reid_scope,
    engine: str = D.engine,
    ray_address: str | None = D.ray_address,
    actors_per_gpu: int = D.actors_per_gpu,
    resume: bool = D.resume,
    stats: str | os.PathLike[str] | None = D.stats,
    csv_for_spreadsheets: bool = D.csv_for_spreadsheets,
) -> pd.DataFrame:
    """Annotate videos (files or folders) and return the result table.

    The options are those of ``mmadfer annotate``, with the same defaults. With ``out`` (a
    ``.parquet``, ``.csv`` or ``.jsonl`` file, a folder, or ``-`` for CSV on stdout) the
    rows are written as each video finishes and a second call with the same ``out`` resumes
    (``resume=False`` starts again); the table returned is then the whole output. ``progress``
    shows a progress bar on stderr. ``soundtrack="silent"`` gives every face the sound of a
    video without audio, so that no speaker's voice colours a listener's label (lower accuracy;
    see README "Scientific use and limits"). The run's settings, model and versions are in
    ``df.attrs["mmadfer"]``, as in a Parquet file's metadata. Videos that failed or have
    damaged stretches give a warning (their rows say why); a run stopped early raises
    ``RunStopped`` (finished videos are kept in ``out``).
    """
    given = [paths] if isinstance(paths, (str, os.PathLike)) else list(paths)
    options = AnnotateOptions(
        inputs=tuple(Path(p) for p in given), out=None if out is None else os.fspath(out),
        fmt=format, model=model, checkpoint=None if checkpoint is None else Path(checkpoint),
        device=device, precision=precision, batch_size=batch_size, workers=workers,
        engine=engine, ray_address=ray_address, actors_per_gpu=actors_per_gpu, chunk=chunk,
        compile=compile, window=window, stride=stride, min_segment=min_segment,
        soundtrack=soundtrack, detector=detector,
        face_models=None if face_models is None else Path(face_models),
        face_threshold=face_threshold, min_face_size=min_face_size, max_faces=max_faces,
        min_face_frames=min_face_frames, track_iou=track_iou, max_gap=max_gap, reid=reid,
        reid_threshold=reid_threshold, reid_scope=reid_scope, recursive=recursive,
        globs=tuple(globs), resume=resume, stats=None if stats is None else Path(stats),
        csv_for_spreadsheets=csv_for_spreadsheets,
    )  # fmt: skip
    events: RunEvents = ProgressEvents() if progress else RunEvents()
    report = run(options, events)
    if report.stop is not None:
        raise RunStopped(report.stop.message) from report.stop.exception
    problems = [f"{name}: {reason}" for name, reason in report.failures]
    problems += [
        f"{name}: damaged stretches ({counted(len(d), 'segment')})" for name, d in report.damage
    ]
    if problems:
        warnings.warn(
            f"{counted(len(problems), 'video')} failed or damaged "
            f"({agree(len(problems), 'its', 'their')} rows say why): " + "; ".join(problems),
            stacklevel=2,
        )
    if report.table is not None:
        df = table_frame(report.table)
        df.attrs["mmadfer"] = report.info.to_json()
        return df
    if report.where is None:  # stdout
        return pd.DataFrame()
    return read_results(report.where)
