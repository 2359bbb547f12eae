"""Media: metadata, frames, audio at the native rate, awkward files and clear errors."""

from __future__ import annotations

import os
import subprocess
import threading
from pathlib import Path

import numpy as np
import pytest

from mmadfer_cli.media.discover import discover_videos
from mmadfer_cli.media.video import (
    DamagedAudioError,
    DamagedFramesError,
    MediaError,
    open_video,
    probe,
    video_id,
)
from tests.conftest import SAMPLE_VIDEOS, require_tool
from tests.damage_helpers import scramble

SINGLE = SAMPLE_VIDEOS / "single_speaker.mp4"


def ffmpeg(*args: str) -> None:
    subprocess.run([require_tool("ffmpeg"), "-v", "error", "-y", *args], check=True)


def ffmpeg_frame(path: Path, index: int) -> np.ndarray:
    """Frame ``index`` as the ffmpeg command line decodes it (autorotated), uint8 RGB."""
    out = subprocess.run(
        [require_tool("ffmpeg"), "-v", "error", "-i", str(path), "-vf", f"select=eq(n\\,{index})",
         "-frames:v", "1", "-f", "rawvideo", "-pix_fmt", "rgb24", "-"],
        capture_output=True, check=True,
    ).stdout  # fmt: skip
    return np.frombuffer(out, dtype=np.uint8)


def ffmpeg_audio(path: Path, channels: int) -> np.ndarray:
    out = subprocess.run(
        [require_tool("ffmpeg"), "-v", "error", "-i", str(path), "-f", "f32le", "-c:a", "pcm_f32le", "-"],
        capture_output=True, check=True,
    ).stdout  # fmt: skip
    return np.frombuffer(out, dtype=np.float32).reshape(-1, channels).T


@pytest.mark.parametrize(
    ("name", "size", "fps", "frames", "audio"),
    [
        ("single_speaker.mp4", (640, 480), 25, 200, (44100, 1)),
        ("group_conversation.mp4", (848, 586), 30, 180, (48000, 2)),
        ("silent_astronaut.mp4", (480, 480), 25, 125, None),
    ],
)
def test_sample_video_metadata(name, size, fps, frames, audio) -> None:
    info = probe(SAMPLE_VIDEOS / name)
    assert (info.width, info.height) == size
    assert info.fps == pytest.approx(fps)
    assert info.frame_count == frames
    assert info.duration_s == pytest.approx(frames / fps, abs=1e-3)
    assert info.has_audio == (audio is not None)
    if audio is not None:
        assert (info.sample_rate, info.channels) == audio
    with open_video(SAMPLE_VIDEOS / name) as video:  # exact times, not float32 approximations
        assert video.frame_times[:4].tolist() == [round(i / fps, 6) for i in range(4)]


def test_frames_by_index_match_ffmpeg() -> None:
    with open_video(SINGLE) as video:
        frames = video.frames([120, 3, 3])
        assert frames.dtype == np.uint8 and frames.shape == (3, 480, 640, 3)
        assert np.array_equal(frames[1], frames[2])
        assert video.frame_times[:3] == pytest.approx([0, 0.04, 0.08])
        for got, index in ((frames[0], 120), (frames[1], 3)):
            diff = np.abs(got.reshape(-1).astype(int) - ffmpeg_frame(SINGLE, index))
            assert diff.mean() < 2.0


def test_audio_spans_are_native_rate_and_join_to_the_whole_track() -> None:
    path = SAMPLE_VIDEOS / "group_conversation.mp4"
    with open_video(path) as video:
        parts = [video.audio(s, s + 3.0) for s in (0.0, 3.0)]
        again = video.audio(1.0, 2.0)  # going back re-reads
    assert all(p.dtype == np.float32 and p.shape == (2, 144000) for p in parts)
    joined = np.concatenate(parts, axis=1)
    reference = ffmpeg_audio(path, 2)
    n = min(joined.shape[1], reference.shape[1])
    assert abs(joined.shape[1] - reference.shape[1]) < 1024
    assert np.abs(joined[:, :n] - reference[:, :n]).max() < 1e-3
    assert np.array_equal(again, joined[:, 48000:96000])


