"""File names derived from the ``video`` column, for per-video report pictures and exports.

A name keeps the video's own stem when it is safe and unique
(``interview.eaf`` beside ``interview.mp4``); a stem with characters that are
not portable in file names, or one shared by two videos of the table, gets a
short content-independent key of the full path, so names never collide.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from pathlib import PurePath

from mmadfer_cli.table.sinks import video_key

_MAX_STEM = 60


def _safe(stem: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in stem)[:_MAX_STEM].strip(".")


def video_stems(videos: Sequence[str]) -> dict[str, str]:
    """A distinct, safe file stem for each video (as written in the ``video`` column)."""
    stems = {video: PurePath(video).stem for video in videos}
    safe = {video: _safe(stem) for video, stem in stems.items()}
    counts = Counter(name.casefold() for name in safe.values())
    return {
        video: name
        if name and name == stems[video] and counts[name.casefold()] == 1
        else f"{name or 'video'}-{video_key(video)[:8]}"
        for video, name in safe.items()
    }
