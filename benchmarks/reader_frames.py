"""The former decord reader against the PyAV reader: frames bit for bit (issue 22).

Loads ``mmadfer_cli/media.py`` as it was before decord was removed (``--old``, a git
revision) beside today's reader, then for each file of a corpus (the sample videos
and the awkward files the tests build: AV1, rotated, VFR, MKV, AVIs, MPEG-PS/TS, an
edit list, a file cut short, damaged copies) compares what ``annotate`` depends on:
the metadata, the frame times, every frame (read in order, 16 at a time) and the
sound in 3-s spans. Prints one line per file and the totals.

    python benchmarks/reader_frames.py [--old 0fbf9e2]

Needs decord (``pip install decord``, Linux x86_64 and Windows only), ffmpeg and git.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import types
from pathlib import Path

import numpy as np

from mmadfer_cli.media import video as media

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
from tests.damage_helpers import damage, scramble, scramble_packets, small_video  # noqa: E402

SAMPLES = REPO / "sample_videos"
SINGLE = SAMPLES / "single_speaker.mp4"
INFO = ("fps", "frame_count", "duration_s", "width", "height", "has_audio", "sample_rate")


def old_media(revision: str) -> types.ModuleType:
    """``mmadfer_cli/media.py`` at ``revision``, as a module of its own."""
    source = subprocess.run(
        ["git", "show", f"{revision}:mmadfer_cli/media.py"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    module = types.ModuleType("old_media")
    sys.modules["old_media"] = module  # dataclasses look their module up
    exec(compile(source, f"{revision}:mmadfer_cli/media.py", "exec"), module.__dict__)
    return module


def corpus(folder: Path) -> list[Path]:
    """The sample videos and, made with ffmpeg in ``folder``, the tests' awkward files."""

    def ffmpeg(name: str, *args: str) -> Path:
        out = folder / name
        subprocess.run(["ffmpeg", "-v", "error", "-y", *args, str(out)], check=True)
        return out

    single = str(SINGLE)
    files = sorted(SAMPLES.glob("*.mp4"))
    files.append(ffmpeg("av1.mp4", "-i", single, "-t", "1", "-an", "-c:v", "libaom-av1",
                        "-cpu-used", "8"))  # fmt: skip
    for codec in ("libx264", "libaom-av1"):
        plain = ffmpeg(f"plain-{codec}.mp4", "-i", single, "-t", "0.4", "-an", "-c:v", codec,
                       "-cpu-used", "8")  # fmt: skip
        for degrees in (90, 270):
            files.append(ffmpeg(f"rotated{degrees}-{codec}.mp4", "-i", str(plain), "-c", "copy",
                                "-metadata:s:v:0", f"rotate={degrees}"))  # fmt: skip
    files.append(ffmpeg("vfr.mkv", "-f", "lavfi", "-i", "testsrc=size=64x48:rate=10:duration=1",
                        "-f", "lavfi", "-i", "testsrc=size=64x48:rate=40:duration=1",
                        "-filter_complex", "[0:v][1:v]concat=n=2:v=1[v]", "-map", "[v]",
                        "-c:v", "libx264", "-fps_mode", "vfr"))  # fmt: skip
    files.append(ffmpeg("group.mkv", "-i", str(SAMPLES / "group_conversation.mp4"), "-c", "copy"))
    for codec in ("libx264", "mpeg2video", "mpeg4"):
        files.append(ffmpeg(f"{codec}.avi", "-i", single, "-c:v", codec, "-c:a", "libmp3lame"))
    files.append(ffmpeg("lossless.avi", "-i", single, "-t", "4.2", "-c:v", "libx264", "-crf", "0",
                        "-c:a", "libmp3lame"))  # fmt: skip
    files.append(ffmpeg("broadcast.mpg", "-i", single, "-t", "2", "-c:v", "mpeg2video",
                        "-qscale:v", "2", "-c:a", "mp2"))  # fmt: skip
    files.append(ffmpeg("dvb.ts", "-i", single, "-t", "2", "-c:v", "libx265", "-preset",
                        "ultrafast", "-x265-params", "log-level=error", "-c:a", "mp2"))  # fmt: skip
    files.append(ffmpeg("trimmed.mp4", "-ss", "1.3", "-i", single, "-c", "copy"))
    cut = folder / "cut.mp4"
    cut.write_bytes(SINGLE.read_bytes()[:200_000])
    files.append(cut)
    files.append(scramble(SINGLE, folder / "scrambled.mp4"))
    files.append(scramble_packets(SINGLE, folder / "audio-damaged.mp4", "audio", 3.0, 4.0))
    clean = small_video(SAMPLES / "group_conversation.mp4", folder / "small.mp4", 6.0, 160, 120)
    files.append(clean)
    rng = np.random.default_rng(14)  # test_annotate's seeded fuzz
    for i in range(30):
        kind = ("flip", "truncate", "header", "zeros")[i % 4]
        damaged = folder / f"fuzz{i:02d}_{kind}.mp4"
        damaged.write_bytes(damage(clean.read_bytes(), kind, rng)[0])
        files.append(damaged)
    return files