def test_no_audio_track() -> None:
    with open_video(SAMPLE_VIDEOS / "silent_astronaut.mp4") as video:
        assert video.info.has_audio is False
        assert video.audio(0.0, 3.0) is None


def test_av1_is_read(tmp_path: Path) -> None:
    path = tmp_path / "av1.mp4"
    ffmpeg("-i", str(SINGLE), "-t", "1", "-an", "-c:v", "libaom-av1", "-cpu-used", "8", str(path))
    with open_video(path) as video:
        assert video.info.frame_count == 25 and video.info.fps == pytest.approx(25)
        frames = video.frames([0, 24, 10])
    assert frames.shape == (3, 480, 640, 3)
    diff = np.abs(frames[2].reshape(-1).astype(int) - ffmpeg_frame(path, 10))
    assert diff.mean() < 2.0


@pytest.mark.parametrize("codec", ["libx264", "libaom-av1"])
@pytest.mark.parametrize("degrees", [90, 270])
def test_rotation_metadata_is_honoured(tmp_path: Path, codec: str, degrees: int) -> None:
    plain = tmp_path / "plain.mp4"
    rotated = tmp_path / "rotated.mp4"
    ffmpeg("-i", str(SINGLE), "-t", "0.4", "-an", "-c:v", codec, "-cpu-used", "8", str(plain))
    ffmpeg("-i", str(plain), "-c", "copy", "-metadata:s:v:0", f"rotate={degrees}", str(rotated))
    with open_video(rotated) as video:
        assert (video.info.width, video.info.height) == (480, 640)
        frame = video.frames([2])[0]
    assert frame.shape == (640, 480, 3)
    assert np.abs(frame.reshape(-1).astype(int) - ffmpeg_frame(rotated, 2)).mean() < 2.0


def test_variable_frame_rate_times(tmp_path: Path) -> None:
    path = tmp_path / "vfr.mkv"
    ffmpeg(
        "-f", "lavfi", "-i", "testsrc=size=64x48:rate=10:duration=1",
        "-f", "lavfi", "-i", "testsrc=size=64x48:rate=40:duration=1",
        "-filter_complex", "[0:v][1:v]concat=n=2:v=1[v]", "-map", "[v]",
        "-c:v", "libx264", "-fps_mode", "vfr", str(path),
    )  # fmt: skip
    with open_video(path) as video:
        steps = np.round(np.diff(video.frame_times), 3)
    assert video.info.frame_count == 50
    assert set(steps[:9]) == {0.1} and set(steps[11:]) == {0.025}


def test_error_messages(tmp_path: Path) -> None:
    empty = tmp_path / "empty.mp4"
    empty.write_bytes(b"")
    text = tmp_path / "notes.mp4"
    text.write_text("these are my notes, not a video\n")
    truncated = tmp_path / "truncated.mp4"
    truncated.write_bytes(SINGLE.read_bytes()[:3000])  # cut before the end of its index
    audio_only = tmp_path / "speech.mp4"
    ffmpeg("-i", str(SINGLE), "-vn", "-c:a", "copy", str(audio_only))
    cases = {
        empty: "empty file",
        text: "not a video",
        truncated: "truncated",
        audio_only: "no video stream",
        tmp_path / "missing.mp4": "not found",
    }
    for path, reason in cases.items():
        with pytest.raises(MediaError, match=reason):
            open_video(path)


def test_video_id_is_content_based(tmp_path: Path) -> None:
    copy = tmp_path / "copy.mp4"
    copy.write_bytes(SINGLE.read_bytes())
    assert video_id(copy) == video_id(SINGLE)
    assert video_id(copy) != video_id(SAMPLE_VIDEOS / "silent_astronaut.mp4")
    data = bytearray(SINGLE.read_bytes())
    data[-10] ^= 0xFF
    copy.write_bytes(bytes(data))
    assert video_id(copy) != video_id(SINGLE)


