"""File names derived from the ``video`` column, for per-video report pictures and exports.

A name keeps the video's own stem when it is safe and unique
(``interview.eaf`` beside ``interview.mp4``); a stem with characters that are
not portable in file names, or one shared by two videos of the table, gets a
short content-independent key of the full path, so names never collide.
Windows' device names (``CON``, ``aux``, ``COM1``..., also as ``aux.final``:
whatever comes before the first dot counts) cannot be files there, nor can a
name end in a dot or a space: such stems are changed, and so keyed, too.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from pathlib import PurePath

from mmadfer_cli.table.sinks import video_key

_MAX_STEM = 60
_DEVICES = frozenset(
    ["CON", "PRN", "AUX", "NUL"]
    + [f"{port}{n}" for port in ("COM", "LPT") for n in "0123456789\u00b9\u00b2\u00b3"]
)  # as Python 3.13's ntpath.isreserved, and COM0/LPT0, which some Windows versions reserve


def _safe(stem: str) -> str:
    name = "".join(c if c.isalnum() or c in "-_." else "_" for c in stem)[:_MAX_STEM].strip(".")
    device, dot, rest = name.partition(".")
    return f"{device}_{dot}{rest}" if device.upper() in _DEVICES else name


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