def read_all(module: types.ModuleType, path: Path) -> tuple[object, dict, list]:
    """Opening (info and times, or the error), frames by index (None: not decodable), and
    3-s sound spans (or their errors)."""
    try:
        video = module.open_video(path)
    except module.MediaError as error:
        return str(error), {}, []
    with video:
        frames: dict[int, np.ndarray | None] = {}
        count = video.info.frame_count
        for first in range(0, count, 16):
            batch = list(range(first, min(first + 16, count)))
            try:
                frames.update(zip(batch, video.frames(batch), strict=True))
            except module.DamagedFramesError as error:
                frames.update({i: error.frames.get(i) for i in batch})
        sound: list[object] = []
        for start in np.arange(0.0, video.info.duration_s, 3.0):
            try:
                sound.append(video.audio(start, start + 3.0))
            except module.DamagedAudioError as error:
                sound.append(str(error))
        opened = ({name: getattr(video.info, name) for name in INFO}, video.frame_times.tolist())
        backend = video.info.backend if hasattr(video.info, "backend") else "pyav"
    return (opened, backend), frames, sound


def compare(old: types.ModuleType, path: Path) -> tuple[str, int, int]:
    """A line on ``path``; frames compared; differences (frames, and info, times or sound)."""
    old_open, old_frames, old_sound = read_all(old, path)
    new_open, new_frames, new_sound = read_all(media, path)
    if isinstance(old_open, str) or isinstance(new_open, str):
        line = f"{path.name}: not opened (old: {old_open!r}; new: {new_open!r})"
        return line, 0, int(old_open != new_open)
    (old_meta, backend), (new_meta, _) = old_open, new_open
    notes = []
    if old_meta[0] != new_meta[0]:
        notes.append(f"info {old_meta[0]} -> {new_meta[0]}")
    if old_meta[1] != new_meta[1]:
        notes.append("frame times differ")
    same_sound = len(old_sound) == len(new_sound) and all(
        x == y if isinstance(x, str) or isinstance(y, str) else np.array_equal(x, y)
        for x, y in zip(old_sound, new_sound, strict=False)
    )
    if not same_sound:
        notes.append("sound differs")
    pixels, old_only, new_only, worst = 0, 0, 0, 0
    for index in sorted(set(old_frames) | set(new_frames)):
        a, b = old_frames.get(index), new_frames.get(index)
        if a is None or b is None:
            old_only, new_only = old_only + (a is not None), new_only + (b is not None)
        elif not np.array_equal(a, b):
            pixels += 1
            worst = max(worst, int(np.abs(a.astype(int) - b).max()))
    if pixels:
        notes.append(f"{pixels} frames differ (by up to {worst} levels)")
    if old_only or new_only:
        notes.append(f"decoded by the old reader only: {old_only}, by the new only: {new_only}")
    verdict = "; ".join(notes) or "identical"
    line = f"{path.name} (old: {backend}): {len(new_frames)} frames, {verdict}"
    differences = (
        pixels + old_only + new_only + len(notes) - bool(pixels) - bool(old_only + new_only)
    )
    return line, len(new_frames), differences


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--old", default="0fbf9e2", help="revision with the decord reader")
    args = parser.parse_args()
    old = old_media(args.old)
    total = differing = 0
    with tempfile.TemporaryDirectory() as tmp:
        for path in corpus(Path(tmp)):
            line, frames, differ = compare(old, path)
            total, differing = total + frames, differing + differ
            print(line, flush=True)
    print(f"{total} frames compared; {differing} differences")


if __name__ == "__main__":
    main()