def test_a_damaged_middle_costs_only_its_own_frames(tmp_path: Path) -> None:
    with (
        open_video(SINGLE) as clean,
        open_video(scramble(SINGLE, tmp_path / "scrambled.mp4")) as video,
    ):
        assert video.info.frame_count == 200
        before, after = list(range(0, 50, 3)), list(range(150, 200, 3))  # 0-2 s, 6-8 s
        np.testing.assert_array_equal(video.frames(before), clean.frames(before))
        with pytest.raises(DamagedFramesError) as damaged:
            video.frames(list(range(75, 100, 3)))  # 3-4 s
        assert str(damaged.value) == (
            "the frames at 3.00-3.96 s cannot be decoded (the file is damaged there)"
        )
        assert damaged.value.missing and not set(damaged.value.frames) & set(damaged.value.missing)
        np.testing.assert_array_equal(video.frames(after), clean.frames(after))  # after a keyframe
        np.testing.assert_array_equal(video.frames(before[:3]), clean.frames(before[:3]))  # again


def test_damaged_sound_is_refused_for_its_stretch_only(tmp_path: Path) -> None:
    with (
        open_video(SINGLE) as clean,
        open_video(scramble(SINGLE, tmp_path / "scrambled.mp4")) as video,
    ):
        np.testing.assert_array_equal(video.audio(0.0, 1.5), clean.audio(0.0, 1.5))
        with pytest.raises(
            DamagedAudioError, match=r"the sound at 3\.00-4\.00 s cannot be decoded"
        ):
            video.audio(3.0, 4.0)
        # After the damage a fresh decoder reads on: the same sound (not 27 garbage channels).
        late, reference = video.audio(6.0, 8.0), clean.audio(6.0, 8.0)
        assert late.shape == reference.shape == (1, 88200)
        assert np.corrcoef(late[0], reference[0])[0, 1] > 0.99


@pytest.mark.parametrize("damaged", [False, True])
def test_a_late_span_read_first_equals_it_read_in_order(tmp_path: Path, damaged: bool) -> None:
    # A chunk deep in a video reaches its sound by decoding all before it without keeping it:
    # the same samples as a reader that went through in order (a damaged stretch on the way).
    path = scramble(SINGLE, tmp_path / "scrambled.mp4") if damaged else SINGLE
    with open_video(path) as in_order, open_video(path) as direct:
        for start in np.arange(0.0, 6.0, 0.5):
            try:
                in_order.audio(start, start + 0.5)
            except DamagedAudioError:
                assert damaged
        late = direct.audio(6.02, 7.9)
        np.testing.assert_array_equal(late, in_order.audio(6.02, 7.9))
        assert late.shape == (1, round(7.9 * 44100) - round(6.02 * 44100))


def test_a_file_cut_short_keeps_its_beginning(tmp_path: Path) -> None:
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(SINGLE.read_bytes()[:200_000])  # about 6 of its 8 seconds
    with open_video(SINGLE) as clean, open_video(cut) as video:
        assert video.info.frame_count == 200 and video.info.duration_s == pytest.approx(8.0)
        np.testing.assert_array_equal(video.frames([0, 60, 140]), clean.frames([0, 60, 140]))
        with pytest.raises(DamagedFramesError, match=r"7\.60-7\.96 s .*cut short: it ends at 6\."):
            video.frames(list(range(190, 200)))


def _to_avi(tmp_path: Path, codec: str) -> Path:
    out = tmp_path / f"{codec}.avi"
    subprocess.run(
        [require_tool("ffmpeg"), "-v", "error", "-i", str(SINGLE), "-c:v", codec, "-c:a",
         "libmp3lame", str(out)],
        check=True,
    )  # fmt: skip
    return out


def test_h264_in_avi_has_its_frame_times(tmp_path: Path) -> None:
    # decord gave no frame times there (each frame at -3e17 s): the whole video became one
    # segment of 0 s. AVI is constant-rate, so the frames are counted.
    with open_video(_to_avi(tmp_path, "libx264")) as video, open_video(SINGLE) as mp4:
        assert video.info.frame_count == 200 and video.info.duration_s == pytest.approx(8.0)
        np.testing.assert_allclose(video.frame_times, mp4.frame_times, atol=1e-6)


