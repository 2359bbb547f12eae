"""Turn the paths given on the command line into an ordered list of video files.

Folders are walked (recursively by default) and their video files picked by
extension or by extra ``--glob`` patterns; files named explicitly are always
kept, because the user asked for them. Hidden entries inside folders are
skipped, symlinked folders are followed once (loops are safe), and a file
reached twice is listed once, in the first form it was reached by.

``path_text`` is the text form of a path used in tables and messages: any
name the operating system gives has one, even when it is not valid UTF-8.
"""

from __future__ import annotations

import fnmatch
import os
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

VIDEO_EXTENSIONS = frozenset(
    {
        ".mp4", ".mov", ".m4v", ".mkv", ".webm", ".avi", ".mpg",
        ".mpeg", ".wmv", ".flv", ".ts", ".3gp",
    }
)  # fmt: skip


class PathNotFoundError(FileNotFoundError):
    """A path given by the user does not exist (a usage error, exit code 2)."""

    def __init__(self, path: Path) -> None:
        super().__init__(f"path does not exist: {path}")
        self.path = path


def path_text(path: str | os.PathLike[str]) -> str:
    """A path (or a message holding one) as valid text that keeps every byte of the name.

    Valid UTF-8 names are kept as they are. A name with bytes that are not UTF-8
    (Python carries them as surrogate escapes) has each such byte written as
    ``\\xNN`` and each backslash doubled, so the original bytes come back with
    ``codecs.escape_decode(text.encode())[0]``: ``b"bad\\xffname.mp4"`` is
    written ``bad\\xffname.mp4``.
    """
    text = os.fspath(path)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raw = text.encode("utf-8", "surrogateescape").replace(b"\\", b"\\\\")
        return raw.decode("utf-8", "backslashreplace")
    return text


def is_video_name(name: str, globs: Sequence[str] = ()) -> bool:
    """Whether a file name looks like a video: known extension or one of ``globs``."""
    if Path(name).suffix.lower() in VIDEO_EXTENSIONS:
        return True
    lowered = name.lower()
    return any(fnmatch.fnmatchcase(lowered, pattern.lower()) for pattern in globs)


def _walk(folder: Path, recursive: bool, globs: Sequence[str]) -> Iterator[Path]:
    """Video files under ``folder`` in sorted order, never entering a folder twice."""
    seen_dirs: set[tuple[int, int]] = set()
    stack = [folder]
    while stack:
        current = stack.pop()
        try:
            stat = current.stat()
        except OSError:
            continue
        key = (stat.st_dev, stat.st_ino)
        if key in seen_dirs:
            continue
        seen_dirs.add(key)
        try:
            entries = sorted(os.scandir(current), key=lambda entry: entry.name)
        except OSError:
            continue
        subfolders = []
        for entry in entries:
            if entry.name.startswith("."):
                continue
            path = current / entry.name
            if entry.is_dir(follow_symlinks=True):
                subfolders.append(path)
            elif entry.is_file(follow_symlinks=True) and is_video_name(entry.name, globs):
                yield path
        if recursive:
            stack.extend(reversed(subfolders))


def discover_videos(
    paths: Iterable[str | os.PathLike[str]],
    recursive: bool = True,
    globs: Sequence[str] = (),
) -> list[Path]:
    """Video files for the given files and folders, in argument order, folders sorted.

    Raises ``PathNotFoundError`` naming the first path that does not exist.
    """
    given = [Path(p) for p in paths]
    for path in given:
        if not path.exists():
            raise PathNotFoundError(path)
    found: list[Path] = []
    seen: set[str] = set()
    for path in given:
        candidates = _walk(path, recursive, globs) if path.is_dir() else iter([path])
        for candidate in candidates:
            key = os.path.realpath(candidate)
            if key not in seen:
                seen.add(key)
                found.append(candidate)
    return found
