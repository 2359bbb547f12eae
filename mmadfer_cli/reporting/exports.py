"""Exports of a result table to the formats other tools read: ELAN (.eaf), SRT and WebVTT.

Each writes one file per video into a folder, named after the video (see
``mmadfer_cli.reporting.filenames``); a video that failed as a whole has nothing to show
and gets no file.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pandas as pd
from pympi.Elan import to_string

from mmadfer_cli.reporting.eaf import video_eaf
from mmadfer_cli.reporting.filenames import video_stems
from mmadfer_cli.reporting.subtitles import SUBTITLE_FORMATS, cues, render
from mmadfer_cli.table.files import replace
from mmadfer_cli.table.read import check_results, video_order


def exportable_videos(df: pd.DataFrame) -> list[str]:
    """Videos with at least one segment (ok or no-face rows, or error rows with a span)."""
    spanned = df[df["start_s"].notna()]
    return [v for v in video_order(df) if v in set(spanned["video"])]


def write_per_video(
    df: pd.DataFrame, out: Path, suffix: str, content: Callable[[str, Path], bytes]
) -> dict[str, Path]:
    """Write ``content(video, folder)`` to ``out/<video stem><suffix>`` for each exportable video,
    each file replaced atomically; the paths written, by video."""
    check_results(df)
    out.mkdir(parents=True, exist_ok=True)
    stems = video_stems(video_order(df))
    written = {}
    for video in exportable_videos(df):
        path = out / f"{stems[video]}{suffix}"
        tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
        try:
            tmp.write_bytes(content(video, out))
            replace(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)
        written[video] = path
    return written


def export_eaf(
    df: pd.DataFrame, out: str | os.PathLike[str], media_root: str | os.PathLike[str] | None = None
) -> dict[str, Path]:
    """One ELAN file per video in ``out``; media paths are resolved against ``media_root`` (default:
    the current folder, as the ``video`` column was written)."""
    root = Path(media_root) if media_root is not None else None
    return write_per_video(
        df,
        Path(out),
        ".eaf",
        lambda video, folder: to_string(video_eaf(df, video, folder, root), encoding="UTF-8"),
    )


def export_subtitles(df: pd.DataFrame, out: str | os.PathLike[str], fmt: str) -> dict[str, Path]:
    """One subtitle file (``srt`` or ``vtt``) per video in ``out``."""
    if fmt not in SUBTITLE_FORMATS:
        raise ValueError(f"unknown subtitle format {fmt!r}")
    return write_per_video(
        df,
        Path(out),
        f".{fmt}",
        lambda video, _: render(cues(df, video), fmt).encode("utf-8"),  # type: ignore[arg-type]
    )
