"""Turn the paths given on the command line into an ordered list of video files.

Folders are walked (recursively by default) and their video files picked by
extension or by extra ``--glob`` patterns; files named explicitly are always
kept, because the user asked for them (a named pipe or a device among them gets
an error row: ``not_regular`` names what it is, from ``os.stat`` alone, since
opening a pipe blocks). Hidden entries inside folders are skipped, and so are
entries that are not regular files (pipes, sockets, devices, broken links) and
folders that cannot be read: those are reported, so that nothing is left out
silently. Symlinked folders are followed once (loops are safe), and a file
reached twice is listed once, in the first form it was reached by.

``path_text`` is the text form of a path used in tables and messages: any
name the operating system gives has one, even when it is not valid UTF-8.
``terminal_text`` is what of it may reach a terminal: a file name can hold
escape sequences that clear the screen or retitle the window.
"""

from __future__ import annotations

import fnmatch
import os
import stat
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

# Containers FFmpeg reads, as cameras, phones, camcorders (AVCHD .mts/.m2ts, JVC/Panasonic
# .mod/.tod, broadcast .mxf), DVDs (.vob) and the web write them.
VIDEO_EXTENSIONS = frozenset(
    {
        ".mp4", ".mov", ".m4v", ".mkv", ".webm", ".avi", ".mpg", ".mpeg", ".mpe", ".m2v",
        ".wmv", ".asf", ".flv", ".f4v", ".ts", ".mts", ".m2ts", ".m2t", ".mod", ".tod",
        ".3gp", ".3g2", ".mxf", ".vob", ".ogv", ".dv", ".divx",
    }
)  # fmt: skip

_KINDS = (
    (stat.S_ISDIR, "folder"),
    (stat.S_ISFIFO, "named pipe"),
    (stat.S_ISSOCK, "socket"),
    (stat.S_ISCHR, "character device"),
    (stat.S_ISBLK, "block device"),
)


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


def not_regular(path: str | os.PathLike[str]) -> str | None:
    """What ``path`` is when it is not a regular file (``named pipe``, ``broken link``), from its
    status alone: opening a pipe to look would wait for a writer for ever. None: a regular
    file (or a path that does not exist, which the caller reports as missing)."""
    try:
        mode = os.stat(path).st_mode
    except OSError:
        return "broken link" if os.path.islink(path) else None
    if stat.S_ISREG(mode):
        return None
    return next((kind for test, kind in _KINDS if test(mode)), "special file")


_NAMED_CONTROLS = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}
_CONTROLS = {
    code: _NAMED_CONTROLS.get(chr(code), f"\\x{code:02x}")
    for code in [*range(0x20), *range(0x7F, 0xA0)]
}  # C0, DEL and C1: what a terminal acts on instead of showing


def terminal_text(text: str) -> str:
    """``text`` (a name, or a message holding one) safe to print: control characters written as
    ``\\x1b``, ``\\n``..., so that a file name cannot move the cursor, clear the screen, retitle
    the window or split a line. Files and tables keep the true name; only terminals get this."""
    return path_text(text).translate(_CONTROLS)


def is_video_name(name: str, globs: Sequence[str] = ()) -> bool:
    """Whether a file name looks like a video: known extension or one of ``globs``."""
    if Path(name).suffix.lower() in VIDEO_EXTENSIONS:
        return True
    lowered = name.lower()
    return any(fnmatch.fnmatchcase(lowered, pattern.lower()) for pattern in globs)


Skipped = list[tuple[Path, str]]
"""Folder entries left out because they are not regular files or cannot be read, each with what
it is (``named pipe``): reported, unlike ordinary files that are not videos."""


def _walk(folder: Path, recursive: bool, globs: Sequence[str], skipped: Skipped) -> Iterator[Path]:
    """Video files under ``folder`` in sorted order, never entering a folder twice; what is
    not a regular file, and folders that cannot be read, are added to ``skipped``."""
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
            skipped.append((current, "unreadable folder"))
            continue
        subfolders = []
        for entry in entries:
            if entry.name.startswith("."):
                continue
            path = current / entry.name
            if entry.is_dir(follow_symlinks=True):
                subfolders.append(path)
            elif not entry.is_file(follow_symlinks=True):
                skipped.append((path, not_regular(path) or "special file"))
            elif is_video_name(entry.name, globs):
                yield path
        if recursive:
            stack.extend(reversed(subfolders))


def discover_videos(
    paths: Iterable[str | os.PathLike[str]],
    recursive: bool = True,
    globs: Sequence[str] = (),
    skipped: Skipped | None = None,
) -> list[Path]:
    """Video files for the given files and folders, in argument order, folders sorted; what the
    folder walks left out is added to ``skipped``.

    Raises ``PathNotFoundError`` naming the first path that does not exist.
    """
    skipped = skipped if skipped is not None else []
    given = [Path(p) for p in paths]
    for path in given:
        if not path.exists():
            raise PathNotFoundError(path)
    found: list[Path] = []
    seen: set[str] = set()
    for path in given:
        candidates = _walk(path, recursive, globs, skipped) if path.is_dir() else iter([path])
        for candidate in candidates:
            key = os.path.realpath(candidate)
            if key not in seen:
                seen.add(key)
                found.append(candidate)
    return found
