"""One run per output: a lock file that names its owner and dies with it.

Two runs writing the same ``--out`` would remove each other's parts and mix
their rows. The first run holds an operating-system lock (filelock's
``lock_descriptor``: ``flock`` on POSIX, ``LockFileEx`` on byte 0 on Windows)
on a small file that says who it is (pid, host, start time); the system drops
the lock when that process ends, however it ends. A second run finds the lock
held and stops at once, naming the first. A file left behind by a run that died
is taken over when its process is gone from this host; a file from another host
is only taken over by hand, because its process cannot be checked from here.

Windows keeps other processes from reading a locked byte, so the owner's
details start after byte 0 (a newline, which JSON skips).
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import socket
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from filelock import lock_descriptor

_BINARY = getattr(os, "O_BINARY", 0)  # Windows would otherwise translate line ends
_PAD = b"\n"  # byte 0, the one Windows' lock keeps others from reading
# Windows' OpenProcess and WaitForSingleObject (liveness without a signal).
_SYNCHRONIZE = 0x00100000
_ERROR_INVALID_PARAMETER = 87  # OpenProcess: no process has this id
_WAIT_OBJECT_0 = 0  # the process object is signalled: the process has ended


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
    if sys.platform == "win32":
        return _running_on_windows(pid)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # exists, owned by someone else
    return True


def _running_on_windows(pid: int) -> bool:
    """Windows has no signal 0 (``os.kill(pid, 0)`` sends CTRL_C_EVENT): open the process and
    ask whether it has ended. A pid that names no process cannot be opened (invalid
    parameter); one that cannot be opened for another reason (access denied) exists."""
    import ctypes

    kernel32 = ctypes.WinDLL("kernel32", use_last_error=True)  # type: ignore[attr-defined]
    kernel32.OpenProcess.restype = ctypes.c_void_p  # a handle is pointer-sized
    handle = kernel32.OpenProcess(_SYNCHRONIZE, False, pid)
    if not handle:
        return ctypes.get_last_error() != _ERROR_INVALID_PARAMETER  # type: ignore[attr-defined]
    try:
        return kernel32.WaitForSingleObject(ctypes.c_void_p(handle), 0) != _WAIT_OBJECT_0
    finally:
        kernel32.CloseHandle(ctypes.c_void_p(handle))


def _read_from(fd: int, offset: int) -> bytes:
    os.lseek(fd, offset, os.SEEK_SET)
    data = b""
    while chunk := os.read(fd, 4096):
        data += chunk
    return data


def _read_owner(fd: int) -> LockOwner | None:
    try:
        data = _read_from(fd, 0)
    except OSError:  # Windows: byte 0 is locked by the holder; its details follow it
        data = _read_from(fd, len(_PAD))
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
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | _BINARY, 0o644)
            try:
                locked = lock_descriptor(fd, blocking=False)
            except OSError:
                break  # a file system without locks: the owner's pid is all there is to check
            if not locked:
                owner = _read_owner(fd)
                os.close(fd)
                who = owner.describe() if owner else "its details are not written yet"
                raise OutputBusyError(
                    f"another mmadfer run is writing to this output ({who}; lock {self.path}); "
                    "wait for it to finish or choose another --out"
                )
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
        os.lseek(fd, 0, os.SEEK_SET)
        data = memoryview(_PAD + json.dumps(mine).encode())
        while data:
            data = data[os.write(fd, data) :]
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
        """Remove the lock file (when it is still ours) and drop the lock. On POSIX the file
        goes while still locked, so that nobody can lock a file that is gone; Windows removes
        no open file, so there it goes after the close, and it is emptied first, so that a
        file kept by someone reading it at that moment names no one."""
        if self._fd is None:
            return
        fd, self._fd = self._fd, None
        retry = False
        with contextlib.suppress(OSError):
            if os.stat(self.path).st_ino == os.fstat(fd).st_ino:
                os.ftruncate(fd, 0)
                try:
                    self.path.unlink()
                except PermissionError:
                    retry = True
        os.close(fd)
        if retry:
            with contextlib.suppress(OSError):
                self.path.unlink()

    def __enter__(self) -> OutputLock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()
