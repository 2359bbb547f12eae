"""The bundled sample videos have the streams the README promises, and the script remakes them."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO, SAMPLE_VIDEOS, require_tool

EXPECTED = {
    "single_speaker.mp4": {"size": (640, 480), "fps": "25/1", "seconds": 8.0, "audio": (44100, 1)},
    "group_conversation.mp4": {
        "size": (848, 586),
        "fps": "30/1",
        "seconds": 6.0,
        "audio": (48000, 2),
    },
    "silent_astronaut.mp4": {"size": (480, 480), "fps": "25/1", "seconds": 5.0, "audio": None},
}


def probe(path: Path) -> dict:
    out = subprocess.run(
        [require_tool("ffprobe"), "-v", "error", "-show_streams", "-show_format", "-of", "json", str(path)],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    return json.loads(out.stdout)


def check_streams(path: Path, expected: dict) -> None:
    info = probe(path)
    video = [s for s in info["streams"] if s["codec_type"] == "video"]
    audio = [s for s in info["streams"] if s["codec_type"] == "audio"]
    assert len(video) == 1 and video[0]["codec_name"] == "h264"
    assert (video[0]["width"], video[0]["height"]) == expected["size"]
    assert video[0]["r_frame_rate"] == expected["fps"]
    assert float(info["format"]["duration"]) == pytest.approx(expected["seconds"], abs=0.1)
    if expected["audio"] is None:
        assert audio == []
    else:
        assert len(audio) == 1 and audio[0]["codec_name"] == "aac"
        assert (int(audio[0]["sample_rate"]), audio[0]["channels"]) == expected["audio"]


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_bundled_sample_video_streams(name: str) -> None:
    check_streams(SAMPLE_VIDEOS / name, EXPECTED[name])


def test_bundled_samples_are_small() -> None:
    total = sum((SAMPLE_VIDEOS / name).stat().st_size for name in EXPECTED)
    assert total < 3 * 1024 * 1024


def test_script_regenerates_samples(tmp_path: Path) -> None:
    require_tool("ffmpeg")
    require_tool("espeak-ng")
    subprocess.run(
        [sys.executable, str(REPO / "scripts" / "make_sample_videos.py"), str(tmp_path)], check=True
    )
    for name, expected in EXPECTED.items():
        check_streams(tmp_path / name, expected)
