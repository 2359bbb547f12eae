"""report, export and overlay facing hostile names and outputs: an --out that cannot be written,
formula names in spreadsheet files, escape sequences in names on the terminal."""

from __future__ import annotations

import csv
import html
import io
import os
import sys
from pathlib import Path

import pyarrow as pa
import pytest
from typer.testing import CliRunner

from mmadfer_cli.cli.app import app
from mmadfer_cli.table.schema import row_schema
from mmadfer_cli.table.writers import write_table
from tests.results_helpers import (
    CLASSES,
    VIDEO_A,
    VIDEO_B,
    VIDEO_C,
    synthetic_results,
    synthetic_rows,
)
from tests.test_overlay import overlay_inputs

runner = CliRunner()


@pytest.fixture(scope="module")
def made(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return overlay_inputs(tmp_path_factory.mktemp("overlay"))


@pytest.fixture()
def results(tmp_path: Path) -> Path:
    return synthetic_results(tmp_path, "parquet")


def _unwritable(tmp_path: Path) -> Path:
    """A folder no file can be made in: read-only for a user; as root (whom permissions do not
    stop) a path in Linux's /sys, where nobody may create anything."""
    if sys.platform == "win32":
        pytest.skip("read-only folders still take new files on Windows")
    if os.geteuid() != 0:
        folder = tmp_path / "read-only"
        folder.mkdir()
        folder.chmod(0o500)
        return folder / "out"
    if not Path("/sys/kernel").is_dir():
        pytest.skip("running as root without Linux's /sys: no folder refuses root")
    return Path("/sys/mmadfer-test-out")


def _impossible(tmp_path: Path) -> Path:
    """A path through a regular file: no system can create it."""
    (tmp_path / "a-file").write_text("x")
    return tmp_path / "a-file" / "out"


@pytest.mark.parametrize("where", [_unwritable, _impossible])
@pytest.mark.parametrize("command", ["report", "export eaf", "export srt", "export vtt", "overlay"])
def test_an_out_that_cannot_be_written_is_one_line_and_exit_2(
    results: Path,
    made: tuple[Path, Path],
    tmp_path: Path,
    command: str,
    where: object,
) -> None:
    out = where(tmp_path)  # type: ignore[operator]
    inputs = [str(p) for p in made] if command == "overlay" else [str(results)]
    target = out / "square.mp4" if command == "overlay" else out
    result = runner.invoke(app, [*command.split(), *inputs, "--out", str(target)])
    assert result.exit_code == 2, result.stderr
    assert result.exception is None or isinstance(result.exception, SystemExit)
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith(f"error: cannot write to --out {target}: ")
    assert "Traceback" not in result.stderr and result.stdout == ""
    assert not out.exists()


HOSTILE = "bad\x1b[2J\x1b]0;pwned\x07.mp4"  # clears the screen, retitles the window
SHOWN = "bad\\x1b[2J\\x1b]0;pwned\\x07.mp4"


def _hostile_table(path: Path) -> None:
    """The synthetic table with its failed video, and one other, named with escape sequences."""
    names = {VIDEO_A: f"clips/{HOSTILE}", VIDEO_C: HOSTILE}
    rows = [{**r, "video": names.get(r["video"], r["video"])} for r in synthetic_rows()]
    write_table(pa.Table.from_pylist(rows, schema=row_schema(CLASSES)), path, "parquet")


def _no_raw_controls(stderr: str) -> None:
    assert "\x1b[2J" not in stderr and "\x1b]0;" not in stderr and "\x07" not in stderr
    assert SHOWN in stderr


@pytest.mark.filterwarnings("error")  # a warning (a font's missing glyph) would print them raw
@pytest.mark.parametrize("command", ["report", "export eaf", "export srt"])
def test_escape_sequences_in_names_are_shown_escaped(tmp_path: Path, command: str) -> None:
    results = tmp_path / "results.parquet"
    _hostile_table(results)
    result = runner.invoke(app, [*command.split(), str(results), "--out", str(tmp_path / "out")])
    assert result.exit_code == 0, result.stderr
    assert "\x1b" not in result.stderr  # not a terminal: no colours either
    _no_raw_controls(result.stderr)
    if command == "report":  # its tables keep the true name (XML and subtitles cannot hold it)
        written = "".join(p.read_text(encoding="utf-8") for p in (tmp_path / "out").glob("*.*"))
        assert f"clips/{HOSTILE}" in written


def test_an_escape_sequence_in_an_error_is_shown_escaped(tmp_path: Path) -> None:
    result = runner.invoke(app, ["report", str(tmp_path / HOSTILE), "--out", str(tmp_path)])
    assert result.exit_code == 2
    _no_raw_controls(result.stderr)


FORMULAS = ['=HYPERLINK("http://x","y").mp4', "+cmd.mp4", "@SUM(1).mp4", "-2+3.mp4"]
TRIGGERS = ("=", "+", "-", "@", "\t", "\r")


def assert_no_formula_cells(text: str) -> list[list[str]]:
    """The CSV's rows, once no cell would be a formula to a spreadsheet (numbers are numbers)."""
    rows = list(csv.reader(io.StringIO(text)))
    for cell in (c for row in rows for c in row):
        if cell.startswith(TRIGGERS):
            float(cell)  # a negative number is no formula; anything else fails here
    return rows


def test_the_reports_csv_files_hold_no_formula_cells(tmp_path: Path) -> None:
    names = dict(zip([VIDEO_A, VIDEO_B, VIDEO_C], FORMULAS, strict=False))
    rows = [{**r, "video": names[r["video"]]} for r in synthetic_rows()]
    rows[-1]["error"] = "=1+1 cannot be read"
    results = tmp_path / "results.parquet"
    write_table(pa.Table.from_pylist(rows, schema=row_schema(CLASSES)), results, "parquet")
    out = tmp_path / "report"
    result = runner.invoke(app, ["report", str(results), "--out", str(out), "--quiet"])
    assert result.exit_code == 0, result.stderr
    summary = assert_no_formula_cells((out / "summary.csv").read_text(encoding="utf-8"))
    videos = assert_no_formula_cells((out / "videos.csv").read_text(encoding="utf-8"))
    assert {r[0] for r in videos[1:]} == {f"'{n}" for n in FORMULAS[:3]}
    assert "'=1+1 cannot be read" in {c for r in videos for c in r}
    assert {r[0] for r in summary[1:]} == {f"'{n}" for n in FORMULAS[:2]}
    page = (out / "index.html").read_text(encoding="utf-8")
    assert html.escape(FORMULAS[0]) in page  # the page shows the true name
