"""``--soundtrack silent``: every face gets the input of a video without an audio track."""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from mmadfer_cli import annotate
from mmadfer_cli.model import MMADFERConfig, build_model, save_checkpoint
from mmadfer_cli.run.options import UsageError
from mmadfer_cli.table.schema import RunInfo
from mmadfer_cli.table.sinks import _check_fingerprint
from mmadfer_cli.table.writers import OutputError
from tests.conftest import SAMPLE_VIDEOS, require_tool

FAST = {"detector": "dlib", "workers": 1, "batch_size": 4, "reid": False, "window": 1.5}


@pytest.fixture(scope="module")
def speech(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    """A segment of a video with speech (small, for a quick face detection), the same video
    stream without its audio track (ffmpeg -an, the picture copied), and a tiny random model."""
    ffmpeg = require_tool("ffmpeg")
    root = tmp_path_factory.mktemp("soundtrack")
    voiced, mute = root / "speech.mp4", root / "mute.mp4"
    quiet = [ffmpeg, "-v", "error", "-y", "-i"]
    source = str(SAMPLE_VIDEOS / "single_speaker.mp4")
    subprocess.run([*quiet, source, "-t", "1.6", "-vf", "scale=320:-2", "-c:v", "libx264",
                    "-c:a", "aac", str(voiced)], check=True)  # fmt: skip
    subprocess.run([*quiet, str(voiced), "-an", "-c:v", "copy", str(mute)], check=True)
    torch.manual_seed(0)
    save_checkpoint(build_model(MMADFERConfig.tiny()), root / "tiny.safetensors")
    return voiced, mute, root / "tiny.safetensors"


def _probs(df: pd.DataFrame) -> np.ndarray:
    ok = df[df["status"] == "ok"]
    return ok[[c for c in df.columns if c.startswith("prob_")]].to_numpy(float)


def test_silent_soundtrack_is_the_video_without_audio(
    speech: tuple[Path, Path, Path], tmp_path: Path
) -> None:
    voiced, mute, checkpoint = speech
    out = tmp_path / "silent.parquet"
    silent = annotate(voiced, out=out, checkpoint=checkpoint, soundtrack="silent", **FAST)
    without_audio = annotate(mute, checkpoint=checkpoint, **FAST)
    heard = annotate(voiced, checkpoint=checkpoint, **FAST)
    assert len(_probs(silent)) == len(_probs(heard)) >= 1
    np.testing.assert_allclose(_probs(silent), _probs(without_audio), atol=1e-6)
    assert not np.allclose(_probs(silent), _probs(heard), atol=1e-3)
    # has_audio says whether the model heard the segment's sound.
    assert not silent["has_audio"].any() and not without_audio["has_audio"].any()
    assert heard["has_audio"].all()
    # The setting is part of the output's provenance: a rerun with another one is refused.
    assert silent.attrs["mmadfer"]["settings"]["soundtrack"] == "silent"
    assert heard.attrs["mmadfer"]["settings"]["soundtrack"] == "video"
    with pytest.raises(UsageError, match="different soundtrack"):
        annotate(voiced, out=out, checkpoint=checkpoint, **FAST)


def test_an_unknown_soundtrack_is_refused_with_the_choices() -> None:
    with pytest.raises(UsageError, match=r"--soundtrack must be one of video, silent, not 'mute'"):
        annotate(SAMPLE_VIDEOS / "single_speaker.mp4", soundtrack="mute")


def test_an_output_older_than_the_setting_grows_with_the_video_soundtrack() -> None:
    # Outputs written before --soundtrack existed do not record it: their runs heard the video.
    run = RunInfo("m", "0" * 64, ("a", "b"), {"window_s": 3.0, "soundtrack": "video"}, "0", "0")
    older = {**run.fingerprint(), "settings": {"window_s": 3.0}}
    _check_fingerprint(older, run, Path("out.csv"))
    silent = RunInfo("m", "0" * 64, ("a", "b"), {"window_s": 3.0, "soundtrack": "silent"}, "0", "0")
    with pytest.raises(OutputError, match="different soundtrack;"):
        _check_fingerprint(older, silent, Path("out.csv"))
