"""``mmadfer doctor`` checks every stage by running it, and writes nothing."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from mmadfer_cli.cli import doctor
from mmadfer_cli.cli.app import app
from mmadfer_cli.media.demo_video import write_demo_video
from mmadfer_cli.media.video import open_video
from tests.conftest import SAMPLE_VIDEOS

runner = CliRunner()


def test_doctor_runs_the_pipeline_and_writes_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    home = tmp_path / "home"
    video = SAMPLE_VIDEOS / "silent_astronaut.mp4"
    result = runner.invoke(
        app,
        ["doctor", "--video", str(video), "--device", "cpu"],
        env={"MMADFER_HOME": str(home), "COLUMNS": "200"},
    )
    assert result.exit_code == 0, result.output
    out = result.stdout
    for section in ("Versions", "Devices", "Decoders", "Face detectors", "Imported models"):
        assert section in out
    assert "torch " in out and "ok    PyAV" in out and "ok    dlib" in out
    assert re.search(r"ok    mtcnn \(default, --device cpu\): 1 face\(s\) .*weights sha256", out)
    assert "import one with `mmadfer models import FILE`" in out  # the empty model cache
    assert "pipeline: 2 segments, 1 person track(s), 2 face clips" in out
    assert "overlap efficiency" in out and "meaningless" in out
    # No results file and no model import; at most the detector's converted weights are cached.
    written = {str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*") if p.is_file()}
    assert written <= {"home/detectors/mtcnn.safetensors"}


def test_doctor_reports_a_missing_video(tmp_path: Path) -> None:
    result = runner.invoke(
        app, ["doctor", "--video", str(tmp_path / "none.mp4")], env={"COLUMNS": "200"}
    )
    assert result.exit_code == 1
    assert "not found" in result.stdout


def test_doctor_without_the_repository_makes_its_own_video(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # An installed package has no sample_videos/: doctor then films insightface's sample photo.
    monkeypatch.setattr(doctor, "SAMPLE_VIDEO", tmp_path / "absent.mp4")
    result = runner.invoke(
        app,
        ["doctor", "--device", "cpu"],
        env={"MMADFER_HOME": str(tmp_path / "home"), "COLUMNS": "200"},
    )
    assert result.exit_code == 0, result.output
    assert "demo.mp4" in result.stdout
    assert "pipeline: 2 segments, 6 person track(s)" in result.stdout  # six people in the photo


def test_demo_video_has_faces_and_sound(tmp_path: Path) -> None:
    with open_video(write_demo_video(tmp_path / "demo.mp4")) as video:
        assert video.info.has_audio and video.info.frame_count == 100
        assert np.abs(video.audio(0.0, 1.0)).max() > 0.1
