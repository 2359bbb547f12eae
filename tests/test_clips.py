"""The stage chain on real faces: tracks per person, clips, per-segment audio."""

from __future__ import annotations

import itertools
import re
import subprocess
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from skimage import data

from mmadfer_cli.faces import create_detector
from mmadfer_cli.faces.tracking import iou
from mmadfer_cli.media.fbank import silent_fbank, waveform_fbank
from mmadfer_cli.media.video import probe
from mmadfer_cli.run import clips
from mmadfer_cli.run.clips import (
    ClipSettings,
    SegmentClips,
    detect_faces,
    iter_video_clips,
)
from tests.conftest import SAMPLE_VIDEOS, require_tool
from tests.damage_helpers import scramble, scramble_packets

# The astronaut's face in skimage.data.astronaut() (x1, y1, x2, y2), and the camera move of
# single_speaker.mp4 over that image (scripts/make_sample_videos.py): 200 frames, 640 x 480.
SOURCE_FACE = np.array([175, 76, 265, 166], np.float64)
CAMERA_START = np.array([40, 10, 440, 310], np.float64)
CAMERA_END = np.array([110, 30, 450, 285], np.float64)


def known_face(frame: int) -> np.ndarray:
    """Where the face is in frame ``frame`` of single_speaker.mp4 (x1, y1, x2, y2)."""
    x0, y0, x1, y1 = CAMERA_START + (CAMERA_END - CAMERA_START) * frame / 199
    scale = np.array([640 / (x1 - x0), 480 / (y1 - y0)] * 2)
    return (SOURCE_FACE - [x0, y0, x0, y0]) * scale


@pytest.fixture(scope="module")
def detector():
    return create_detector("mtcnn")


def run(path: Path, detector, **settings) -> list[SegmentClips]:
    return list(iter_video_clips(path, ClipSettings(**settings), detector))


@pytest.fixture(scope="module")
def single(detector) -> list[SegmentClips]:
    return run(SAMPLE_VIDEOS / "single_speaker.mp4", detector)


def test_single_speaker_is_one_track_on_the_known_face(single) -> None:
    assert [s.segment.index for s in single] == [0, 1, 2]
    for seg in single:
        (face,) = seg.faces
        assert face.track_id == 0
        assert face.face_frames == 16 and 0.5 < face.face_score <= 1
        assert face.clip.dtype == torch.uint8 and face.clip.shape == (16, 3, 224, 224)
        x, y, w, h = face.bbox
        middle = seg.segment.frame_indices[8]
        overlap = iou(np.array([[x, y, x + w, y + h]]), known_face(middle)[None])[0, 0]
        assert overlap > 0.5, (seg.segment.index, face.bbox, known_face(middle))


def test_segment_audio_is_the_filterbank_of_its_span(single) -> None:
    out = subprocess.run(
        [require_tool("ffmpeg"), "-v", "error", "-i", str(SAMPLE_VIDEOS / "single_speaker.mp4"),
         "-f", "f32le", "-c:a", "pcm_f32le", "-"],
        capture_output=True, check=True,
    ).stdout  # fmt: skip
    track = torch.from_numpy(np.frombuffer(out, np.float32).copy())[None]
    for seg in single:
        assert seg.has_audio
        span = track[:, round(seg.segment.start_s * 44100) : round(seg.segment.end_s * 44100)]
        expected = waveform_fbank(span, 44100)
        assert seg.fbank.shape == (512, 128)
        # ffmpeg's and PyAV's decoders agree to 2e-7; the log of near-silent bins magnifies that.
        assert (seg.fbank - expected).abs().max() < 5e-3
        assert (seg.fbank - expected).abs().mean() < 1e-5


def test_group_gives_one_stable_track_per_person(detector) -> None:
    segments = run(SAMPLE_VIDEOS / "group_conversation.mp4", detector)
    ids = [sorted(f.track_id for f in s.faces) for s in segments]
    assert ids == [[0, 1, 2, 3, 4, 5]] * 2
    for before, after in itertools.pairwise(segments):  # the slow zoom moves each face a little
        old = {f.track_id: f.bbox for f in before.faces}
        for face in after.faces:
            x, y, w, h = face.bbox
            ox, oy, ow, oh = old[face.track_id]
            assert abs((x + w / 2) - (ox + ow / 2)) < ow and abs((y + h / 2) - (oy + oh / 2)) < oh
    assert all(s.has_audio for s in segments)


