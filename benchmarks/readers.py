"""decord against the tool's PyAV reader, on the tool's own access pattern.

The question behind it (issue 22): is decord, which has no wheels for macOS or
Linux aarch64, fast enough on what ``annotate`` reads to be worth keeping? For
each video the script times two patterns with each reader, opening included:

- ``in order``: a whole video front to back, each 3-s segment's 16 sampled frames
  in one ``frames`` call (``run.clips.iter_video_clips`` with the default settings);
- ``resumed``: a fresh reader for the chunk in the middle of the video
  (``--chunk 60``), its warm-up frames in batches of 16, then its segments.

The decord reader is the tool's former decord path (before issue 22): one
``get_batch`` per frame, then a seek to frame 0 to park decord's read-ahead thread.
Videos are made once with ffmpeg from a sample video (a loop of 8 s encoded at
each size with a 2-s GOP like the samples', then stream-copied to length) in
``--workdir``, and reused.

    python benchmarks/readers.py [--long-4k] [--workdir DIR]

Needs decord, which the tool no longer depends on: ``pip install decord`` (Linux
x86_64 and Windows only).
"""

from __future__ import annotations

import argparse
import bisect
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import NamedTuple, Protocol

import decord
import numpy as np

from mmadfer_cli.media.segments import plan_segments
from mmadfer_cli.media.video import open_video
from mmadfer_cli.run.clips import DECODE_BATCH, ClipSettings, plan_chunks, warmup_s

REPO = Path(__file__).resolve().parent.parent
SOURCE = REPO / "sample_videos" / "single_speaker.mp4"
SIZES = {"480p": (854, 480), "1080p": (1920, 1080), "4K": (3840, 2160)}
CHUNK_S = 60.0  # annotate's default --chunk

decord.logging.set_level(decord.logging.QUIET)


class Timing(NamedTuple):
    wall_s: float
    cpu_s: float
    frames: int


class Reader(Protocol):
    frame_times: np.ndarray

    def frames(self, indices: list[int]) -> np.ndarray: ...

    def close(self) -> None: ...


class DecordReader:
    """The tool's former decord path: frame times from decord, one frame per ``get_batch``,
    parked at frame 0 after each read (decord 0.6 otherwise decodes the rest of the video
    into memory)."""

    def __init__(self, path: Path) -> None:
        self._reader = decord.VideoReader(str(path), num_threads=1)
        first = self._reader[0].asnumpy()
        self._reader.seek(0)
        spans = self._reader.get_frame_timestamp(range(len(self._reader))).astype(np.float64)
        times = np.round(spans[:, 0], 6)
        self.frame_times = np.round(times - times[0], 6)
        self.duration_s = float(np.round(spans[-1, 1], 6) - times[0])
        self._shape = first.shape

    def frames(self, indices: list[int]) -> np.ndarray:
        out = np.empty((len(indices), *self._shape), np.uint8)
        for position, index in enumerate(indices):
            out[position] = self._reader.get_batch([index]).asnumpy()[0]
        self._reader.seek(0)
        return out

    def close(self) -> None:
        del self._reader


class PyAVReader:
    """The tool's reader (``media.video.open_video``), which decodes with PyAV."""

    def __init__(self, path: Path) -> None:
        self._video = open_video(path)
        self.frame_times = self._video.frame_times
        self.duration_s = self._video.info.duration_s

    def frames(self, indices: list[int]) -> np.ndarray:
        return self._video.frames(indices)

    def close(self) -> None:
        self._video.close()


