"""``mmadfer annotate`` end to end on the sample videos, with a tiny random model imported once."""

from __future__ import annotations

import csv
import io
import itertools
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq
import pytest
import torch
from typer.testing import CliRunner

from mmadfer_cli.cli.app import app
from mmadfer_cli.faces.mtcnn_weights import sources_checksum
from mmadfer_cli.media.video import probe
from mmadfer_cli.run.clips import ClipSettings, count_chunks
from mmadfer_cli.table.schema import row_schema
from mmadfer_cli.table.sinks import read_metadata
from tests.conftest import REPO, SAMPLE_VIDEOS
from tests.damage_helpers import damage, overlaps, segment_bytes, small_video
from tests.results_helpers import assert_same_rows

# The short videos first, so that a killed run has finished exactly one.
VIDEOS = [str(SAMPLE_VIDEOS / "silent_astronaut.mp4"), str(SAMPLE_VIDEOS / "single_speaker.mp4")]
FAST = ["--workers", "2", "--batch-size", "4"]
# One worker, batches of one clip and 3-second chunks: the second video is still running, chunk
# by chunk, seconds after the first one's part file appears (with two workers both can finish
# together; with larger batches the first video's last clips wait for the second's first).
SERIAL = ["--workers", "1", "--batch-size", "1", "--chunk", "3"]
runner = CliRunner()


def _annotate(home: Path, *args: str) -> tuple[int, str, str]:
    result = runner.invoke(app, ["annotate", *args], env={"MMADFER_HOME": str(home)})
    return result.exit_code, result.stdout, result.stderr


@pytest.fixture(scope="module")
def baseline(home: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("baseline") / "results.parquet"
    code, _, err = _annotate(home, *VIDEOS, "--out", str(out), *FAST)
    assert code == 0, err
    return out


def test_table_columns_types_metadata_and_timeline(baseline: Path) -> None:
    table = pq.read_table(baseline)
    meta = read_metadata(baseline)
    classes = meta["model"]["class_names"]
    assert table.schema.equals(row_schema(classes), check_metadata=False)
    assert meta["model"]["name"] == "tiny" and len(meta["model"]["sha256"]) == 64
    assert meta["settings"]["window_s"] == 3.0 and meta["settings"]["detector_backend"] == "mtcnn"
    assert meta["settings"]["detector_weights_sha256"] == sources_checksum()
    assert meta["torch_version"] == torch.__version__ and meta["tool_version"]
    rows = table.to_pylist()
    assert {r["video"] for r in rows} == set(VIDEOS)
    assert all(r["status"] == "ok" for r in rows)  # one face on screen all the time
    probs = np.array([[r[f"prob_{c}"] for c in classes] for r in rows])
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-5)
    assert [r["label"] for r in rows] == [classes[i] for i in probs.argmax(axis=1)]
    keys = [(r["video"], r["track_id"], r["segment"]) for r in rows]
    assert len(keys) == len(set(keys))
    for video in VIDEOS:
        mine = [r for r in rows if r["video"] == video]
        spans = sorted({(r["segment"], r["start_s"], r["end_s"]) for r in mine})
        assert [s[0] for s in spans] == list(range(len(spans)))
        assert spans[0][1] == 0.0
        assert all(prev[2] == nxt[1] for prev, nxt in itertools.pairwise(spans))
        assert spans[-1][2] == pytest.approx(probe(video).duration_s, abs=0.05)
        assert {r["has_audio"] for r in mine} == {"silent" not in video}
        assert all(r["face_frames"] >= 8 and r["bbox_w"] > 0 for r in mine)


