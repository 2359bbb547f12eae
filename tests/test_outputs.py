"""Result rows, writers and resume parts, tested without any model or media."""

from __future__ import annotations

import csv
import errno
import io
import json
import os
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from mmadfer_cli.run import rows as row_making
from mmadfer_cli.table import files as table_files
from mmadfer_cli.table import schema as table_schema
from mmadfer_cli.table import sinks as outputs
from mmadfer_cli.table.read import read_results

CLASSES = ("happiness", "sadness", "neutral")


def _run(**settings: object) -> table_schema.RunInfo:
    return table_schema.RunInfo(
        model_name="tiny",
        model_sha256="ab" * 32,
        class_names=CLASSES,
        settings={"window": 3.0, **settings},
        tool_version="0.0",
        torch_version="2.x",
    )


def _segment(index: int, n_faces: int) -> SimpleNamespace:
    faces = [
        SimpleNamespace(
            track_id=t,
            face_frames=16 - t,
            face_score=0.9,
            bbox=(1.0, 2.0, 30.0, 30.0),
            embeddings=None,
        )
        for t in reversed(range(n_faces))
    ]
    seg = SimpleNamespace(index=index, start_s=3.0 * index, end_s=3.0 * index + 3.0)
    return SimpleNamespace(segment=seg, has_audio=True, faces=faces, error=None)


def _table(video: str, run: table_schema.RunInfo, segments: int = 2) -> pa.Table:
    rows = []
    for i in range(segments):
        seg = _segment(i, n_faces=i)  # segment 0 has no face
        probs = np.tile(np.array([0.2, 0.7, 0.1], np.float32), (i, 1))
        rows += row_making.segment_rows(video, "vid-" + video, seg, probs, CLASSES)
    return table_schema.rows_table(rows, run.schema())


def test_schema_has_contract_columns_typed() -> None:
    schema = table_schema.row_schema(CLASSES)
    expected = [
        "video", "video_id", "track_id", "person_id", "segment", "start_s", "end_s", "status", "error",
        "label", "confidence", "prob_happiness", "prob_sadness", "prob_neutral",
        "face_frames", "face_score", "bbox_x", "bbox_y", "bbox_w", "bbox_h", "has_audio",
    ]  # fmt: skip
    assert schema.names == expected
    assert schema.field("track_id").type == pa.int32()
    assert schema.field("person_id").type == pa.int32()
    assert schema.field("prob_sadness").type == pa.float32()
    assert schema.field("has_audio").type == pa.bool_()


def test_segment_rows_label_is_argmax_sorted_by_track() -> None:
    seg = _segment(4, n_faces=2)  # faces given as tracks 1, 0
    probs = np.array([[0.1, 0.2, 0.7], [0.6, 0.3, 0.1]], np.float32)
    rows = row_making.segment_rows("a.mp4", "id", seg, probs, CLASSES)
    assert [r["track_id"] for r in rows] == [0, 1]
    assert rows[0]["label"] == "happiness" and rows[0]["confidence"] == pytest.approx(0.6)
    assert rows[1]["label"] == "neutral" and rows[1]["prob_neutral"] == pytest.approx(0.7)
    assert rows[1]["face_frames"] == 15 and rows[0]["start_s"] == 12.0
    assert all(r["status"] == "ok" for r in rows)


def test_no_face_and_error_rows() -> None:
    (row,) = row_making.segment_rows("a.mp4", "id", _segment(0, 0), np.zeros((0, 3)), CLASSES)
    assert row["status"] == "no_face" and row["segment"] == 0 and row["end_s"] == 3.0
    table = table_schema.rows_table(
        [row, row_making.error_row("b.mp4", None, "truncated")], _run().schema()
    )
    assert table["status"].to_pylist() == ["no_face", "error"]
    assert table["error"].to_pylist() == [None, "truncated"]
    assert table["label"].null_count == 2


def test_mismatched_probabilities_refused() -> None:
    with pytest.raises(ValueError, match="expected probabilities"):
        row_making.segment_rows("a.mp4", "id", _segment(0, 2), np.zeros((1, 3)), CLASSES)


@pytest.mark.parametrize(
    ("out", "fmt", "expected"),
    [
        ("r.parquet", None, ("parquet", False)),
        ("r.CSV", None, ("csv", False)),
        ("r.jsonl", None, ("jsonl", False)),
        ("r.txt", "jsonl", ("jsonl", False)),
        ("-", None, ("csv", False)),
        ("results/", None, ("parquet", True)),
        ("results", None, ("parquet", True)),
    ],
)
def test_detect_format(
    out: str, fmt: str | None, expected: tuple[str, bool], tmp_path: Path
) -> None:
    assert outputs.detect_format(out, fmt) == expected


