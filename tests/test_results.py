"""Reading result tables back in every form ``annotate`` writes, and refusing what is not one."""

from __future__ import annotations

import json
import re
from pathlib import Path, PurePath

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from mmadfer_cli.reporting.filenames import video_stems
from mmadfer_cli.table.read import (
    ResultsError,
    class_names,
    person_column,
    read_results,
    table_frame,
)
from mmadfer_cli.table.schema import METADATA_KEY
from mmadfer_cli.table.writers import write_table
from tests.results_helpers import CLASSES, VIDEO_A, VIDEO_B, VIDEO_C, synthetic_table

META = {"model": {"name": "tiny", "class_names": list(CLASSES)}, "settings": {"window_s": 3.0}}


def _with_meta(table: pa.Table) -> pa.Table:
    return table.replace_schema_metadata({METADATA_KEY: json.dumps(META).encode()})


@pytest.mark.parametrize("fmt", ["parquet", "csv", "jsonl"])
def test_every_file_form_reads_back_the_same_typed_rows(tmp_path: Path, fmt: str) -> None:
    table = _with_meta(synthetic_table())
    path = tmp_path / f"results.{fmt}"
    write_table(table, path, fmt)  # type: ignore[arg-type]
    df = read_results(path)
    assert list(df.columns) == table.schema.names
    assert class_names(df) == list(CLASSES) and person_column(df) == "track_id"
    assert str(df["track_id"].dtype) == "Int64" and str(df["has_audio"].dtype) == "boolean"
    assert str(df["prob_happiness"].dtype) == "float32"
    assert df["video"].tolist() == table["video"].to_pylist()  # odd characters survive
    assert df["track_id"].isna().tolist() == [v is None for v in table["track_id"].to_pylist()]
    assert df.loc[df["status"] == "error", "error"].tolist() == ["not a video"]
    pd.testing.assert_series_equal(
        df["prob_sadness"], pd.Series(table["prob_sadness"].to_pylist(), dtype="float32"),
        check_names=False,
    )  # fmt: skip
    assert df.attrs.get("mmadfer", {}) == (META if fmt == "parquet" else {})


def test_a_results_directory_reads_its_result_files_only(tmp_path: Path) -> None:
    table = _with_meta(synthetic_table())
    videos = table["video"].to_pylist()
    for i, video in enumerate(dict.fromkeys(videos)):
        part = table.filter(pa.compute.equal(table["video"], video))
        pq.write_table(part, tmp_path / f"v{i}.parquet")
    pq.write_table(pa.table({"x": [1]}), tmp_path / "foreign.parquet")  # not ours: ignored
    (tmp_path / "notes.txt").write_text("hello")
    df = read_results(tmp_path)
    assert sorted(df["video"].unique()) == sorted({VIDEO_A, VIDEO_B, VIDEO_C})
    assert len(df) == table.num_rows


def test_person_id_is_the_person_when_present(tmp_path: Path) -> None:
    table = synthetic_table()
    assert person_column(table_frame(table)) == "track_id"  # --no-reid: person_id left empty
    column = table.schema.get_field_index("person_id")
    table = table.set_column(column, "person_id", pa.array([7] * table.num_rows, pa.int32()))
    write_table(table, tmp_path / "r.parquet", "parquet")
    assert person_column(read_results(tmp_path / "r.parquet")) == "person_id"


def test_what_is_not_a_result_table_is_refused_with_the_reason(tmp_path: Path) -> None:
    cases = {
        "video.mp4": (b"\x00\x00\x00\x18ftypmp42", "not a result table"),
        "garbage.parquet": (b"not parquet at all", "not a readable parquet result table"),
        "other.csv": (b"name,score\nx,1\n", "missing columns video, video_id"),
        "bad.jsonl": (b'{"video": "a.mp4"\n', "not a readable jsonl result table"),
    }
    for name, (data, expected) in cases.items():
        (tmp_path / name).write_bytes(data)
        with pytest.raises(ResultsError, match=re.escape(expected)):
            read_results(tmp_path / name)
    with pytest.raises(ResultsError, match="no such file"):
        read_results(tmp_path / "missing.parquet")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ResultsError, match="no mmadfer result files"):
        read_results(tmp_path / "empty")
    odd = synthetic_table().to_pandas()
    odd.loc[0, "status"] = "maybe"
    odd.to_csv(tmp_path / "odd.csv", index=False)
    with pytest.raises(ResultsError, match="unknown status value"):
        read_results(tmp_path / "odd.csv")


def test_video_stems_are_safe_distinct_and_keep_plain_names() -> None:
    videos = [
        "a/talk.mp4",
        "b/Talk.mp4",  # the same file as talk.srt on Windows and macOS
        "c/plain.mp4",
        "c/my talk, été (2).mp4",
        "d/we ird:<>.mp4",
        "e/..mp4",
        "f/.hidden.mp4",
        "x\\xffy.mp4",  # the table's escape of a name that is not UTF-8
        "g/caf\u00e9.mp4",
        "h/cafe\u0301.mp4",  # the same name, decomposed as macOS writes it
        "i/we ird___.mp4",  # what the changed name above becomes: no collision
    ]
    stems = video_stems(videos)
    # A stem every system accepts stays as it is, so players find subtitles by the video's name.
    assert stems["c/plain.mp4"] == "plain" and stems["c/my talk, été (2).mp4"] == "my talk, été (2)"
    assert stems["i/we ird___.mp4"] == "we ird___"
    assert len(set(stems.values())) == len(videos)
    for clash in ("a/talk.mp4", "b/Talk.mp4", "g/caf\u00e9.mp4", "h/cafe\u0301.mp4"):
        assert stems[clash] != PurePath(clash).stem and "-" in stems[clash], clash
    assert stems["d/we ird:<>.mp4"].startswith("we ird___-")
    for stem in stems.values():
        assert stem and not set(stem) & set('<>:"/\\|?*') and stem.isprintable(), stem
        assert not stem.startswith(".") and not stem.endswith((".", " "))


def test_video_stems_avoid_windows_device_names() -> None:
    """Windows cannot create CON.eaf or aux.srt (any case; also aux.final.srt), nor a name
    ending in a dot or a space."""
    devices = ["con.mp4", "x/Aux.mp4", "NUL.MOV", "COM1.final.mp4", "lpt9.mkv", "com\u00b9.mp4"]
    plain = ["console.mp4", "com10.mp4", "auxiliary.mp4", "my.aux.mp4"]
    stems = video_stems([*devices, *plain, "talk. .mp4"])
    for video in devices:
        device = PurePath(video).stem.partition(".")[0]
        assert stems[video].startswith(f"{device}_"), stems[video]
    assert [stems[v] for v in plain] == ["console", "com10", "auxiliary", "my.aux"]
    assert all(not stem.endswith((".", " ")) for stem in stems.values())
    assert len(set(stems.values())) == len(stems)