def test_stdout_csv_streams_the_same_rows(home: Path, baseline: Path) -> None:
    code, out, err = _annotate(home, *VIDEOS, "--out", "-", "--quiet", *FAST)
    assert code == 0, err
    assert err == ""  # --quiet: nothing but errors
    expected = pq.read_table(baseline)
    parsed = pa_csv.read_csv(
        io.BytesIO(out.encode()),
        convert_options=pa_csv.ConvertOptions(
            column_types=expected.schema, strings_can_be_null=True
        ),
    )
    assert next(iter(csv.reader(io.StringIO(out)))) == expected.schema.names
    # stdout has videos in the order they finish; the file in input order.
    key = [("video", "ascending"), ("segment", "ascending"), ("track_id", "ascending")]
    assert_same_rows(parsed.sort_by(key), expected.replace_schema_metadata(None).sort_by(key))


def test_killed_run_resumes_to_the_uninterrupted_rows(
    home: Path, baseline: Path, tmp_path: Path
) -> None:
    # Killed once the first video is written, with the second partly done: its clips wait for a
    # batch (up to 2 s) while the worker runs the second video's chunks of one segment each
    # (traced: 1 of 3 ended at the kill). The resumed run equals the unchunked baseline, track
    # ids included.
    assert [count_chunks(v, ClipSettings(), 3) for v in VIDEOS] == [2, 3]
    out = tmp_path / "results.parquet"
    parts = tmp_path / "results.parquet.parts"
    cmd = [sys.executable, "-m", "mmadfer_cli", "annotate", *VIDEOS, "--out", str(out), *SERIAL]
    env = {**os.environ, "MMADFER_HOME": str(home)}
    proc = subprocess.Popen(cmd, cwd=REPO, env=env, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while not list(parts.glob("*.parquet")) and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not out.exists(), "the run finished before it could be killed"
    assert len(list(parts.glob("*.parquet"))) == 1
    code, _, err = _annotate(home, *VIDEOS, "--out", str(out), *SERIAL)
    assert code == 0, err
    assert "1 new video, 1 already done" in err
    assert f"took over the lock of an earlier run that is no longer running (pid {proc.pid}" in err
    assert not parts.exists() and not (tmp_path / "results.parquet.lock").exists()
    assert_same_rows(pq.read_table(out), pq.read_table(baseline))


@pytest.mark.long  # a cold torch.compile of the model: about a minute on 2 cores
@pytest.mark.skipif(not shutil.which(os.environ.get("CXX", "g++")), reason="needs a C++ compiler")
def test_compiled_model_gives_the_same_rows(home: Path, baseline: Path, tmp_path: Path) -> None:
    out = tmp_path / "results.parquet"
    code, _, err = _annotate(home, VIDEOS[0], "--out", str(out), *FAST, "--compile")
    assert code == 0, err
    assert "Compiling the model" in err
    expected = pq.read_table(baseline).filter(pc.field("video") == VIDEOS[0])
    assert expected.num_rows >= 2  # fewer clips than --batch-size 4: a padded batch
    assert_same_rows(pq.read_table(out), expected)


@pytest.mark.slow
def test_compile_that_cannot_work_here_exits_2(home: Path, tmp_path: Path) -> None:
    cmd = [sys.executable, "-m", "mmadfer_cli", "annotate", VIDEOS[0], *FAST, "--compile",
           "--out", str(tmp_path / "r.parquet")]  # fmt: skip
    env = {**os.environ, "MMADFER_HOME": str(home), "CXX": str(tmp_path / "no-such-compiler"),
           "TORCHINDUCTOR_CACHE_DIR": str(tmp_path / "cache")}  # fmt: skip
    result = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 2, result.stderr
    assert "torch.compile cannot compile the model here" in result.stderr
    assert "C++ compiler" in result.stderr and "run without --compile" in result.stderr
    assert "Traceback" not in result.stderr and not (tmp_path / "r.parquet").exists()


def test_ctrl_c_stops_cleanly_keeping_finished_videos(home: Path, tmp_path: Path) -> None:
    out = tmp_path / "results.csv"
    parts = tmp_path / "results.csv.parts"
    cmd = [sys.executable, "-m", "mmadfer_cli", "annotate", *VIDEOS, "--out", str(out), *SERIAL]
    env = {**os.environ, "MMADFER_HOME": str(home)}
    proc = subprocess.Popen(cmd, cwd=REPO, env=env, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while not list(parts.glob("*.parquet")) and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "Interrupted" in err and "rerun the same command" in err
    assert "Traceback" not in err
    assert not out.exists() and len(list(parts.glob("*.parquet"))) == 1


@pytest.mark.skipif(sys.platform == "win32", reason="Windows delivers no SIGTERM to a process")
def test_sigterm_keeps_finished_videos_releases_the_lock_and_resumes(
    home: Path, baseline: Path, tmp_path: Path
) -> None:
    # As SLURM or Kubernetes stop a job: SIGTERM once the first video is written.
    out = tmp_path / "results.parquet"
    parts = tmp_path / "results.parquet.parts"
    cmd = [sys.executable, "-m", "mmadfer_cli", "annotate", *VIDEOS, "--out", str(out), *SERIAL]
    env = {**os.environ, "MMADFER_HOME": str(home), "COLUMNS": "200"}
    proc = subprocess.Popen(cmd, cwd=REPO, env=env, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while not list(parts.glob("*.parquet")) and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 143, err
    (line,) = [text for text in err.splitlines() if "Terminated" in text]
    assert line == (
        "Terminated: SIGTERM: 1 finished video is kept; rerun the same command to resume."
    )
    assert "Traceback" not in err
    assert not (tmp_path / "results.parquet.lock").exists()
    assert not out.exists() and len(list(parts.glob("*.parquet"))) == 1
    code, _, err = _annotate(home, *VIDEOS, "--out", str(out), *SERIAL)
    assert code == 0, err
    assert "1 new video, 1 already done" in err and "took over the lock" not in err
    assert_same_rows(pq.read_table(out), pq.read_table(baseline))


def test_workers_are_bounded_by_the_work_and_by_the_cores(
    home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Five chunks of work (2 and 3), but one core: four workers at most.
    stats = tmp_path / "stats.json"
    monkeypatch.setattr(os, "cpu_count", lambda: 1)
    code, _, err = _annotate(home, *VIDEOS, "--out", str(tmp_path / "b.csv"), "--chunk", "3",
                             "--workers", "6", "--stats", str(stats))  # fmt: skip
    assert code == 0, err
    assert "--workers 6: using 4 (at most 4 per CPU core and 64 in all:" in " ".join(err.split())
    assert json.loads(stats.read_text())["workers"] == 4
    code, _, err = _annotate(home, *VIDEOS, "--out", str(tmp_path / "c.csv"), "--chunk", "3",
                             "--workers", "3", "--stats", str(stats))  # fmt: skip
    assert code == 0 and "--workers" not in err, err
    assert json.loads(stats.read_text())["workers"] == 3
    monkeypatch.undo()
    # --workers 10000 used to start 10000 threads, each building a detector and an embedder
    # before taking any work: 1.8 GB after 50 s, and no chunk started.
    code, _, err = _annotate(home, VIDEOS[0], "--out", str(tmp_path / "a.csv"), "--workers",
                             "10000", "--stats", str(stats))  # fmt: skip
    assert code == 0, err
    assert "--workers 10000: using 1 (1 video, 1 chunk of work in all)" in err
    assert json.loads(stats.read_text())["workers"] == 1


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="named pipes are POSIX")
def test_ctrl_c_ends_a_run_with_a_named_pipe_among_the_inputs(home: Path, tmp_path: Path) -> None:
    # The worker used to block in open() on the pipe, and Ctrl-C then waited on it for ever.
    pipe = tmp_path / "pipe.mp4"
    os.mkfifo(pipe)
    parts = tmp_path / "r.csv.parts"
    cmd = [sys.executable, "-m", "mmadfer_cli", "annotate", str(pipe), *VIDEOS, "--out",
           str(tmp_path / "r.csv"), *SERIAL]  # fmt: skip
    env = {**os.environ, "MMADFER_HOME": str(home)}
    proc = subprocess.Popen(cmd, cwd=REPO, env=env, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while len(list(parts.glob("*.parquet"))) < 2 and proc.poll() is None:
            assert time.monotonic() < deadline, "no video finished: the run hangs"
            time.sleep(0.02)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)  # a run that hangs on the pipe fails here
    finally:
        if proc.poll() is None:  # a hung run is not left behind
            proc.kill()
            proc.wait()
    assert proc.returncode == 130, err
    assert "Traceback" not in err


def test_changed_settings_on_resume_are_refused(home: Path, tmp_path: Path) -> None:
    parts = tmp_path / "r.parquet.parts"
    parts.mkdir()
    (parts / "run.json").write_text('{"model_sha256": "x", "class_names": [], "settings": {}}')
    code, _, err = _annotate(home, VIDEOS[0], "--out", str(tmp_path / "r.parquet"), *FAST)
    assert code == 2 and "--overwrite" in err and "model" in err


def test_mixed_folder_gives_error_rows_and_exit_1(home: Path, tmp_path: Path) -> None:
    folder = tmp_path / "videos"
    folder.mkdir()
    (folder / "a_good.mp4").symlink_to(VIDEOS[0])
    (folder / "b_empty.mp4").write_bytes(b"")
    (folder / "c_text.mp4").write_text("this is not a video\n" * 50)
    data = Path(VIDEOS[1]).read_bytes()
    (folder / "d_cut_in_header.mp4").write_bytes(data[:3000])
    (folder / "e_cut_short.mp4").write_bytes(data[: len(data) * 2 // 3])  # 5 of its 8 s
    out = tmp_path / "r.jsonl"
    code, _, err = _annotate(home, str(folder), "--out", str(out), *FAST)
    assert code == 1 and "Traceback" not in err
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    by_video: dict[str, list[dict]] = {}
    for row in rows:
        by_video.setdefault(Path(row["video"]).name, []).append(row)
    assert [r["status"] for r in by_video["a_good.mp4"]] == ["ok", "ok"]
    for bad in ("b_empty.mp4", "c_text.mp4", "d_cut_in_header.mp4"):
        (row,) = by_video[bad]
        assert row["status"] == "error" and row["error"] and row["segment"] is None, bad
        assert bad in err  # listed at the end with its reason
    assert "3 videos failed" in err
    # A file cut short keeps the segments before the cut.
    cut = by_video["e_cut_short.mp4"]
    assert [(r["segment"], r["status"]) for r in cut] == [(0, "ok"), (1, "error"), (2, "error")]
    assert "cut short" in cut[2]["error"]
    assert "Damaged stretches in 1 video" in err and "e_cut_short.mp4: 2 segments" in err


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="named pipes and devices are POSIX")
def test_pipes_devices_and_broken_links_are_named_and_nothing_hangs(
    home: Path, tmp_path: Path
) -> None:
    # A named pipe given on the command line used to block the run for ever in open().
    pipe = tmp_path / "pipe.mp4"
    os.mkfifo(pipe)
    folder = tmp_path / "videos"
    folder.mkdir()
    (folder / "a_good.mp4").symlink_to(VIDEOS[0])
    os.mkfifo(folder / "b_pipe.mp4")
    (folder / "c_broken.mp4").symlink_to(tmp_path / "gone.mp4")
    (folder / "notes.txt").write_text("not a video, not worth a word")
    out = tmp_path / "r.jsonl"
    cmd = [sys.executable, "-m", "mmadfer_cli", "annotate", str(pipe), "/dev/null", str(folder),
           "--out", str(out), *FAST]  # fmt: skip
    env = {**os.environ, "MMADFER_HOME": str(home), "COLUMNS": "200"}
    done = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 1, done.stderr
    assert "Traceback" not in done.stderr
    rows = {json.loads(line)["video"]: json.loads(line) for line in out.read_text().splitlines()}
    assert rows[str(pipe)]["error"] == f"{pipe}: a named pipe, not a video file"
    assert rows["/dev/null"]["error"] == "/dev/null: a character device, not a video file"
    assert rows[str(folder / "a_good.mp4")]["status"] == "ok"
    assert "skipped 2: a named pipe, a broken link (--verbose lists them)" in done.stderr
    assert "b_pipe.mp4" not in done.stderr and "notes.txt" not in done.stderr
    code, _, err = _annotate(home, str(folder), "--out", str(tmp_path / "v.jsonl"), *FAST,
                             "--verbose")  # fmt: skip
    assert code == 0, err
    assert f"{folder / 'b_pipe.mp4'}: a named pipe" in err
    assert f"{folder / 'c_broken.mp4'}: a broken link" in err and "notes.txt" not in err


def test_usage_errors_exit_2(home: Path, tmp_path: Path) -> None:
    out = str(tmp_path / "r.parquet")
    code, _, err = _annotate(home, str(tmp_path / "missing.mp4"), "--out", out)
    assert code == 2 and "missing.mp4" in err
    code, _, err = _annotate(tmp_path / "empty_home", VIDEOS[0], "--out", out)
    assert code == 2 and "models import" in err
    code, _, err = _annotate(home, VIDEOS[0], "--out", str(tmp_path / "r.xlsx"))
    assert code == 2 and "--format" in err
    code, _, err = _annotate(home, VIDEOS[0], "--out", out, "--compile", "--engine", "ray")
    assert code == 2 and "--compile needs --engine local" in err


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message shown without a GPU")
def test_cuda_without_gpu_is_a_clear_usage_error(home: Path, tmp_path: Path) -> None:
    code, _, err = _annotate(home, VIDEOS[0], "--out", str(tmp_path / "r.csv"), "--device", "cuda")
    assert code == 2
    assert "no CUDA GPU" in err and "--device cpu" in err


@pytest.mark.parametrize("out_name", ["r.parquet", "r.csv", "r.jsonl", "results/", "-"])
def test_non_utf8_file_names_get_rows_and_resume(home: Path, tmp_path: Path, out_name: str) -> None:
    folder = os.fsencode(tmp_path / "videos")
    os.mkdir(folder)
    with open(folder + b"/bad\xff\xfename.mp4", "wb") as fh:
        fh.write(Path(VIDEOS[0]).read_bytes())
    with open(folder + b"/broken\xe9.mp4", "wb") as fh:
        fh.write(b"not a video\n" * 20)
    good = os.fsdecode(folder) + "/bad\\xff\\xfename.mp4"
    broken = os.fsdecode(folder) + "/broken\\xe9.mp4"
    out = "-" if out_name == "-" else str(tmp_path / out_name)
    one_segment = [*FAST, "--window", "5"]
    code, stdout, err = _annotate(home, os.fsdecode(folder), "--out", out, *one_segment)
    assert code == 1, err
    assert "Traceback" not in err and broken in err
    if out_name == "-":
        rows = list(csv.DictReader(io.StringIO(stdout)))
    elif out_name.endswith("/"):
        rows = pa.concat_tables(
            [pq.read_table(p) for p in sorted(Path(out).glob("*.parquet"))]
        ).to_pylist()
    elif out_name.endswith(".jsonl"):
        rows = [json.loads(line) for line in Path(out).read_text().splitlines()]
    elif out_name.endswith(".csv"):
        rows = list(csv.DictReader(io.StringIO(Path(out).read_text())))
    else:
        rows = pq.read_table(out).to_pylist()
    assert [r["status"] for r in rows if r["video"] == good] == ["ok"]
    assert [r["status"] for r in rows if r["video"] == broken] == ["error"]
    if out_name.endswith("/"):  # resume recognises the escaped names
        code, _, err = _annotate(home, os.fsdecode(folder), "--out", out, *one_segment)
        assert code == 1 and "Nothing to do" in err


@pytest.mark.parametrize("out_name", ["r.parquet", "results/"])
def test_a_second_run_on_the_same_output_stops_at_once(
    home: Path, tmp_path: Path, out_name: str
) -> None:
    out = tmp_path / out_name
    lock = out / ".mmadfer.lock" if out_name.endswith("/") else tmp_path / "r.parquet.lock"
    cmd = [sys.executable, "-m", "mmadfer_cli", "annotate", VIDEOS[0], "--out", str(out), *FAST]
    env = {**os.environ, "MMADFER_HOME": str(home)}
    first = subprocess.Popen(cmd, cwd=REPO, env=env, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while not lock.exists() and first.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    code, _, err = _annotate(home, VIDEOS[0], "--out", str(out), *FAST)
    assert code == 2 and "another mmadfer run is writing to this output" in err
    assert f"pid {first.pid} on " in err and "started " in err
    _, first_err = first.communicate(timeout=120)
    assert first.returncode == 0, first_err  # the first run is not disturbed
    tables = [pq.read_table(p) for p in ([out] if out.is_file() else sorted(out.glob("*.parquet")))]
    assert sum(t.num_rows for t in tables) == 2  # silent_astronaut: two segments, one face
    assert not lock.exists()


def _two_short_videos(tmp_path: Path) -> list[str]:
    """Two one-segment videos (with --window 5) with different names."""
    names = []
    for name in ("a.mp4", "b.mp4"):
        (tmp_path / name).write_bytes(Path(VIDEOS[0]).read_bytes())
        names.append(str(tmp_path / name))
    return names


ONE_SEGMENT = [*FAST, "--window", "5", "--workers", "1"]


def test_disk_full_keeps_finished_videos_and_resume_completes(
    home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import mmadfer_cli.table.sinks as outputs

    videos = _two_short_videos(tmp_path)
    out = tmp_path / "r.parquet"
    write, calls = outputs.write_parquet, []

    def full_after_one(table: pa.Table, path: Path) -> None:
        calls.append(path)
        if len(calls) > 1:
            path.write_bytes(b"half a file")
            raise OSError(28, "No space left on device", str(path))
        write(table, path)

    monkeypatch.setattr(outputs, "write_parquet", full_after_one)
    code, _, err = _annotate(home, *videos, "--out", str(out), *ONE_SEGMENT)
    assert code == 3 and "Traceback" not in err
    assert "cannot write the results: No space left on device" in err
    assert f"1 finished video is kept in {out}.parts" in err and "rerun the same command" in err
    parts = tmp_path / "r.parquet.parts"
    assert [p.suffix for p in parts.iterdir() if p.name != "run.json"] == [".parquet"]  # no debris
    assert not out.exists() and not (tmp_path / "r.parquet.lock").exists()
    monkeypatch.setattr(outputs, "write_parquet", write)  # space freed
    code, _, err = _annotate(home, *videos, "--out", str(out), *ONE_SEGMENT)
    assert code == 0 and "1 new video, 1 already done" in err, err
    assert [r["status"] for r in pq.read_table(out).to_pylist()] == ["ok", "ok"]


def test_an_internal_error_is_one_line_naming_video_and_stage(
    home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import mmadfer_cli.faces.crops as crops

    videos = _two_short_videos(tmp_path)

    def broken_region(*args: object) -> None:
        raise ZeroDivisionError("division by zero")

    monkeypatch.setattr(crops, "face_region", broken_region)
    out = str(tmp_path / "r.csv")
    code, _, err = _annotate(home, videos[0], "--out", out, *ONE_SEGMENT)
    assert code == 1 and "Traceback" not in err
    line = f"{videos[0]}: internal error in face crops: ZeroDivisionError: division by zero"
    assert line in err and "--debug" in err
    code, _, err = _annotate(home, videos[1], "--out", out, "--overwrite", "--debug", *ONE_SEGMENT)
    assert code == 1 and "Traceback (most recent call last)" in err and "broken_region" in err


def test_a_failing_model_stops_the_run_in_one_line_and_resume_continues(
    home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import mmadfer_cli.model.inference as inference

    videos = _two_short_videos(tmp_path)
    out = tmp_path / "results"
    predict, calls = inference.predict_proba, []

    def fails_second(*args: object, **kwargs: object) -> torch.Tensor:
        calls.append(1)
        if len(calls) > 1:
            raise RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB\nmore detail")
        return predict(*args, **kwargs)

    monkeypatch.setattr(inference, "predict_proba", fails_second)
    code, _, err = _annotate(home, *videos, "--out", f"{out}/", *ONE_SEGMENT, "--batch-size", "1")
    assert code == 3 and "Traceback" not in err and "more detail" not in err
    assert (
        f"internal error in the model while annotating {videos[1]}: "
        "RuntimeError: CUDA out of memory. Tried to allocate 2.00 GiB; "
        "1 finished video is kept; rerun the same command to resume." in " ".join(err.split())
    )
    monkeypatch.setattr(inference, "predict_proba", predict)
    code, _, err = _annotate(home, *videos, "--out", f"{out}/", *ONE_SEGMENT)
    assert code == 0 and "1 new video, 1 already done" in err, err
    assert len(list(out.glob("*.parquet"))) == 2


def test_seeded_fuzz_of_damaged_copies(home: Path, tmp_path: Path) -> None:
    """30 copies damaged differently, one run: no crash, rows for every file, and every
    segment whose bytes are intact is annotated as in the undamaged copy."""
    clean = small_video(Path(VIDEOS[1]), tmp_path / "clean.mp4", 6.0, 160, 120)
    data, rng = clean.read_bytes(), np.random.default_rng(14)
    folder = tmp_path / "fuzz"
    folder.mkdir()
    damages = {}
    for i in range(30):
        kind = ("flip", "truncate", "header", "zeros")[i % 4]
        damaged, damages[f"{i:02d}_{kind}.mp4"] = damage(data, kind, rng)
        (folder / f"{i:02d}_{kind}.mp4").write_bytes(damaged)
    (folder / "99_clean.mp4").write_bytes(data)
    out = tmp_path / "fuzz.jsonl"
    cmd = [sys.executable, "-m", "mmadfer_cli", "annotate", str(folder), "--out", str(out),
           "--window", "2", "--workers", "2", "--quiet"]  # fmt: skip
    env = {**os.environ, "MMADFER_HOME": str(home)}
    done = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode in (0, 1), done.stderr
    assert "Traceback" not in done.stderr
    rows: dict[str, list[dict]] = {}
    for line in out.read_text().splitlines():
        row = json.loads(line)
        rows.setdefault(Path(row["video"]).name, []).append(row)
    assert set(rows) == {*damages, "99_clean.mp4"}  # every file has rows
    assert [r["status"] for r in rows["99_clean.mp4"]] == ["ok"] * 3
    spans = [(2.0 * k, 2.0 * k + 2.0) for k in range(3)]
    needs = [segment_bytes(clean, *span) for span in spans]
    intact = 0
    for name, (kind, changed) in damages.items():
        if overlaps(changed, needs[0][:1]):
            continue  # the header is damaged: the file may be unreadable as a whole
        by_segment = {r["segment"]: r for r in rows[name]}
        for k in range(3):
            if not overlaps(changed, needs[k]):
                intact += 1
                row = by_segment.get(k)  # not the whole file's one error row
                assert row is not None and row["status"] == "ok", (name, kind, rows[name])
    assert intact >= 12  # the fuzz reached undamaged segments of partly damaged files
