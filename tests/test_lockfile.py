"""The output lock: a second run is refused naming the first; a dead run's lock is taken over."""

from __future__ import annotations

import ctypes
import errno
import json
import os
import socket
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from mmadfer_cli.table import lock as table_lock
from mmadfer_cli.table.lock import OutputBusyError, OutputLock
from tests.conftest import REPO

HOLD = (
    "import sys, time; from pathlib import Path; from mmadfer_cli.table.lock import OutputLock; "
    "lock = OutputLock(Path(sys.argv[1])); lock.acquire(); print('held', flush=True); time.sleep(60)"
)


def test_a_second_process_is_refused_then_takes_over_when_the_first_dies(tmp_path: Path) -> None:
    path = tmp_path / "out.parquet.lock"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(path)], stdout=subprocess.PIPE, text=True, env=env
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline() == "held\n"
        with pytest.raises(OutputBusyError) as refused:
            OutputLock(path).acquire()
        message = str(refused.value)
        assert f"pid {holder.pid} on {socket.gethostname()}, started " in message
        assert "another mmadfer run" in message
    finally:
        holder.kill()
        holder.wait()
    assert json.loads(path.read_text())["pid"] == holder.pid  # left behind by the dead run
    with OutputLock(path) as lock:
        assert lock.note is not None and f"pid {holder.pid}" in lock.note
        assert json.loads(path.read_text())["pid"] == os.getpid()
    assert not path.exists()


def test_a_lock_file_of_a_dead_pid_is_taken_over(tmp_path: Path) -> None:
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    path = tmp_path / ".mmadfer.lock"
    owner = {"pid": dead.pid, "host": socket.gethostname(), "started": "2024-01-01T00:00:00"}
    path.write_text(json.dumps(owner))
    with OutputLock(path) as lock:
        assert lock.note is not None and "no longer running" in lock.note


def test_a_lock_file_from_another_host_is_not_taken_over(tmp_path: Path) -> None:
    path = tmp_path / "r.csv.lock"
    owner = {"pid": 1234, "host": "other-node", "started": "2024-01-01T00:00:00"}
    path.write_text(json.dumps(owner))
    with pytest.raises(OutputBusyError, match=f"other-node.*delete {path}"):
        OutputLock(path).acquire()
    assert json.loads(path.read_text()) == owner


def test_release_removes_the_file_and_the_lock_can_be_taken_again(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "r.jsonl.lock"
    with OutputLock(path) as lock:
        assert lock.note is None and path.exists()
    assert not path.exists()
    with OutputLock(path) as lock:
        assert lock.note is None


def test_the_owner_is_named_where_the_locked_byte_cannot_be_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Windows refuses other handles reads of the byte its lock covers (byte 0)."""
    path = tmp_path / "out.csv.lock"
    with OutputLock(path):
        plain_read = os.read

        def windows_read(fd: int, size: int) -> bytes:
            if os.lseek(fd, 0, os.SEEK_CUR) == 0:
                raise PermissionError(errno.EACCES, "Permission denied")
            return plain_read(fd, size)

        monkeypatch.setattr(os, "read", windows_read)
        with pytest.raises(OutputBusyError, match=f"pid {os.getpid()} on {socket.gethostname()}"):
            OutputLock(path).acquire()


def _refuse_unlink(monkeypatch: pytest.MonkeyPatch, times: int) -> list[Path]:
    """Path.unlink refused ``times`` times, as Windows refuses to remove an open file."""
    plain_unlink, refused = Path.unlink, []

    def unlink(self: Path, missing_ok: bool = False) -> None:
        if len(refused) < times:
            refused.append(self)
            raise PermissionError(errno.EACCES, "The file is being used by another process")
        plain_unlink(self, missing_ok)

    monkeypatch.setattr(Path, "unlink", unlink)
    return refused


def test_release_removes_the_file_after_closing_it_where_an_open_file_stays(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "out.csv.lock"
    with OutputLock(path):
        refused = _refuse_unlink(monkeypatch, times=1)
    assert refused == [path] and not path.exists()


def test_a_lock_file_a_reader_keeps_after_the_release_names_no_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "out.csv.lock"
    with OutputLock(path):
        _refuse_unlink(monkeypatch, times=2)
    assert path.read_bytes() == b""  # a later run on this host takes it without a word


class _FakeKernel32:
    """OpenProcess and WaitForSingleObject over a table of pids: None no such process, "denied"
    not ours to open, else whether it has ended."""

    def __init__(self, processes: dict[int, bool | str]) -> None:
        self.error = 0
        self.closed: list[int] = []

        def open_process(access: int, inherit: bool, pid: int) -> int:
            state = processes.get(pid)
            if state is None or state == "denied":
                self.error = 87 if state is None else 5
                return 0
            return 1000 + pid

        def wait(handle: ctypes.c_void_p, ms: int) -> int:
            assert ms == 0 and handle.value is not None
            return 0 if processes[handle.value - 1000] is True else 258  # signalled, timeout

        self.OpenProcess: Callable[..., int] = open_process
        self.WaitForSingleObject = wait
        self.CloseHandle = lambda handle: self.closed.append(handle.value)


def test_liveness_on_windows_asks_the_process_not_a_signal(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    kernel32 = _FakeKernel32({10: False, 11: True, 12: "denied"})
    monkeypatch.setattr(ctypes, "WinDLL", lambda name, use_last_error: kernel32, raising=False)
    monkeypatch.setattr(ctypes, "get_last_error", lambda: kernel32.error, raising=False)
    monkeypatch.setattr(sys, "platform", "win32")
    monkeypatch.setattr(os, "kill", lambda *args: pytest.fail("os.kill(pid, 0) is CTRL_C_EVENT"))
    assert table_lock._running(10)  # running
    assert not table_lock._running(11)  # ended, its handle still held somewhere
    assert table_lock._running(12)  # another user's: exists
    assert not table_lock._running(13)  # no such process
    assert kernel32.closed == [1010, 1011]