def test_overlapping_windows_keep_the_same_tracks(detector) -> None:
    # A stride shorter than the window samples frames out of time order segment by segment;
    # tracking runs over all sampled frames in time order, so ids do not switch.
    segments = run(SAMPLE_VIDEOS / "group_conversation.mp4", detector, stride_s=1.0)
    assert [s.segment.start_s for s in segments] == [0.0, 1.0, 2.0, 3.0]
    for s in segments:
        assert sorted(f.track_id for f in s.faces) == [0, 1, 2, 3, 4, 5], s.segment


def test_audio_less_video(detector) -> None:
    segments = run(SAMPLE_VIDEOS / "silent_astronaut.mp4", detector, min_face_frames=17)
    assert probe(SAMPLE_VIDEOS / "silent_astronaut.mp4").has_audio is False
    assert len(segments) == 2
    for seg in segments:
        assert seg.has_audio is False and torch.equal(seg.fbank, silent_fbank())
        assert seg.faces == []  # no track can reach 17 of 16 frames


def test_face_less_video_gives_no_tracks(tmp_path: Path, detector) -> None:
    image = data.coffee()[:400, :600]
    frames = np.stack([np.roll(image, 4 * i, axis=1) for i in range(30)])
    path = tmp_path / "coffee.mp4"
    subprocess.run(
        [require_tool("ffmpeg"), "-v", "error", "-f", "rawvideo", "-pix_fmt", "rgb24",
         "-s", "600x400", "-r", "15", "-i", "pipe:0", "-c:v", "libx264", "-pix_fmt", "yuv420p",
         str(path)],
        input=frames.tobytes(), check=True,
    )  # fmt: skip
    segments = run(path, detector)
    assert len(segments) == 1 and segments[0].segment.end_s == pytest.approx(2.0)
    assert segments[0].faces == [] and segments[0].has_audio is False


class _FixedFace:
    """A stand-in detector: the same face in every frame (these tests are about the media)."""

    name = "fixed"

    def detect(self, frames: np.ndarray) -> list[np.ndarray]:
        return [np.array([[200, 100, 400, 300, 0.99]], np.float32) for _ in frames]


def test_damaged_frames_make_only_their_segments_errors(tmp_path: Path) -> None:
    damaged = scramble(SAMPLE_VIDEOS / "single_speaker.mp4", tmp_path / "d.mp4")  # middle third
    segments = run(damaged, _FixedFace(), window_s=1.0)
    assert [s.segment.index for s in segments] == list(range(8))
    for seg in segments:
        if seg.segment.index in (0, 6, 7):  # before and after the damage (the sound from 1.9 s)
            assert seg.error is None and len(seg.faces) == 1 and seg.has_audio
        elif seg.segment.index in (3, 4):
            assert seg.error is not None and seg.faces == []
            assert re.fullmatch(
                r"the frames at \d\.\d\d-\d\.\d\d s cannot be decoded \(the file is damaged there\)",
                seg.error,
            )


def test_damaged_sound_makes_its_segment_an_error(tmp_path: Path) -> None:
    source = SAMPLE_VIDEOS / "group_conversation.mp4"
    damaged = scramble_packets(source, tmp_path / "a.mp4", "audio", 3.0, 4.0)
    segments = run(damaged, _FixedFace(), window_s=1.0)
    assert [s.segment.index for s in segments] == list(range(6))
    errors = {s.segment.index: s.error for s in segments if s.error is not None}
    assert errors[3] == "the sound at 3.01-4.00 s cannot be decoded (the file is damaged there)"
    assert set(errors) <= {3, 4}  # a packet that starts in 3-4 s may reach past 4 s
    clean = run(source, _FixedFace(), window_s=1.0)
    for seg, ref in zip(segments, clean, strict=True):
        if seg.error is None:
            assert len(seg.faces) == 1 and seg.has_audio
            if seg.segment.index < 3:  # before the damage: the very same sound
                torch.testing.assert_close(seg.fbank, ref.fbank)


class _Recorder:
    """A detector that records the frame sizes it is given and finds one fixed box."""

    name = "recorder"

    def __init__(self) -> None:
        self.calls: list[np.ndarray] = []

    def detect(self, frames: np.ndarray) -> list[np.ndarray]:
        self.calls.append(np.asarray(frames))
        return [np.array([[10, 4, 30, 20, 0.9]], np.float32) for _ in frames]