@pytest.mark.parametrize("codec", ["libx264", "mpeg2video"])
def test_avi_frames_without_frame_times_are_the_right_ones(tmp_path: Path, codec: str) -> None:
    # decord had no frame times for these AVIs and then sought wrong frames (frame 199 of
    # the H.264 one gave frame 100); AVI packets' own times are wrong with B-frames too.
    path = _to_avi(tmp_path, codec)
    with open_video(path) as video:
        frames = video.frames([0, 37, 100, 199])
    for got, index in zip(frames, [0, 37, 100, 199], strict=True):
        assert np.abs(got.reshape(-1).astype(int) - ffmpeg_frame(path, index)).mean() < 2.0


@pytest.mark.parametrize(
    ("name", "codec"),
    [
        ("broadcast.mpg", ["mpeg2video", "-qscale:v", "2"]),
        ("dvb.ts", ["libx265", "-preset", "ultrafast", "-x265-params", "log-level=error"]),
    ],
)
def test_mpeg_stream_frames_are_the_right_ones(tmp_path: Path, name: str, codec: list[str]) -> None:
    # Seeking in MPEG program and transport streams lands a keyframe late: decord gave frame
    # k + 12 for frame k of MPEG-2 (HEVC: grey frames), and PyAV missed the first GOP.
    path = tmp_path / name
    ffmpeg("-i", str(SINGLE), "-t", "2", "-c:v", *codec, "-c:a", "mp2", str(path))
    with open_video(path) as video:
        assert video.info.frame_count == 50
        assert video.frame_times[:2].tolist() == pytest.approx([0.0, 0.04])
        for indices in ([30, 49], [5], [0, 13]):  # backwards too
            for got, index in zip(video.frames(indices), indices, strict=True):
                assert np.abs(got.reshape(-1).astype(int) - ffmpeg_frame(path, index)).mean() < 2


@pytest.mark.parametrize(
    "codec",
    [
        ["libx264", "-bf", "3", "-b-pyramid", "normal"],  # B-frames that others refer to
        ["libx264", "-bf", "2", "-b-pyramid", "none"],
        ["libx265", "-preset", "ultrafast", "-x265-params", "log-level=error:bframes=4"],
        ["mpeg4", "-bf", "2", "-qscale:v", "3"],
    ],
)
def test_frames_read_here_and_there_equal_those_read_in_a_row(
    tmp_path: Path, codec: list[str]
) -> None:
    # A read decodes a frame it does not want only if other frames refer to it (FFmpeg's
    # skip_frame): what it gives must be what decoding every frame gives, bit for bit.
    path = tmp_path / "b_frames.mp4"
    ffmpeg("-i", str(SINGLE), "-t", "2", "-an", "-c:v", *codec, str(path))
    with open_video(path) as video:
        every = video.frames(list(range(video.info.frame_count)))
    wanted = [1, 2, 7, 8, 20, 33, 34, 49]
    with open_video(path) as video:
        sparse = np.concatenate([video.frames(wanted[:3]), video.frames(wanted[3:])])
    assert len(every) == 50 and np.array_equal(sparse, every[wanted])
    # One frame a read, each read's frame right after the last: the decoder takes packets
    # beyond a read's last frame before it gives that frame, and the next read wants them.
    with open_video(path) as video:
        one_by_one = np.concatenate([video.frames([index]) for index in range(50)])
    assert np.array_equal(one_by_one, every)


def test_a_video_trimmed_by_an_edit_list_starts_at_the_trim(tmp_path: Path) -> None:
    # Cut without re-encoding (as phones and QuickTime trim): the file keeps the frames from
    # the keyframe before the cut, and an edit list hides them. decord showed them, with
    # indices that changed with seeking, and the sound (which starts at the cut) 1.3 s off.
    path = tmp_path / "trimmed.mp4"
    ffmpeg("-ss", "1.3", "-i", str(SINGLE), "-c", "copy", str(path))
    with open_video(path) as video:
        assert video.info.frame_count == 167 and video.info.duration_s == pytest.approx(6.68)
        for indices in ([0, 20, 100, 166], [10]):
            for got, index in zip(video.frames(indices), indices, strict=True):
                assert np.abs(got.reshape(-1).astype(int) - ffmpeg_frame(path, index)).mean() < 2


