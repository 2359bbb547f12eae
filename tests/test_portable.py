"""Annotating needs no module that some platforms lack: the same rows without them (issue 22).

decord has no wheels for macOS or Linux aarch64, and Windows has no ``fcntl``; a run in an
interpreter where importing either fails must give the rows of a normal run, on files that once
needed decord or its fallback.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from tests.conftest import REPO, SAMPLE_VIDEOS, require_tool
from tests.results_helpers import assert_same_rows

SINGLE = SAMPLE_VIDEOS / "single_speaker.mp4"


def annotate_without(blocked: list[str], home: Path, *args: str) -> subprocess.CompletedProcess:
    """``mmadfer annotate ARGS`` in a fresh interpreter where importing any of ``blocked``
    fails, as on a platform without them (a ``None`` in ``sys.modules`` refuses the import)."""
    code = (
        f"import runpy, sys; sys.modules.update(dict.fromkeys({blocked!r})); "
        "runpy.run_module('mmadfer_cli', run_name='__main__')"
    )
    env = {**os.environ, "MMADFER_HOME": str(home)}
    cmd = [sys.executable, "-c", code, "annotate", *args]
    return subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=600)


@pytest.fixture(scope="module")
def assorted(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder of short awkward files: AV1 without sound, MKV with several faces, a rotated
    H.264, and an MP4 cut short."""
    folder = tmp_path_factory.mktemp("assorted")
    ffmpeg = [require_tool("ffmpeg"), "-v", "error", "-y"]
    for name, args in {
        "av1_silent.mp4": ["-i", str(SINGLE), "-t", "2", "-an", "-c:v", "libaom-av1",
                           "-cpu-used", "8"],
        "group.mkv": ["-i", str(SAMPLE_VIDEOS / "group_conversation.mp4"), "-t", "3", "-c",
                      "copy"],
        "plain.mp4": ["-i", str(SINGLE), "-t", "2", "-c:v", "libx264", "-c:a", "copy"],
    }.items():  # fmt: skip
        subprocess.run([*ffmpeg, *args, str(folder / name)], check=True)
    plain = folder / "plain.mp4"
    rotate = ["-i", str(plain), "-c", "copy", "-metadata:s:v:0", "rotate=90"]
    subprocess.run([*ffmpeg, *rotate, str(folder / "rotated.mp4")], check=True)
    plain.unlink()
    (folder / "cut.mp4").write_bytes(SINGLE.read_bytes()[:100_000])  # 3 of its 8 seconds
    return folder


@pytest.mark.slow
def test_rows_do_not_depend_on_decord_or_fcntl(home: Path, tmp_path: Path, assorted: Path) -> None:
    runs = {}
    for blocked in ([], ["decord", "fcntl"]):  # fcntl: as on Windows
        out = tmp_path / f"without-{'-'.join(blocked) or 'nothing'}.parquet"
        done = annotate_without(blocked, home, str(assorted), "--out", str(out), "--workers", "1")
        assert done.returncode == 1, done.stderr  # the cut file's missing end: error rows
        runs[tuple(blocked)] = pq.read_table(out)
    normal = runs[()]
    assert set(normal["video"].to_pylist()) == {
        str(assorted / name) for name in ("av1_silent.mp4", "group.mkv", "rotated.mp4", "cut.mp4")
    }
    statuses = set(normal["status"].to_pylist())
    assert {"ok", "error"} <= statuses
    assert_same_rows(normal, runs[("decord", "fcntl")])
