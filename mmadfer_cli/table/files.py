"""Putting a finished file in place, on every platform.

Results, exports and overlays are written under a temporary name and renamed
over the target, so that no reader ever sees half a file. On Windows that
rename fails while another program has the target open: Excel keeps the CSV it
shows open, a media player the video, and a virus scanner or a sync client
holds a new file for a moment. The rename is tried again for a while (a
scanner lets go), then the error says which file is held and why.
"""

from __future__ import annotations

import errno
import os
import time
from pathlib import Path

RETRY_S = 5.0  # how long a held target is waited for
_FIRST_PAUSE_S, _LONGEST_PAUSE_S = 0.05, 0.5


class FileHeldError(PermissionError):
    """The target stayed held by another program (or read-only); the message names it."""

    def __str__(self) -> str:
        return str(self.strerror)


def replace(src: Path, dst: Path) -> None:
    """``os.replace(src, dst)``, tried again for ``RETRY_S`` seconds while ``dst`` is held,
    then ``FileHeldError`` naming ``dst`` (``src`` is left for the caller to remove)."""
    deadline = time.monotonic() + RETRY_S
    pause = _FIRST_PAUSE_S
    while True:
        try:
            os.replace(src, dst)
            return
        except PermissionError as exc:
            if time.monotonic() >= deadline:
                raise FileHeldError(
                    exc.errno or errno.EACCES,
                    f"cannot replace {dst}: another program may have it open (Excel, for one, "
                    "locks the files it shows), or it is read-only; close it there and try again",
                ) from exc
        time.sleep(pause)
        pause = min(pause * 2, _LONGEST_PAUSE_S)