def test_an_avi_with_an_empty_chunk_is_complete(tmp_path: Path) -> None:
    # Lossless x264 beside an MP3 track: FFmpeg's AVI muxer writes an empty chunk, which the
    # header counts (106 frames) and the demuxer skips (105): the last segment got an error row
    # saying the file was cut short, and the run exit code 1. The chunk is frame 0 shown again,
    # so frame 1 comes at 0.08 s, as ffmpeg shows it.
    path = tmp_path / "lossless.avi"
    ffmpeg(
        "-i",
        str(SINGLE),
        "-t",
        "4.2",
        "-c:v",
        "libx264",
        "-crf",
        "0",
        "-c:a",
        "libmp3lame",
        str(path),
    )
    with open_video(path) as video:
        assert video.info.frame_count == 105 and video.info.duration_s == pytest.approx(4.24)
        assert video.frame_times[:3].tolist() == [0.0, 0.08, 0.12]
        frames = video.frames([1, 104])
    for got, index in zip(frames, [1, 104], strict=True):
        assert np.abs(got.reshape(-1).astype(int) - ffmpeg_frame(path, index)).mean() < 2.0


def test_an_mpeg4_avi_is_complete(tmp_path: Path) -> None:
    # Its header counts 201 frames, one an empty chunk (frame 0 shown again): 200 frames, the
    # last ending at 8.04 s, as ffmpeg (and decord, which read such files before) time them.
    with open_video(_to_avi(tmp_path, "mpeg4")) as video:
        assert video.info.frame_count == 200 and video.info.duration_s == pytest.approx(8.04)
        assert video.frame_times[:3].tolist() == [0.0, 0.08, 0.12]
        assert video.frames(list(range(200))).shape == (200, 480, 640, 3)


@pytest.mark.parametrize(
    ("name", "args"),
    [
        ("camcorder.MTS", ["-c:v", "libx264", "-c:a", "ac3", "-f", "mpegts"]),
        (
            "bluray.m2ts",
            ["-c:v", "libx264", "-c:a", "ac3", "-f", "mpegts", "-mpegts_m2ts_mode", "1"],
        ),
        (
            "phone.3gp",
            ["-c:v", "libx264", "-s", "176x144", "-c:a", "aac", "-ar", "8000", "-ac", "1"],
        ),
        ("dvd.VOB", ["-c:v", "mpeg2video", "-c:a", "mp2", "-f", "vob"]),
        ("jvc.MOD", ["-c:v", "mpeg2video", "-c:a", "mp2", "-f", "vob"]),
        ("broadcast.mxf", ["-c:v", "mpeg2video", "-c:a", "pcm_s16le", "-ar", "48000"]),
    ],
)
def test_camcorder_phone_and_disc_files_are_found_and_open(
    tmp_path: Path, name: str, args: list[str]
) -> None:
    path = tmp_path / name
    ffmpeg("-i", str(SINGLE), "-t", "2", *args, str(path))
    assert discover_videos([tmp_path]) == [path]
    with open_video(path) as video:
        assert video.info.frame_count == 50 and video.info.has_audio
        (frame,) = video.frames([10])
        assert np.abs(frame.reshape(-1).astype(int) - ffmpeg_frame(path, 10)).mean() < 2


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="named pipes are POSIX")
def test_video_id_and_open_refuse_a_named_pipe_without_blocking(tmp_path: Path) -> None:
    pipe = tmp_path / "v.mp4"
    os.mkfifo(pipe)
    errors: list[BaseException] = []

    def read() -> None:
        for call in (video_id, open_video):
            try:
                call(pipe)
            except BaseException as exc:
                errors.append(exc)

    thread = threading.Thread(target=read, daemon=True)
    thread.start()
    thread.join(10)
    if thread.is_alive():  # blocked in open(): a writer lets it go, then the test fails
        os.close(os.open(pipe, os.O_WRONLY | os.O_NONBLOCK))
        thread.join(10)
    assert [str(e) for e in errors] == [f"{pipe}: a named pipe, not a video file"] * 2
    assert all(isinstance(e, MediaError) for e in errors)