@pytest.mark.parametrize(
    ("out", "fmt"), [("r.txt", None), ("-", "parquet"), ("dir/", "csv"), ("r.x", "xls")]
)
def test_detect_format_refuses(out: str, fmt: str | None) -> None:
    with pytest.raises(outputs.OutputError):
        outputs.detect_format(out, fmt)


@pytest.mark.parametrize("fmt", ["parquet", "csv", "jsonl"])
def test_file_sink_parts_then_final_in_input_order(tmp_path: Path, fmt: str) -> None:
    run = _run()
    out = tmp_path / f"r.{fmt}"
    sink = outputs.FileSink(out, fmt, run, overwrite=False)  # type: ignore[arg-type]
    sink.write("b.mp4", _table("b.mp4", run))
    sink.write("a.mp4", _table("a.mp4", run))
    assert not out.exists()
    assert len(list(sink.parts.glob("*.parquet"))) == 2
    sink.close(["a.mp4", "b.mp4"])
    assert not sink.parts.exists()
    if fmt == "parquet":
        table = pq.read_table(out)
        assert table.schema.equals(run.schema(), check_metadata=False)
        meta = outputs.read_metadata(out)
        assert meta["model"]["sha256"] == "ab" * 32 and meta["model"]["class_names"] == list(
            CLASSES
        )
        assert meta["settings"] == {"window": 3.0} and meta["torch_version"] == "2.x"
        videos = table["video"].to_pylist()
    elif fmt == "csv":
        rows = list(csv.DictReader(out.open()))
        assert list(rows[0]) == run.schema().names
        videos = [r["video"] for r in rows]
        assert rows[1]["prob_sadness"] == "0.7"
    else:
        rows = [json.loads(line) for line in out.read_text().splitlines()]
        videos = [r["video"] for r in rows]
        assert rows[1]["prob_sadness"] == 0.7 and rows[0]["label"] is None
    assert videos == ["a.mp4", "a.mp4", "b.mp4", "b.mp4"]


def test_file_sink_resume_knows_done_videos_and_refuses_other_settings(tmp_path: Path) -> None:
    run, out = _run(), tmp_path / "r.parquet"
    sink = outputs.FileSink(out, "parquet", run, overwrite=False)
    sink.write("a.mp4", _table("a.mp4", run))
    sink.write(
        "b.mp4",
        table_schema.rows_table([row_making.error_row("b.mp4", None, "empty file")], run.schema()),
    )
    damaged = {"video": "c.mp4", "video_id": "vid-c", "status": "error", "error": "damaged"}
    rows = [{**damaged, "segment": 0, "start_s": 0.0, "end_s": 3.0},
            {**damaged, "segment": 1, "start_s": 3.0, "end_s": 6.0, "status": "no_face",
             "error": None}]  # fmt: skip
    sink.write("c.mp4", table_schema.rows_table(rows, run.schema()))
    # An interrupted write leaves only a temporary file, which is not a finished video.
    (sink.parts / ".x.parquet.tmp-1").write_bytes(b"partial")
    resumed = outputs.FileSink(out, "parquet", run, overwrite=False)
    assert resumed.done() == {
        "a.mp4": outputs.Finished("vid-a.mp4", None, []),
        "b.mp4": outputs.Finished(None, "empty file", []),
        "c.mp4": outputs.Finished("vid-c", None, [(0.0, 3.0, "damaged")]),
    }
    with pytest.raises(outputs.OutputError, match="window"):
        outputs.FileSink(out, "parquet", _run(window=2.0), overwrite=False)
    fresh = outputs.FileSink(out, "parquet", _run(window=2.0), overwrite=True)
    assert fresh.done() == {}


def test_file_sink_refuses_existing_complete_output(tmp_path: Path) -> None:
    out = tmp_path / "r.csv"
    out.write_text("x\n")
    with pytest.raises(outputs.OutputError, match="--overwrite"):
        outputs.FileSink(out, "csv", _run(), overwrite=False)
    assert out.read_text() == "x\n"  # refused: left as it was
    run = _run()
    sink = outputs.FileSink(out, "csv", run, overwrite=True)
    sink.write("a.mp4", _table("a.mp4", run))
    sink.close(["a.mp4"])
    assert next(csv.reader(io.StringIO(out.read_text())))[0] == "video"  # the new results


def test_directory_sink_one_parquet_per_video_readable_as_dataset(tmp_path: Path) -> None:
    run, out = _run(), tmp_path / "results"
    sink = outputs.DirectorySink(out, run, overwrite=False)
    for video in ("x/a.mp4", "y/a.mp4"):
        sink.write(video, _table(video, run))
    files = sorted(out.glob("*.parquet"))
    assert len(files) == 2 and all(f.name.startswith("a-") for f in files)
    dataset = pq.read_table(out)
    assert dataset.num_rows == 4
    assert outputs.DirectorySink(out, run, overwrite=False).done() == {
        "x/a.mp4": outputs.Finished("vid-x/a.mp4", None, []),
        "y/a.mp4": outputs.Finished("vid-y/a.mp4", None, []),
    }
    with pytest.raises(outputs.OutputError):
        outputs.DirectorySink(out, _run(window=5.0), overwrite=False)
    assert outputs.DirectorySink(out, _run(window=5.0), overwrite=True).done() == {}
    assert not list(out.glob("*.parquet"))


