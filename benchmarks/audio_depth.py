"""What a chunk deep in a long video pays to reach its sound.

Sound is decoded from the top of the track for every chunk (see ``media._AudioReader``), so
a chunk N minutes in decodes N minutes of audio first. Builds a looped video of
``--minutes`` (stream copy, temporary folder), then for a few depths times a fresh
reader's first 3-second span there, next to PyAV decoding the same prefix and nothing
else (the floor), and prints the ratio measured in this run.

    python benchmarks/audio_depth.py [--minutes 60]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import av
from long_video import SOURCE, loop_video

from mmadfer_cli.media.video import open_video


def decode_prefix(path: Path, seconds: float) -> float:
    """Wall seconds for PyAV alone to decode the audio up to ``seconds``."""
    start = time.perf_counter()
    with av.open(str(path)) as container:
        stream = container.streams.audio[0]
        for packet in container.demux(stream):
            if packet.pts is not None and packet.pts * stream.time_base > seconds:
                break
            packet.decode()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=60.0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "long.mp4"
        length = loop_video(SOURCE, path, args.minutes * 60)
        for depth in (0.25, 0.5, 0.95):
            at = depth * length
            with open_video(path) as video:
                start = time.perf_counter()
                video.audio(at, at + 3.0)
                ours = time.perf_counter() - start
            floor = decode_prefix(path, at)
            print(
                f"3 s of sound at {at / 60:5.1f} min: {ours:.2f} s; "
                f"PyAV decoding up to there {floor:.2f} s; ratio {ours / floor:.2f}"
            )


if __name__ == "__main__":
    main()
