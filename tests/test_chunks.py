"""Chunks: a video cut into chunks gives the rows of the whole video, track ids included; the
shared GPU detector returns each caller its own faces."""

from __future__ import annotations

import json
import subprocess
import threading
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from mmadfer_cli import annotate
from mmadfer_cli.model import MMADFERConfig, build_model, save_checkpoint
from mmadfer_cli.run.clips import ClipSettings, plan_chunks
from mmadfer_cli.run.shared_detector import SharedDetector
from tests.conftest import SAMPLE_VIDEOS, require_tool


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("chunks") / "tiny.safetensors"
    torch.manual_seed(0)
    save_checkpoint(build_model(MMADFERConfig.tiny()), path)
    return path


def _same_rows(a: pd.DataFrame, b: pd.DataFrame) -> None:
    assert list(a.columns) == list(b.columns) and len(a) == len(b)
    pd.testing.assert_frame_equal(a.reset_index(drop=True), b.reset_index(drop=True), atol=1e-5)


def test_plan_chunks_covers_every_segment_once() -> None:
    settings = ClipSettings()
    chunks = plan_chunks(41, settings, 10.0)  # 3 s segments: 3 per chunk
    assert [(c.first, c.stop) for c in chunks][:2] == [(0, 3), (3, 6)] and chunks[-1].stop == 41
    assert sum(c.stop - c.first for c in chunks) == 41
    assert [(c.first, c.stop) for c in plan_chunks(41, settings, 0.0)] == [(0, 41)]
    overlapping = plan_chunks(10, ClipSettings(stride_s=1.5), 6.0)
    assert [(c.first, c.stop) for c in overlapping][:2] == [(0, 4), (4, 8)]


def test_chunks_of_a_group_video_give_its_rows(checkpoint: Path) -> None:
    # Six people, overlapping windows, one-segment-and-a-bit chunks: every boundary is stitched.
    video = SAMPLE_VIDEOS / "group_conversation.mp4"
    options = {"checkpoint": checkpoint, "workers": 2, "stride": 1.5}
    whole = annotate(video, chunk=0, **options)
    chunked = annotate(video, chunk=3, **options)
    assert (whole.status == "ok").sum() >= 6 * 3 and whole.track_id.nunique() == 6
    _same_rows(whole, chunked)


@pytest.fixture(scope="module")
def two_minutes(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two minutes of people coming and going: the three sample videos at 320 x 240, joined by
    cuts, six times over."""
    ffmpeg = require_tool("ffmpeg")
    root = tmp_path_factory.mktemp("long")
    names = ("single_speaker.mp4", "group_conversation.mp4", "silent_astronaut.mp4")
    inputs = [arg for name in names for arg in ("-i", str(SAMPLE_VIDEOS / name))]
    scaled = "".join(f"[{i}:v]scale=320:240,setsar=1,fps=25[v{i}];" for i in range(3))
    joined = root / "joined.mp4"
    subprocess.run(
        [ffmpeg, "-v", "error", *inputs, "-filter_complex",
         f"{scaled}[v0][v1][v2]concat=n=3:v=1:a=0[v]", "-map", "[v]", "-c:v", "libx264",
         "-preset", "ultrafast", str(joined)],
        check=True,
    )  # fmt: skip
    looped = root / "two_minutes.mp4"
    subprocess.run(
        [ffmpeg, "-v", "error", "-stream_loop", "5", "-i", str(joined), "-c", "copy", str(looped)],
        check=True,
    )
    return looped


@pytest.mark.long
def test_chunks_of_a_two_minute_video_give_its_rows(checkpoint: Path, two_minutes: Path) -> None:
    options = {"checkpoint": checkpoint, "workers": 2, "min_face_size": 40}  # 40 px: faster
    whole = annotate(two_minutes, chunk=0, **options)
    assert whole.end_s.max() > 110 and whole.track_id.nunique() > 6  # people leave and come back
    _same_rows(whole, annotate(two_minutes, chunk=10, **options))


class _SizeDetector:
    """A fake detector: one box per frame whose corner is the frame's size and first pixel."""

    name = "fake"

    def __init__(self) -> None:
        self.calls: list[int] = []

    def detect(self, frames: list[np.ndarray]) -> list[np.ndarray]:
        self.calls.append(len(frames))
        time.sleep(0.1)  # a busy detector: the callers that come meanwhile share the next call
        return [
            np.array([[f.shape[1], f.shape[0], f[0, 0, 0], 0, 1.0]], np.float32) for f in frames
        ]


def test_shared_detector_batches_workers_and_returns_each_its_own() -> None:
    fake = _SizeDetector()
    shared = SharedDetector(fake, max_frames=64, gather_s=0.05)
    results: dict[int, list[np.ndarray]] = {}

    def worker(w: int) -> None:
        frames = [np.full((10 + w, 20 + w, 3), i, np.uint8) for i in range(16)]
        results[w] = shared.detect(frames)

    threads = [threading.Thread(target=worker, args=(w,)) for w in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for w in range(6):
        assert [b[0, :3].tolist() for b in results[w]] == [[20 + w, 10 + w, i] for i in range(16)]
    assert sum(fake.calls) == 96 and max(fake.calls) > 16  # several workers' frames per call
    assert shared.stats.frames == 96 and shared.stats.calls == len(fake.calls)


def test_shared_detector_passes_errors_to_the_callers() -> None:
    class Broken:
        name = "broken"

        def detect(self, frames: list[np.ndarray]) -> list[np.ndarray]:
            raise RuntimeError("CUDA out of memory")

    with pytest.raises(RuntimeError, match="out of memory"):
        SharedDetector(Broken()).detect([np.zeros((4, 4, 3), np.uint8)])


def test_stats_file_says_where_the_time_went(checkpoint: Path, tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from mmadfer_cli.cli.app import app

    out, stats = tmp_path / "results.csv", tmp_path / "stats.json"
    args = ["annotate", str(SAMPLE_VIDEOS / "silent_astronaut.mp4"), "--out", str(out),
            "--checkpoint", str(checkpoint), "--stats", str(stats), "--chunk", "3", "-q"]  # fmt: skip
    result = CliRunner().invoke(app, args, env={"MMADFER_HOME": str(tmp_path / "home")})
    assert result.exit_code == 0, result.output
    report = json.loads(stats.read_text())
    rows = pd.read_csv(out)
    assert report["segments"] == rows.segment.nunique() == 2 and report["chunks"] == 2
    assert report["model"]["clips"] == (rows.status == "ok").sum()
    assert (
        report["detector"]["frames"] >= 32
        and 0 < report["detector"]["busy_s"] < report["wall_s"] * 2
    )
    # On the CPU each worker has its own detector: the share is per detector, at most 1.
    assert report["detector"]["detectors"] == report["workers"]
    assert 0 < report["detector"]["busy_share"] <= 1
    assert 0 < report["model"]["busy_share"] < 1
