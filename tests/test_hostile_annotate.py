"""``mmadfer annotate`` facing hostile file names: escape sequences reach no terminal, formula
names reach no spreadsheet cell when asked, and the table keeps the true names."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq

from tests.conftest import REPO
from tests.test_annotate import VIDEOS

ESCAPES = "\x1b[2J\x1b]0;pwned\x07"  # clears the screen, retitles the window
SHOWN = "\\x1b[2J\\x1b]0;pwned\\x07"
ONE_SEGMENT = ["--workers", "1", "--batch-size", "4", "--window", "5"]


def test_escape_sequences_in_names_reach_the_terminal_escaped(home: Path, tmp_path: Path) -> None:
    folder = tmp_path / "videos"
    folder.mkdir()
    shutil.copy(VIDEOS[0], folder / f"a{ESCAPES}.mp4")
    (folder / f"b{ESCAPES}.mp4").write_bytes(b"not a video\n" * 20)
    out = tmp_path / "r.parquet"
    cmd = [sys.executable, "-m", "mmadfer_cli", "annotate", str(folder), "--out", str(out),
           *ONE_SEGMENT]  # fmt: skip
    # A terminal 200 columns wide, as far as rich can tell: the progress line is drawn.
    env = {**os.environ, "MMADFER_HOME": str(home), "FORCE_COLOR": "1", "COLUMNS": "200"}
    done = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=240)
    assert done.returncode == 1, done.stderr
    assert "\x1b[2J" not in done.stderr and "\x1b]0;" not in done.stderr
    assert "\x07" not in done.stderr
    assert f"a{SHOWN}.mp4" in done.stderr  # the progress line's current file
    assert f"b{SHOWN}.mp4" in done.stderr  # the failure list
    names = set(pq.read_table(out)["video"].to_pylist())
    assert names == {str(folder / f"a{ESCAPES}.mp4"), str(folder / f"b{ESCAPES}.mp4")}
