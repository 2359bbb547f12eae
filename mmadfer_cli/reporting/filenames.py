"""File names derived from the ``video`` column, for per-video report pictures, pages and exports.

A name keeps the video's own stem whenever it can (``my talk.srt`` beside
``my talk.mp4``, so a player loads the subtitles by itself): spaces, accents
and punctuation that every system allows stay. A short key of the full path
is added only where the plain stem cannot be used: two videos of the table
share it (compared as Windows and macOS do, ignoring case and Unicode
composition), or it had to be changed, because it holds a character Windows
forbids (``<>:"/\\|?*``), a control character, a backslash escape of a name
that is not UTF-8, or is a Windows device name (``CON``, ``aux``,
``COM1``..., also as ``aux.final``: whatever comes before the first dot
counts), ends in a dot or a space, starts with a dot (hidden) or is longer
than ``_MAX_STEM``.
"""

from __future__ import annotations

import unicodedata
from collections import Counter
from collections.abc import Sequence
from pathlib import PurePath

from mmadfer_cli.table.sinks import video_key

_MAX_STEM = 120
_FORBIDDEN = frozenset('<>:"/\\|?*')
_DEVICES = frozenset(
    ["CON", "PRN", "AUX", "NUL"]
    + [f"{port}{n}" for port in ("COM", "LPT") for n in "0123456789\u00b9\u00b2\u00b3"]
)  # as Python 3.13's ntpath.isreserved, and COM0/LPT0, which some Windows versions reserve


def _safe(stem: str) -> str:
    """``stem`` with what no system can take replaced, and cut to a portable length."""
    name = "".join("_" if c in _FORBIDDEN or not c.isprintable() else c for c in stem)
    name = name[:_MAX_STEM].strip(". ")
    device, dot, rest = name.partition(".")
    return f"{device}_{dot}{rest}" if device.rstrip(" ").upper() in _DEVICES else name


def _same_file(name: str) -> str:
    """The form in which two names are one file on Windows or macOS."""
    return unicodedata.normalize("NFC", name).casefold()


def video_stems(videos: Sequence[str]) -> dict[str, str]:
    """A distinct, safe file stem for each video (as written in the ``video`` column)."""
    stems = {video: PurePath(video).stem for video in videos}
    safe = {video: _safe(stem) for video, stem in stems.items()}
    plain = {video for video, name in safe.items() if name and name == stems[video]}
    counts = Counter(_same_file(safe[video]) for video in plain)  # changed names get keys anyway
    return {
        video: name
        if video in plain and counts[_same_file(name)] == 1
        else f"{name or 'video'}-{video_key(video)[:8]}"
        for video, name in safe.items()
    }
