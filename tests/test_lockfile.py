"""The output lock: a second run is refused naming the first; a dead run's lock is taken over."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest

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
        holder.send_signal(signal.SIGKILL)
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