def test_large_frames_are_shrunk_for_detection_a_few_at_a_time(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 256, (16, 48, 4000, 3), np.uint8)  # longer side 4000: factor 3
    monkeypatch.setattr(clips, "DETECT_CPU_PIXELS", -(-4 * 48 * 4000 // 9))  # 4 frames a call
    recorder = _Recorder()
    found = detect_faces(recorder, frames)
    assert [call.shape for call in recorder.calls] == [(4, 16, 1333, 3)] * 4
    np.testing.assert_allclose(found[0], [[30, 12, 90, 60, 0.9]])  # original pixels
    small = detect_faces(_Recorder(), frames[:, :, :1920])
    np.testing.assert_allclose(small[0], [[10, 4, 30, 20, 0.9]])  # up to 1920 px: as is
    gpu = _Recorder()
    gpu.device = torch.device("cuda")  # type: ignore[attr-defined]
    detect_faces(SimpleNamespace(detector=gpu, detect=gpu.detect), frames)  # a shared GPU one
    assert [call.shape for call in gpu.calls] == [(16, 16, 1333, 3)]  # all frames in one call
    # The shrunk picture is the rounded mean of each 3 x 3 block.
    block = frames[0, 3:6, 6:9].reshape(9, 3).mean(axis=0)
    np.testing.assert_array_equal(recorder.calls[0][0, 1, 2], np.floor(block + 0.5))


class _OneBox:
    """A detector that finds one fixed face in every frame (or fails when told to)."""

    fail = False

    def detect(self, frames: np.ndarray) -> list[np.ndarray]:
        if self.fail:
            raise RuntimeError("detector failed")
        return [np.array([[200, 100, 400, 350, 0.99]], np.float32) for _ in frames]


def test_a_worker_reads_its_next_chunk_on_the_video_it_holds(monkeypatch) -> None:
    # The held video goes on from where the last chunk stopped (sound included): the same
    # clips and filterbanks as each chunk on a freshly opened video, one opening instead of 3.
    video = SAMPLE_VIDEOS / "group_conversation.mp4"  # stereo 48 kHz sound
    settings, detector = ClipSettings(stride_s=1.5), _OneBox()
    fresh = [
        list(iter_video_clips(video, settings, detector, chunk_s=1.5, chunk_index=k))
        for k in range(3)
    ]
    assert [len(chunk) for chunk in fresh] == [1, 1, 1]  # one 3 s segment each
    opened: list[Path] = []
    real_open = clips.open_video
    monkeypatch.setattr(clips, "open_video", lambda path: opened.append(path) or real_open(path))
    held = clips.HeldVideo()
    for k in range(3):
        kept = list(held.segments(video, settings, detector, 1.5, k, clips.TrackLog()))
        assert [s.segment.index for s in kept] == [s.segment.index for s in fresh[k]]
        for ours, theirs in zip(kept, fresh[k], strict=True):
            assert torch.equal(ours.fbank, theirs.fbank)
            assert [f.track_id for f in ours.faces] == [f.track_id for f in theirs.faces]
            assert all(
                torch.equal(a.clip, b.clip) for a, b in zip(ours.faces, theirs.faces, strict=True)
            )
    assert opened == [video]
    list(
        held.segments(
            SAMPLE_VIDEOS / "single_speaker.mp4", settings, detector, 1.5, 0, clips.TrackLog()
        )
    )
    assert len(opened) == 2  # another video: the held one is closed, the new one opened
    detector.fail = True
    with pytest.raises(RuntimeError):
        list(held.segments(video, settings, detector, 1.5, 1, clips.TrackLog()))
    detector.fail = False
    list(held.segments(video, settings, detector, 1.5, 2, clips.TrackLog()))
    assert len(opened) == 4  # after an error the video is opened afresh


def test_a_held_video_reads_on_past_damage_as_a_fresh_one(tmp_path: Path, monkeypatch) -> None:
    # Damage (2-5 s) on the way: the held video reads on, and the chunk after the damage gets
    # the clips a freshly opened video gives (rows must not depend on who ran earlier chunks).
    video = scramble(SAMPLE_VIDEOS / "single_speaker.mp4", tmp_path / "scrambled.mp4")
    settings, detector = ClipSettings(), _OneBox()
    fresh = list(iter_video_clips(video, settings, detector, chunk_s=3.0, chunk_index=2))
    opened: list[Path] = []
    real_open = clips.open_video
    monkeypatch.setattr(clips, "open_video", lambda path: opened.append(path) or real_open(path))
    held = clips.HeldVideo()
    chunks = [
        list(held.segments(video, settings, detector, 3.0, k, clips.TrackLog())) for k in range(3)
    ]
    assert chunks[0][0].error and chunks[1][0].error and not chunks[2][0].error
    assert opened == [video]
    assert torch.equal(chunks[2][0].faces[0].clip, fresh[0].faces[0].clip)
    assert torch.equal(chunks[2][0].fbank, fresh[0].fbank)
