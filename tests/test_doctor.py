"""``mmadfer doctor`` checks every stage by running it, and writes nothing."""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import ClassVar, NoReturn

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from mmadfer_cli.cli import doctor
from mmadfer_cli.cli.app import app
from mmadfer_cli.faces.embedding import EmbeddingUnavailableError
from mmadfer_cli.media.demo_video import write_demo_video
from mmadfer_cli.media.video import open_video
from mmadfer_cli.run.clips import ClipSettings
from mmadfer_cli.run.stage_timing import StageTimes, time_stages
from tests.conftest import SAMPLE_VIDEOS

runner = CliRunner()
PARTS = ("decode frames", "face detection", "decode sound", "tracking, crops, filterbank")


def _seconds(out: str, name: str) -> float:
    """A timing line's seconds ("<0.001" counts as 0)."""
    value = re.search(rf"{re.escape(name)}\s+(<0\.001|[\d.]+) s", out)
    assert value is not None, f"no {name!r} line in {out}"
    return 0.0 if value.group(1) == "<0.001" else float(value.group(1))


def _parts_add_up(out: str) -> None:
    """Each part of the media chain inside it, and together the chain, as printed."""
    whole = _seconds(out, "= the chain, timed whole")
    parts = [_seconds(out, name) for name in PARTS]
    assert all(0 <= part <= whole for part in parts)
    assert round(sum(parts), 3) == whole
    assert " 0.000 s" not in out


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
    assert re.search(r"ok    mtcnn \(default, --device cpu\): 1 face in .*weights sha256", out)
    # The mtcnn package is never imported (it would import TensorFlow): its weights are checked.
    assert "unavailable" not in out and "(its weight files only, never imported)" in out
    assert re.search(r"ok    mtcnn weights: pnet.lz4, rnet.lz4, onet.lz4 of the mtcnn [\d.]+ "
                     r"package found, sha256 as published, loadable", out)  # fmt: skip
    assert "import one with `mmadfer models import FILE`" in out  # the empty model cache
    assert re.search(r"ok    mtcnn cpu loops: compiled \(numba [\d.]+, (omp|tbb) threads\)", out)
    assert re.search(r"ok    face embeddings: dlib_face_recognition_resnet_model_v1, weights "
                     r"sha256 [0-9a-f]{12}: 128 numbers for the sample frame's face in \d+ ms", out)  # fmt: skip
    assert "pipeline: 2 segments, 1 person track, 2 face clips" in out
    _parts_add_up(out)
    assert "overlap: one stage after the other" in out and "meaningless" in out
    # No results file and no model import; at most the detector's converted weights are cached.
    written = {str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*") if p.is_file()}
    assert written <= {"home/detectors/mtcnn.safetensors"}


def test_doctor_fails_when_re_identification_cannot_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # annotate re-identifies by default: a broken embedder is a broken installation.
    def broken() -> NoReturn:
        raise EmbeddingUnavailableError("weights.dat is missing: reinstall face-recognition-models")

    monkeypatch.setattr(doctor, "FaceEmbedder", broken)
    result = runner.invoke(
        app,
        ["doctor", "--video", str(SAMPLE_VIDEOS / "silent_astronaut.mp4"), "--device", "cpu"],
        env={"MMADFER_HOME": str(tmp_path / "home"), "COLUMNS": "200"},
    )
    assert result.exit_code == 1
    assert (
        "FAIL  face embeddings: EmbeddingUnavailableError: weights.dat is missing" in result.stdout
    )
    assert "ok    pipeline: 2 segments" in result.stdout  # the rest still checked


def test_doctor_embeds_the_whole_frame_where_it_has_no_face(
    capsys: pytest.CaptureFixture[str],
) -> None:
    frame = np.full((120, 160, 3), 128, dtype=np.uint8)
    assert doctor._embeddings(frame, np.zeros((0, 5)))
    assert "128 numbers for the sample frame's whole frame in" in capsys.readouterr().out


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
    assert "pipeline: 2 segments, 6 person tracks" in result.stdout  # six people in the photo


def test_demo_video_has_faces_and_sound(tmp_path: Path) -> None:
    with open_video(write_demo_video(tmp_path / "demo.mp4")) as video:
        assert video.info.has_audio and video.info.frame_count == 100
        assert np.abs(video.audio(0.0, 1.0)).max() > 0.1


def test_timings_show_parts_that_add_up_to_the_chain() -> None:
    times = StageTimes(segments=4, clips=4, decode_s=0.1234, detect_s=2.0, sound_s=0.0004,
                       media_s=2.2, model_s=0.5, pipeline_s=2.4)  # fmt: skip
    out = "\n".join(times.lines())
    _parts_add_up(out)
    assert _seconds(out, "tracking, crops, filterbank") == 0.077  # 2.200 - 0.123 - 2.000 - 0.000
    assert _seconds(out, "decode sound") == 0.0 and "<0.001 s" in out
    # 0.3 of the faster stage's 0.5 s hidden: 2.7 s in turn, 2.4 s overlapped.
    assert "60% of the faster stage was hidden" in out
    slow = StageTimes(segments=1, clips=1, media_s=1.0, model_s=0.5, pipeline_s=1.75)
    assert "nothing was hidden, it took 0.250 s more" in "\n".join(slow.lines())
    noisy = StageTimes(segments=1, clips=1, media_s=1.0, model_s=0.5, pipeline_s=0.9)
    assert "the machine's load changed" in "\n".join(noisy.lines())


class _ColdDetector:
    """A detector whose first call costs ``COLD`` seconds (a cold start) and that finds one face."""

    COLD = 1.5
    made: ClassVar[list[_ColdDetector]] = []

    def __init__(self) -> None:
        self.name, self.calls = "cold", 0
        _ColdDetector.made.append(self)

    def detect(self, frames: np.ndarray) -> list[np.ndarray]:
        if not self.calls:
            time.sleep(self.COLD)
        self.calls += 1
        return [np.array([[200, 100, 330, 260, 0.99]], np.float32) for _ in frames]


def test_stages_are_timed_warm_with_the_workers_threads(tmp_path: Path) -> None:
    video = write_demo_video(tmp_path / "demo.mp4")
    _ColdDetector.made.clear()

    def predict(clips: list[torch.Tensor], fbanks: list[torch.Tensor]) -> np.ndarray:
        return np.full((len(clips), 2), 0.5, np.float32)

    times = time_stages([video], ClipSettings(window_s=2.0), _ColdDetector, predict, ("a", "b"),
                        workers=1, threads_per_worker=1)  # fmt: skip
    assert times.segments == 2 and times.clips == 2 and times.results[0].error is None
    # Detection was timed after its cold start, and the pipeline's worker got that warm detector.
    assert len(_ColdDetector.made) == 1 and _ColdDetector.made[0].calls > 2
    assert times.detect_s < _ColdDetector.COLD / 2
    assert times.worker_threads == 1 and times.model_threads == torch.get_num_threads()
