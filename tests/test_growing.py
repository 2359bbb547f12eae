"""A finished output grows: a rerun adds the videos it lacks, keeps its rows, and refuses other
settings (every output form), with the tiny model of the annotate tests."""

from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd
import pytest

from mmadfer_cli.table.read import read_results
from mmadfer_cli.table.writers import write_table
from tests.damage_helpers import small_video
from tests.results_helpers import synthetic_table
from tests.test_annotate import VIDEOS, _annotate

ONE_SEGMENT = ["--workers", "1", "--batch-size", "4", "--window", "5"]


def _folder(tmp_path: Path) -> Path:
    """Two one-segment videos a.mp4 and b.mp4 (c.mp4, another video, is added later)."""
    folder = tmp_path / "videos"
    folder.mkdir()
    for name in ("a.mp4", "b.mp4"):
        shutil.copy(VIDEOS[0], folder / name)
    return folder


def _add_third(folder: Path) -> None:
    small_video(Path(VIDEOS[1]), folder / "c.mp4", 3.0, 160, 120)


def _frame(out: Path) -> pd.DataFrame:
    return read_results(out).reset_index(drop=True)


def _files(out: Path) -> dict[str, bytes]:
    """What a run wrote: the file's bytes, or each Parquet file of a folder."""
    paths = sorted(out.glob("*.parquet")) if out.is_dir() else [out]
    return {p.name: p.read_bytes() for p in paths}


@pytest.mark.parametrize("out_name", ["r.parquet", "r.csv", "r.jsonl", "results/"])
def test_a_finished_output_grows_by_the_new_videos_only(
    home: Path, tmp_path: Path, out_name: str
) -> None:
    folder = _folder(tmp_path)
    out = tmp_path / out_name
    code, _, err = _annotate(home, str(folder), "--out", str(out), *ONE_SEGMENT)
    assert code == 0, err
    first = _frame(out)
    first_files = _files(out)

    changed = [*ONE_SEGMENT[:-1], "4"]  # --window 4
    code, _, err = _annotate(home, str(folder), "--out", str(out), *changed)
    assert code == 2 and "window" in err and "--overwrite" in err, err
    assert _files(out) == first_files

    _add_third(folder)
    code, _, err = _annotate(home, str(folder), "--out", str(out), *ONE_SEGMENT)
    assert code == 0, err
    assert "1 new video, 2 already done" in " ".join(err.split())
    grown = _frame(out)
    assert list(dict.fromkeys(grown["video"])) == [
        str(folder / n) for n in ("a.mp4", "b.mp4", "c.mp4")
    ]
    pd.testing.assert_frame_equal(grown.iloc[: len(first)], first)  # the rows it had, unchanged
    if out.is_dir():
        assert all(_files(out)[name] == data for name, data in first_files.items())
    elif out.suffix != ".parquet":  # the text of the first run's rows is kept to the byte
        (before,) = first_files.values()
        assert out.read_bytes().startswith(before)

    written = [out] if out.is_file() else sorted(out.glob("*.parquet"))
    stamps = {p: p.stat().st_mtime_ns for p in written}
    code, _, err = _annotate(home, str(folder), "--out", str(out), *ONE_SEGMENT)
    assert code == 0 and "Nothing to do" in err, err
    assert {p: p.stat().st_mtime_ns for p in stamps} == stamps  # nothing new: not rewritten

    full = tmp_path / f"full{out.suffix}"
    code, _, err = _annotate(home, str(folder), "--out", f"{full}{'/' if out.is_dir() else ''}",
                             *ONE_SEGMENT)  # fmt: skip
    assert code == 0, err
    pd.testing.assert_frame_equal(grown, _frame(full), rtol=1e-6, atol=1e-5)


def test_a_text_output_that_records_no_settings_is_refused(home: Path, tmp_path: Path) -> None:
    out = tmp_path / "r.csv"
    write_table(synthetic_table(), out, "csv")
    before = out.read_bytes()
    code, _, err = _annotate(home, VIDEOS[0], "--out", str(out), *ONE_SEGMENT)
    assert code == 2 and "cannot grow" in err and "--overwrite" in err, err
    assert out.read_bytes() == before
    code, _, err = _annotate(home, VIDEOS[0], "--out", str(out), *ONE_SEGMENT, "--overwrite")
    assert code == 0, err
    assert set(read_results(out)["video"]) == {VIDEOS[0]}
