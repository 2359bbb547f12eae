"""One run per output: a lock file that names its owner and dies with it.

Two runs writing the same ``--out`` would remove each other's parts and mix
their rows. The first run holds an advisory lock (``flock``) on a small file
that says who it is (pid, host, start time); the kernel drops the lock when
that process ends, however it ends. A second run finds the lock held and stops
at once, naming the first. A file left behind by a run that died is taken over
when its process is gone from this host; a file from another host is only
taken over by hand, because its process cannot be checked from here.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import socket
import time
from dataclasses import dataclass
from pathlib import Path


class OutputBusyError(Exception):
    """Another run holds the output (a usage error: exit code 2)."""


@dataclass(frozen=True)
class LockOwner:
    """Who holds a lock, as written in the lock file."""

    pid: int
    host: str
    started: str  # local time, ISO 8601

    def describe(self) -> str:
        return f"pid {self.pid} on {self.host}, started {self.started}"


def _this_host() -> str:
    return socket.gethostname()


def _running(pid: int) -> bool:
    """Whether a process with this pid exists on this host."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # exists, owned by someone else
    return True


def _read_owner(fd: int) -> LockOwner | None:
    os.lseek(fd, 0, os.SEEK_SET)
    data = b""
    while chunk := os.read(fd, 4096):
        data += chunk
    try:
        fields = json.loads(data)
        return LockOwner(int(fields["pid"]), str(fields["host"]), str(fields["started"]))
    except (ValueError, KeyError, TypeError):
        return None  # empty (a run that died while writing it) or not ours


class OutputLock:
    """An exclusive lock on one output; ``note`` says when a dead run's lock was taken over."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.note: str | None = None
        self._fd: int | None = None

    def acquire(self) -> None:
        """Take the lock or raise ``OutputBusyError`` naming the run that holds it."""
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except FileExistsError:  # the folder's name is taken by a file
            folder = str(self.path.parent)
            raise NotADirectoryError(errno.ENOTDIR, os.strerror(errno.ENOTDIR), folder) from None
        while True:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                owner = _read_owner(fd)
                os.close(fd)
                who = owner.describe() if owner else "its details are not written yet"
                raise OutputBusyError(
                    f"another mmadfer run is writing to this output ({who}; lock {self.path}); "
                    "wait for it to finish or choose another --out"
                ) from None
            except OSError:
                break  # a file system without locks: the owner's pid is all there is to check
            # The holder may have removed the file between our open and our lock: start again.
            try:
                same = os.fstat(fd).st_ino == os.stat(self.path).st_ino
            except FileNotFoundError:
                same = False
            if same:
                break
            os.close(fd)
        try:
            self._check_previous(fd)
        except OutputBusyError:
            os.close(fd)
            raise
        started = time.strftime("%Y-%m-%dT%H:%M:%S%z")
        mine = {"pid": os.getpid(), "host": _this_host(), "started": started}
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(mine).encode(), 0)
        os.fsync(fd)
        self._fd = fd

    def _check_previous(self, fd: int) -> None:
        """A lock file nobody holds: take it over when its run is surely gone."""
        owner = _read_owner(fd)
        if owner is None or (owner.pid == os.getpid() and owner.host == _this_host()):
            return
        if owner.host != _this_host():
            raise OutputBusyError(
                f"the output is locked by a run on another machine ({owner.describe()}); "
                f"if that run has ended, delete {self.path} and run again"
            )
        if _running(owner.pid):  # unlocked, yet its pid lives: maybe reused, maybe not
            raise OutputBusyError(
                f"the output is locked by {owner.describe()}, which is still running; "
                f"if that is not an mmadfer run, delete {self.path} and run again"
            )
        self.note = (
            f"took over the lock of an earlier run that is no longer running ({owner.describe()})"
        )

    def release(self) -> None:
        """Remove the lock file (when it is still ours) and drop the lock."""
        if self._fd is None:
            return
        with contextlib.suppress(OSError):
            if os.stat(self.path).st_ino == os.fstat(self._fd).st_ino:
                self.path.unlink()
        os.close(self._fd)
        self._fd = None

    def __enter__(self) -> OutputLock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()
