"""``mmadfer annotate`` facing hostile file names: escape sequences reach no terminal, formula
names reach no spreadsheet cell when asked, and the table keeps the true names."""

from __future__ import annotations

import csv
import io
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from mmadfer_cli.table.read import read_results
from tests.conftest import REPO
from tests.test_annotate import VIDEOS, _annotate
from tests.test_hostile_outputs import assert_no_formula_cells

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


# As file names (no slash; quotes are not allowed in Windows names).
FORMULA_FILES = ['=HYPERLINK("x","y").mp4', "+cmd.mp4", "@SUM(1).mp4"]


@pytest.mark.skipif(sys.platform == "win32", reason="Windows file names cannot hold quotes")
def test_csv_for_spreadsheets_neutralises_formula_names_and_reads_back_true(
    home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)  # relative names: the video column starts with them
    for name in FORMULA_FILES:
        shutil.copy(VIDEOS[0], tmp_path / name)
    code, plain, err = _annotate(home, *FORMULA_FILES, "--out", "-", *ONE_SEGMENT)
    assert code == 0, err
    assert [r[0] for r in csv.reader(io.StringIO(plain))][1:] == FORMULA_FILES  # lossless

    code, safe, err = _annotate(home, *FORMULA_FILES, "--out", "-", "--csv-for-spreadsheets",
                                *ONE_SEGMENT)  # fmt: skip
    assert code == 0, err
    rows = assert_no_formula_cells(safe)
    assert [r[0] for r in rows[1:]] == [f"'{n}" for n in FORMULA_FILES]

    out = tmp_path / "r.csv"
    args = [*FORMULA_FILES, "--out", str(out), "--csv-for-spreadsheets", *ONE_SEGMENT]
    code, _, err = _annotate(home, *args)
    assert code == 0, err
    assert out.read_text(encoding="utf-8") == safe
    assert list(read_results(out)["video"]) == FORMULA_FILES  # its run file says: quotes added
    code, _, err = _annotate(home, *args)  # read back for growing: the same names, nothing to do
    assert code == 0 and "Nothing to do" in err, err

    code, _, err = _annotate(home, FORMULA_FILES[1], "--out", str(tmp_path / "r.parquet"),
                             "--csv-for-spreadsheets", *ONE_SEGMENT)  # fmt: skip
    assert code == 2 and "--csv-for-spreadsheets needs a CSV --out" in err