def batches(times: np.ndarray, duration_s: float, resumed: bool) -> Iterator[list[int]]:
    """The ``frames`` calls of ``iter_video_clips`` with the default settings: over the whole
    video, or (``resumed``) over its middle chunk, warm-up first."""
    settings = ClipSettings()
    segments = plan_segments(times, duration_s, settings.window_s, settings.stride_s)
    sampled = sorted({i for s in segments for i in s.frame_indices})
    first, stop, done = 0, len(segments), 0
    if resumed:
        chunks = plan_chunks(len(segments), settings, CHUNK_S)
        first, stop = chunks[len(chunks) // 2].first, chunks[len(chunks) // 2].stop
        boundary = max(segments[first - 1].frame_indices)
        done = bisect.bisect_right(sampled, boundary)
        warm_from = times[boundary] - warmup_s(settings)
        start = next(k for k, f in enumerate(sampled) if times[f] >= warm_from)
        for a in range(start, done, DECODE_BATCH):
            yield sampled[a : min(a + DECODE_BATCH, done)]
    for segment in segments[first:stop]:
        upto = bisect.bisect_right(sampled, max(segment.frame_indices))
        if upto > done:
            yield sampled[done:upto]
        done = upto


def run(open_reader: Callable[[Path], Reader], path: Path, resumed: bool) -> Timing:
    """Open ``path`` and read the pattern: wall and CPU seconds (all threads), frames read."""
    wall, cpu = time.perf_counter(), time.process_time()
    reader = open_reader(path)
    count = 0
    for batch in batches(reader.frame_times, reader.duration_s, resumed):
        count += len(reader.frames(batch))
    reader.close()
    return Timing(time.perf_counter() - wall, time.process_time() - cpu, count)


def make_video(workdir: Path, size: str, minutes: int) -> Path:
    """A ``minutes``-long H.264 video at ``size`` (made once, then reused)."""
    out = workdir / f"{size}-{minutes}min.mp4"
    if out.exists():
        return out
    width, height = SIZES[size]
    loop = workdir / f"{size}-loop.mp4"
    ffmpeg = ["ffmpeg", "-v", "error", "-y"]
    if not loop.exists():
        subprocess.run(
            [*ffmpeg, "-i", str(SOURCE), "-an", "-vf", f"scale={width}:{height}", "-c:v",
             "libx264", "-preset", "veryfast", "-g", "50", "-pix_fmt", "yuv420p", str(loop)],
            check=True,
        )  # fmt: skip
    subprocess.run(
        [*ffmpeg, "-stream_loop", "-1", "-i", str(loop), "-t", str(minutes * 60), "-c", "copy",
         str(out)],
        check=True,
    )  # fmt: skip
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--long-4k", action="store_true", help="also 10 min at 4K (slow)")
    parser.add_argument(
        "--workdir", type=Path, default=Path(tempfile.gettempdir()) / "mmadfer-readers"
    )
    parser.add_argument("--repeat", type=int, default=2, help="runs of each; the best counts")
    args = parser.parse_args()
    args.workdir.mkdir(parents=True, exist_ok=True)
    cases = [("480p", 2), ("1080p", 2), ("4K", 2), ("480p", 10), ("1080p", 10)]
    if args.long_4k:
        cases.append(("4K", 10))
    readers: dict[str, Callable[[Path], Reader]] = {"decord": DecordReader, "PyAV": PyAVReader}
    print(f"best of {args.repeat}, wall seconds; frames/s = frames read / wall seconds")
    header = f"{'video':<12} {'pattern':<9} {'frames':>6}"
    for name in readers:
        header += f" {name + ' s':>9} {name + ' f/s':>11}"
    print(f"{header} {'decord/PyAV':>12} {'CPU ratio':>10}")
    for size, minutes in cases:
        path = make_video(args.workdir, size, minutes)
        for pattern, resumed in (("in order", False), ("resumed", True)):
            best: dict[str, Timing] = {}
            for _ in range(args.repeat):  # interleaved, so that load from elsewhere hits both
                for name, opener in readers.items():
                    timing = run(opener, path, resumed)
                    if name not in best or timing.wall_s < best[name].wall_s:
                        best[name] = timing
            counts = {timing.frames for timing in best.values()}
            assert len(counts) == 1, f"the readers read different patterns: {best}"
            line = f"{f'{size} {minutes} min':<12} {pattern:<9} {counts.pop():>6}"
            for timing in best.values():
                line += f" {timing.wall_s:>9.2f} {timing.frames / timing.wall_s:>11.1f}"
            wall = best["decord"].wall_s / best["PyAV"].wall_s
            cpu = best["decord"].cpu_s / best["PyAV"].cpu_s
            print(f"{line} {wall:>12.2f} {cpu:>10.2f}", flush=True)


if __name__ == "__main__":
    main()