def test_stdout_sink_streams_one_header() -> None:
    run, stream = _run(), io.BytesIO()
    sink = outputs.StdoutCsvSink(run.schema(), stream)
    sink.write("a.mp4", _table("a.mp4", run))
    first = stream.getvalue()
    assert first.count(b"\n") == 3  # header and two rows flushed before the run ends
    sink.write("b.mp4", _table("b.mp4", run))
    sink.close(["a.mp4", "b.mp4"])
    rows = list(csv.DictReader(io.StringIO(stream.getvalue().decode())))
    assert [r["video"] for r in rows] == ["a.mp4", "a.mp4", "b.mp4", "b.mp4"]


def _replace_held(monkeypatch: pytest.MonkeyPatch, times: int) -> list[Path]:
    """os.replace refused ``times`` times, as Windows refuses while another program has the
    target open; the targets tried."""
    plain_replace, tried = os.replace, []

    def replace(src: Path, dst: Path) -> None:
        tried.append(Path(dst))
        if len(tried) <= times:
            raise PermissionError(errno.EACCES, "Access is denied", str(dst))
        plain_replace(src, dst)

    monkeypatch.setattr(os, "replace", replace)
    return tried


def test_the_final_table_waits_for_a_program_that_holds_it_a_moment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "results.csv"
    tried = _replace_held(monkeypatch, times=3)  # a virus scanner's moment
    outputs.write_table(_table("a.mp4", _run()), path, "csv")
    assert tried == [path] * 4
    assert len(list(csv.DictReader(path.open()))) == 2  # a no-face row and a face row
    assert [p.name for p in tmp_path.iterdir()] == ["results.csv"]


def test_a_final_table_held_open_says_which_file_and_why(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "results.csv"
    path.write_text("the old table, open in Excel\n")
    monkeypatch.setattr(table_files, "RETRY_S", 0.3)
    tried = _replace_held(monkeypatch, times=10**6)
    started = time.monotonic()
    with pytest.raises(table_files.FileHeldError) as held:
        outputs.write_table(_table("a.mp4", _run()), path, "csv")
    assert time.monotonic() - started >= 0.3 and len(tried) > 1  # it waited, trying again
    assert str(held.value).startswith(f"cannot replace {path}: another program may have it open")
    assert isinstance(held.value, PermissionError)  # callers that handle OSError still do
    assert path.read_text() == "the old table, open in Excel\n"
    assert [p.name for p in tmp_path.iterdir()] == ["results.csv"]


@pytest.mark.parametrize("form", ["r.parquet", "results/"])
def test_plain_pandas_reads_integers_and_booleans_of_a_table_with_empty_rows(
    tmp_path: Path, form: str
) -> None:
    # Error and no-face rows leave track_id, person_id, face_frames, has_audio empty: without
    # pandas' metadata a plain pd.read_parquet turns them into float64 and object.
    run = _run()
    out = tmp_path / form
    sink = outputs.open_sink(str(out), None, run, overwrite=False)
    sink.write("a.mp4", _table("a.mp4", run))
    error = row_making.error_row("b.mp4", None, "not a video")
    sink.write("b.mp4", table_schema.rows_table([error], run.schema()))
    sink.close(["a.mp4", "b.mp4"])
    df = pd.read_parquet(out)
    assert len(df) == 3 and df["track_id"].isna().sum() == 2  # a no-face row, an error row
    for column in ("track_id", "person_id", "segment", "face_frames"):
        assert str(df[column].dtype) == "Int32", column
    assert str(df["has_audio"].dtype) == "boolean"
    assert df.loc[df["status"] == "ok", "track_id"].tolist() == [0]


@pytest.mark.parametrize("name", ["r.csv", "r.jsonl"])
def test_a_text_output_keeps_its_provenance_beside_it_and_read_results_reads_it(
    tmp_path: Path, name: str
) -> None:
    # CSV and JSONL hold no metadata: the model, checksum, settings and versions are in
    # <out>.run.json, and read_results gives them as a Parquet file's.
    run = _run(window=4.0)
    out = tmp_path / name
    sink = outputs.open_sink(str(out), None, run, overwrite=False)
    sink.write("a.mp4", _table("a.mp4", run))
    sink.close(["a.mp4"])
    meta = read_results(out).attrs["mmadfer"]
    assert meta["model"] == {"name": "tiny", "sha256": "ab" * 32, "class_names": list(CLASSES)}
    assert meta["settings"] == run.settings and meta["tool_version"] == run.tool_version
    assert (tmp_path / f"{name}.run.json").exists()
