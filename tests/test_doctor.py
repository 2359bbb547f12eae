"""``mmadfer doctor`` checks every stage by running it, and writes nothing."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from mmadfer_cli.cli import app
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
        ["doctor", "--video", str(video), "--detector", "dlib", "--device", "cpu"],
        env={"MMADFER_HOME": str(home), "COLUMNS": "200"},
    )
    assert result.exit_code == 0, result.output
    out = result.stdout
    for section in ("Versions", "Devices", "Decoders", "Face detectors", "Imported models"):
        assert section in out
    assert "torch " in out and "ok    decord" in out and "ok    dlib" in out
    assert "import one with `mmadfer models import FILE`" in out  # the empty model cache
    assert "pipeline: 2 segments, 1 person track(s), 2 face clips" in out
    assert "overlap efficiency" in out and "meaningless" in out
    assert list(tmp_path.iterdir()) == []  # no results file, no model cache


def test_doctor_reports_a_missing_video(tmp_path: Path) -> None:
    result = runner.invoke(
        app, ["doctor", "--video", str(tmp_path / "none.mp4")], env={"COLUMNS": "200"}
    )
    assert result.exit_code == 1
    assert "not found" in result.stdout
