"""``mmadfer annotate --engine ray`` on a local Ray cluster of 2 CPUs: the local engine's rows,
a killed Ray worker's chunk retried, resume after the driver was killed, and Ray missing."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from mmadfer_cli.cli.app import app
from tests.conftest import REPO, SAMPLE_VIDEOS
from tests.results_helpers import assert_same_rows

# --chunk 3: the 8-second videos run as several chunks, so stitching and retries are exercised.
FLAGS = ["--precision", "float32", "--chunk", "3", "--batch-size", "4"]
runner = CliRunner()


def test_engine_ray_without_ray_says_how_to_install(
    home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("mmadfer_cli.run.engines.ray.connect.ray_installed", lambda: False)
    args = ["annotate", str(SAMPLE_VIDEOS / "single_speaker.mp4"), "--out", str(tmp_path / "r.csv")]
    result = runner.invoke(app, [*args, "--engine", "ray"], env={"MMADFER_HOME": str(home)})
    assert result.exit_code == 2
    assert 'pip install -e ".[ray]"' in result.stderr and "Traceback" not in result.stderr


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """A local Ray head with 2 CPUs: its address and its dashboard (for the state API). Ray
    2.60's ``ray start`` asks for a token on this machine: its clients (the command, the state
    API) then need ``RAY_AUTH_MODE=token``; the token is in ~/.ray/auth_token."""
    mode = os.environ.get("RAY_AUTH_MODE")
    os.environ["RAY_AUTH_MODE"] = "token"  # before Ray is imported here: it reads it then
    pytest.importorskip("ray")
    port, dashboard = _free_port(), _free_port()
    ray = [sys.executable, "-m", "ray.scripts.scripts"]
    start = [*ray, "start", "--head", "--num-cpus", "2", "--num-gpus", "0", "--port", str(port),
             "--dashboard-port", str(dashboard), "--disable-usage-stats"]  # fmt: skip
    # A token for the cluster and its clients (made once, in ~/.ray/auth_token, where none is).
    subprocess.run([*ray, "get-auth-token", "--generate"], check=True, capture_output=True)
    subprocess.run(start, check=True, capture_output=True, timeout=120)
    try:
        yield {"address": f"127.0.0.1:{port}", "dashboard": f"http://127.0.0.1:{dashboard}"}
    finally:
        subprocess.run([*ray, "stop", "--force"], capture_output=True, timeout=120)
        if mode is None:
            del os.environ["RAY_AUTH_MODE"]
        else:
            os.environ["RAY_AUTH_MODE"] = mode


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two good videos and three broken files (empty, not a video, cut short)."""
    root = tmp_path_factory.mktemp("videos")
    (root / "a_speaker.mp4").symlink_to(SAMPLE_VIDEOS / "single_speaker.mp4")
    (root / "b_astronaut.mp4").symlink_to(SAMPLE_VIDEOS / "silent_astronaut.mp4")
    (root / "c_empty.mp4").write_bytes(b"")
    (root / "d_text.mp4").write_text("this is not a video\n" * 50)
    data = (SAMPLE_VIDEOS / "single_speaker.mp4").read_bytes()
    (root / "e_cut_short.mp4").write_bytes(data[: len(data) * 2 // 3])
    return root


def _command(home: Path, folder: Path, out: Path, *extra: str) -> tuple[list[str], dict]:
    cmd = [sys.executable, "-m", "mmadfer_cli", "annotate", str(folder), "--out", str(out),
           *FLAGS, *extra]  # fmt: skip
    return cmd, {**os.environ, "MMADFER_HOME": str(home)}


def _run(home: Path, folder: Path, out: Path, *extra: str) -> subprocess.CompletedProcess:
    cmd, env = _command(home, folder, out, *extra)
    return subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=600)


@pytest.fixture(scope="module")
def local(home: Path, folder: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("local") / "rows.parquet"
    done = _run(home, folder, out)
    assert done.returncode == 1, done.stderr
    return out


def _rows(path: Path):
    key = [("video", "ascending"), ("segment", "ascending"), ("track_id", "ascending")]
    return pq.read_table(path).replace_schema_metadata(None).sort_by(key)


def test_ray_gives_the_local_engines_rows_and_error_rows(
    home: Path, folder: Path, local: Path, cluster: dict[str, str], tmp_path: Path
) -> None:
    out = tmp_path / "rows.parquet"
    done = _run(home, folder, out, "--engine", "ray", "--ray-address", cluster["address"])
    assert done.returncode == 1 and "Traceback" not in done.stderr, done.stderr
    assert "2 videos failed" in done.stderr and "object store peak" in done.stderr
    assert "Damaged stretches in 1 video" in done.stderr
    # The summary counts the model's batches (at most --batch-size 4 clips each).
    per_batch = re.search(r"in \d+ batches \(([\d.]+) clips per batch", done.stderr)
    assert per_batch and 0 < float(per_batch[1]) <= 4, done.stderr
    assert_same_rows(_rows(out), _rows(local))
    assert pq.read_metadata(out).metadata == pq.read_metadata(local).metadata


def test_a_killed_worker_has_its_chunk_run_again(
    home: Path, folder: Path, local: Path, cluster: dict[str, str], tmp_path: Path
) -> None:
    from ray.util.state import list_tasks

    out = tmp_path / "rows.parquet"
    cmd, env = _command(home, folder, out, "--engine", "ray", "--ray-address", cluster["address"])
    proc = subprocess.Popen(cmd, cwd=REPO, env=env, stderr=subprocess.PIPE, text=True)
    killed = None
    deadline = time.monotonic() + 240
    while killed is None and proc.poll() is None and time.monotonic() < deadline:
        running = list_tasks(
            address=cluster["dashboard"],
            filters=[("func_or_class_name", "=", "chunk_task"), ("state", "=", "RUNNING")],
            raise_on_missing_output=False,
        )
        pids = [t.worker_pid for t in running if t.worker_pid]
        if pids:
            killed = pids[0]
            os.kill(killed, signal.SIGKILL)
        time.sleep(0.2)
    _, err = proc.communicate(timeout=600)
    assert killed is not None, "no chunk was seen running"
    assert proc.returncode == 1 and "Traceback" not in err, err
    assert_same_rows(_rows(out), _rows(local))


def test_a_killed_driver_resumes_to_the_same_rows(
    home: Path, folder: Path, local: Path, cluster: dict[str, str], tmp_path: Path
) -> None:
    out = tmp_path / "rows.parquet"
    parts = tmp_path / "rows.parquet.parts"
    cmd, env = _command(home, folder, out, "--engine", "ray", "--ray-address", cluster["address"])
    proc = subprocess.Popen(cmd, cwd=REPO, env=env, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 240
    while not list(parts.glob("*.parquet")) and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not out.exists(), "the run finished before it could be killed"
    done = _run(home, folder, out, "--engine", "ray", "--ray-address", cluster["address"])
    assert done.returncode == 1, done.stderr
    assert "already done by an earlier run" in done.stderr
    assert_same_rows(_rows(out), _rows(local))


def test_doctor_checks_every_node(home: Path, cluster: dict[str, str]) -> None:
    cmd = [sys.executable, "-m", "mmadfer_cli", "doctor", "--engine", "ray",
           "--ray-address", cluster["address"]]  # fmt: skip
    env = {**os.environ, "MMADFER_HOME": str(home), "COLUMNS": "200"}
    done = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "1 node, 2 CPUs, 0 GPUs" in done.stdout
    assert "tiny model ran, read 3 frames of single_speaker.mp4" in done.stdout


def test_a_node_that_cannot_read_a_video_names_itself(tmp_path: Path) -> None:
    # The videos must be on storage every node mounts; a node without them says which it is.
    import socket as sock

    from mmadfer_cli.run.clips import ClipSettings
    from mmadfer_cli.run.engines.ray.remote import plan_task

    plan = plan_task(str(tmp_path / "not_mounted_here.mp4"), ClipSettings(), 60.0)
    assert plan.chunks == 0 and plan.failure is not None and plan.failure.exception is None
    assert plan.failure.message.endswith(f"(on node {sock.gethostname()})")
    assert "not_mounted_here.mp4" in plan.failure.message
