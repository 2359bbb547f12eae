"""Peak memory of ``mmadfer annotate`` per worker, on large frames (4K by default).

Makes a video of the requested size from the single-speaker sample (PyAV,
H.264), then runs the real command in a fresh process: once on the sample
itself (640 x 480) as the baseline (interpreter, libraries, model, detector),
then with N workers on N copies of the large video. Prints each run's peak
resident memory and the cost per worker: (peak - baseline) / N. Weights are
random: only memory and time are measured.

Usage: ``python benchmarks/memory.py [--size 3840x2160] [--seconds 6] [--workers 1,2]
[--model tiny|full]``
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import av
import torch

from mmadfer_cli.model import MMADFERConfig, build_model, save_checkpoint

REPO = Path(__file__).resolve().parent.parent
SAMPLE = REPO / "sample_videos" / "single_speaker.mp4"

# Runs a command as its own child and prints that child's peak resident memory in KiB.
PEAK = (
    "import resource, subprocess, sys; "
    "done = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True); "
    "sys.stderr.write(done.stderr if done.returncode else ''); "
    "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, done.returncode)"
)


def _looped_frames(width: int, height: int) -> Iterator[av.VideoFrame]:
    """The sample's frames at another size, from the top again when they run out."""
    while True:
        with av.open(str(SAMPLE)) as src:
            for frame in src.decode(video=0):
                yield frame.reformat(width=width, height=height, format="yuv420p")


def make_video(out: Path, width: int, height: int, seconds: float) -> Path:
    """The sample's picture, looped, scaled to ``width`` x ``height``."""
    with av.open(str(SAMPLE)) as src:
        rate = src.streams.video[0].average_rate
    frames = _looped_frames(width, height)
    with av.open(str(out), "w") as dst:
        video = dst.add_stream("libx264", rate=rate, options={"preset": "ultrafast"})
        video.width, video.height, video.pix_fmt = width, height, "yuv420p"
        for index in range(int(seconds * rate)):
            frame = next(frames)
            frame.pts = index
            dst.mux(video.encode(frame))
        dst.mux(video.encode(None))
    return out


def peak(videos: list[Path], workers: int, home: Path, out: Path) -> tuple[float, float]:
    """Peak resident memory (GiB) and wall time (s) of one annotate run."""
    cmd = [sys.executable, "-m", "mmadfer_cli", "annotate", *map(str, videos), "--out", str(out),
           "--overwrite", "--quiet", "--workers", str(workers)]  # fmt: skip
    env = {**os.environ, "MMADFER_HOME": str(home)}
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", PEAK, *cmd], env=env, capture_output=True,
                          text=True, check=True)  # fmt: skip
    kib, code = done.stdout.split()
    if code not in ("0", "1"):
        raise SystemExit(f"annotate failed ({code}):\n{done.stderr}")
    return int(kib) / 2**20, time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", default="3840x2160", help="WIDTHxHEIGHT of the large video")
    parser.add_argument("--seconds", type=float, default=6.0)
    parser.add_argument("--workers", default="1,2", help="comma-separated worker counts")
    parser.add_argument("--model", choices=("full", "tiny"), default="tiny")
    args = parser.parse_args()
    width, height = (int(v) for v in args.size.split("x"))
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        config = MMADFERConfig() if args.model == "full" else MMADFERConfig.tiny()
        save_checkpoint(build_model(config), root / "bench.safetensors")
        home = root / "home"
        subprocess.run([sys.executable, "-m", "mmadfer_cli", "models", "import",
                        str(root / "bench.safetensors")],
                       env={**os.environ, "MMADFER_HOME": str(home)}, check=True,
                       capture_output=True)  # fmt: skip
        print(f"making a {args.seconds:g} s {width} x {height} video ...", flush=True)
        large = make_video(root / "large.mp4", width, height, args.seconds)
        print(f"model: {args.model} (random weights), torch {torch.__version__}")
        base, wall = peak([SAMPLE], 1, home, root / "base.csv")
        print(f"baseline, {SAMPLE.name} (640 x 480), 1 worker: peak {base:.2f} GiB, {wall:.0f} s")
        for workers in (int(w) for w in args.workers.split(",")):
            copies = []
            for i in range(workers):
                copies.append(root / f"large{i}.mp4")
                if not copies[-1].exists():
                    os.link(large, copies[-1])
            top, wall = peak(copies, workers, home, root / "large.csv")
            print(f"{workers} x {width} x {height}, {workers} worker(s): peak {top:.2f} GiB, "
                  f"{(top - base) / workers:.2f} GiB per worker above the baseline, "
                  f"{wall:.0f} s")  # fmt: skip


if __name__ == "__main__":
    main()
