"""Make the small talking-face videos in ``sample_videos/``.

The faces come from images that ship inside installed packages (the
public-domain NASA portrait in ``skimage.data.astronaut()`` and the group
photo ``insightface/data/images/t1.jpg``); the speech comes from
``espeak-ng``. A slow pan or zoom moves the faces so that tracking is
exercised. Needs ``ffmpeg`` and ``espeak-ng`` on the PATH.

Usage: ``python scripts/make_sample_videos.py [OUT_DIR]`` (default ``sample_videos``).
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image


@dataclass(frozen=True)
class Shot:
    """One sample video: a source image, a camera move and optional speech."""

    name: str
    size: tuple[int, int]  # output width, height (even numbers for yuv420p)
    fps: int
    seconds: float
    start_box: tuple[float, float, float, float]  # x0, y0, x1, y1 in source pixels
    end_box: tuple[float, float, float, float]
    speech: str | None
    sample_rate: int = 44100
    channels: int = 1


def astronaut() -> Image.Image:
    """The NASA portrait of Eileen Collins shipped with scikit-image (public domain)."""
    from skimage import data

    return Image.fromarray(data.astronaut())


def group_photo() -> Image.Image:
    """insightface's bundled sample photo of several people."""
    import insightface

    path = Path(insightface.__file__).parent / "data" / "images" / "t1.jpg"
    return Image.open(path).convert("RGB")


SHOTS = (
    (
        astronaut,
        Shot(
            name="single_speaker.mp4",
            size=(640, 480),
            fps=25,
            seconds=8.0,
            start_box=(40, 10, 440, 310),
            end_box=(110, 30, 450, 285),
            speech=(
                "Hello, and thank you for joining us today. I am very happy to talk about "
                "our mission, and I hope you enjoy the pictures from space."
            ),
            sample_rate=44100,
            channels=1,
        ),
    ),
    (
        group_photo,
        Shot(
            name="group_conversation.mp4",
            size=(848, 586),
            fps=30,
            seconds=6.0,
            start_box=(0, 0, 1280, 886),
            end_box=(96, 66, 1184, 820),
            speech=(
                "We are all here together. This is a wonderful day, and everybody is smiling "
                "for the camera."
            ),
            sample_rate=48000,
            channels=2,
        ),
    ),
    (
        astronaut,
        Shot(
            name="silent_astronaut.mp4",
            size=(480, 480),
            fps=25,
            seconds=5.0,
            start_box=(0, 0, 512, 512),
            end_box=(70, 20, 400, 350),
            speech=None,
        ),
    ),
)


def render_frames(image: Image.Image, shot: Shot) -> np.ndarray:
    """Frames of a linear camera move from ``start_box`` to ``end_box`` (uint8, N x H x W x 3)."""
    count = round(shot.seconds * shot.fps)
    start = np.asarray(shot.start_box, dtype=np.float64)
    end = np.asarray(shot.end_box, dtype=np.float64)
    frames = np.empty((count, shot.size[1], shot.size[0], 3), dtype=np.uint8)
    for i in range(count):
        t = i / max(count - 1, 1)
        box = tuple(float(v) for v in start + (end - start) * t)
        frames[i] = np.asarray(image.resize(shot.size, Image.BILINEAR, box=box))
    return frames


def speak(text: str, wav: Path) -> None:
    """Synthesise ``text`` to a WAV file with espeak-ng."""
    subprocess.run(["espeak-ng", "-s", "150", "-w", str(wav), text], check=True)


def encode(frames: np.ndarray, shot: Shot, out: Path, wav: Path | None) -> None:
    """Encode frames (and speech padded with silence to the video's length) as H.264 + AAC MP4."""
    height, width = frames.shape[1:3]
    cmd = [
        "ffmpeg", "-y", "-loglevel", "error",
        "-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{width}x{height}",
        "-r", str(shot.fps), "-i", "pipe:0",
    ]  # fmt: skip
    if wav is not None:
        cmd += ["-i", str(wav)]
    cmd += [
        "-map", "0:v:0", "-c:v", "libx264", "-preset", "medium", "-crf", "27",
        "-pix_fmt", "yuv420p", "-g", str(2 * shot.fps), "-threads", "1",
    ]  # fmt: skip
    if wav is not None:
        cmd += [
            "-map", "1:a:0", "-af", "apad", "-c:a", "aac", "-b:a", "64k",
            "-ar", str(shot.sample_rate), "-ac", str(shot.channels),
        ]  # fmt: skip
    cmd += ["-t", f"{shot.seconds:.3f}", "-movflags", "+faststart", str(out)]
    subprocess.run(cmd, input=frames.tobytes(), check=True)


def make_all(out_dir: Path) -> list[Path]:
    """Write every sample video into ``out_dir`` and return their paths."""
    for tool in ("ffmpeg", "espeak-ng"):
        if shutil.which(tool) is None:
            raise SystemExit(f"{tool} is not installed (Debian: apt-get install {tool})")
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    with tempfile.TemporaryDirectory() as tmp:
        for load, shot in SHOTS:
            wav = None
            if shot.speech is not None:
                wav = Path(tmp) / (Path(shot.name).stem + ".wav")
                speak(shot.speech, wav)
            out = out_dir / shot.name
            encode(render_frames(load(), shot), shot, out, wav)
            written.append(out)
    return written


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out_dir", nargs="?", default="sample_videos", type=Path)
    args = parser.parse_args(argv)
    for path in make_all(args.out_dir):
        print(f"{path} ({path.stat().st_size / 1024:.0f} KiB)", file=sys.stderr)


if __name__ == "__main__":
    main()
