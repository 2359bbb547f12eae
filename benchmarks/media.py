"""Throughput of the media stages on one video (default: the group sample video).

Prints decode frames/s with PyAV and with ``ffmpeg -f null`` (the practical
ceiling), detector frames/s for each available backend, and
segments/s for the whole stage chain without the model.

Usage: ``python benchmarks/media.py [VIDEO] [--face-models DIR]``
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import time
from pathlib import Path

import av

from mmadfer_cli.faces import DetectorUnavailableError, create_detector
from mmadfer_cli.media.video import open_video
from mmadfer_cli.run.clips import ClipSettings, iter_video_clips

REPO = Path(__file__).resolve().parent.parent


def timed(label: str, count: int, unit: str, work) -> None:
    start = time.perf_counter()
    work()
    seconds = time.perf_counter() - start
    print(f"{label:<34} {count / seconds:9.1f} {unit}/s  ({count} in {seconds:.2f} s)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "video", nargs="?", type=Path, default=REPO / "sample_videos" / "group_conversation.mp4"
    )
    parser.add_argument("--face-models", type=Path, default=None)
    args = parser.parse_args()
    path = str(args.video)
    with open_video(path) as video:
        info = video.info
        sample = video.frames(list(range(0, info.frame_count, max(info.frame_count // 16, 1)))[:16])
    print(
        f"{args.video.name}: {info.width}x{info.height}, {info.fps:g} fps, {info.frame_count} frames"
    )

    def pyav_all() -> None:
        with av.open(path) as container:
            for frame in container.decode(video=0):
                frame.to_ndarray(format="rgb24")

    timed("decode, PyAV (rgb24)", info.frame_count, "frames", pyav_all)
    if shutil.which("ffmpeg"):
        cmd = ["ffmpeg", "-v", "error", "-i", path, "-pix_fmt", "rgb24", "-f", "null", "-"]
        timed(
            "decode, ffmpeg -f null (rgb24)",
            info.frame_count,
            "frames",
            lambda: subprocess.run(cmd, check=True),
        )

    for name in ("mtcnn", "insightface", "dlib"):
        try:
            detector = create_detector(name, face_models=args.face_models, download=False)
        except DetectorUnavailableError as error:
            print(f"detector {name:<25} skipped: {error}")
            continue
        detector.detect(sample[:1])  # warm up
        timed(f"detector {name}", len(sample), "frames", lambda d=detector: d.detect(sample))
        start = time.perf_counter()
        count = sum(1 for _ in iter_video_clips(path, ClipSettings(), detector))
        seconds = time.perf_counter() - start
        print(
            f"{'stage chain, ' + name + ' (no model)':<34} {count / seconds:9.2f} segments/s  "
            f"({count} in {seconds:.2f} s, {info.duration_s / seconds:.2f}x real time)"
        )


if __name__ == "__main__":
    main()
