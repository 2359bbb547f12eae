"""End-to-end speed of ``mmadfer annotate`` on a long video and on a folder of short clips.

Builds an N-minute video by looping a sample video (stream copy with PyAV, in a
temporary folder) and/or a folder of N ten-second clips, runs the real command
on them with a random model of full size (or tiny), and prints the real-time
factor, the hour of video it implies, CPU use ((user + sys) / wall), and, from
``--stats``, each stage's busy share. Where ``ffmpeg`` is installed it also
decodes the long video with one thread, the decoding floor, and prints the
ratio of the pipeline's wall time to it.

Usage: ``python benchmarks/long_video.py [--minutes 2] [--clips 0] [--model full|tiny]
[--device auto] [--workers 0] [--batch-size 32] [--chunk 60]``
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import av
import torch

from mmadfer_cli.model import MMADFERConfig, build_model, save_checkpoint

REPO = Path(__file__).resolve().parent.parent
SOURCE = REPO / "sample_videos" / "single_speaker.mp4"


def loop_video(source: Path, out: Path, seconds: float) -> float:
    """``source`` repeated (packets copied, timestamps shifted) up to ``seconds``; the length."""
    # Each loop is shifted by the span of its decoding timestamps, so they keep increasing.
    firsts: dict[int, int] = {}
    ends: dict[int, int] = {}
    with av.open(str(source)) as probe:
        one = float(probe.duration or 0) / av.time_base
        for p in probe.demux():
            if p.dts is not None:
                i = p.stream.index
                firsts[i] = min(firsts.get(i, p.dts), p.dts)
                ends[i] = max(ends.get(i, p.dts), p.dts + (p.duration or 0))
    loops = max(1, math.ceil(seconds / one))
    with av.open(str(source)) as inp, av.open(str(out), "w") as dst:
        mapped = {s.index: dst.add_stream_from_template(s) for s in inp.streams}
        for k in range(loops):
            inp.seek(0)
            for packet in inp.demux():
                if packet.dts is None:
                    continue
                offset = k * (ends[packet.stream.index] - firsts[packet.stream.index])
                if (packet.pts or 0) * packet.time_base + k * one > seconds:
                    continue
                packet.pts = (packet.pts or 0) + offset
                packet.dts += offset
                packet.stream = mapped[packet.stream.index]
                dst.mux(packet)
    return min(seconds, loops * one)


def random_model(root: Path, size: str) -> Path:
    """A checkpoint of random weights (speed does not depend on them) of the ``full`` or ``tiny``
    model in ``root``, which also becomes ``MMADFER_HOME`` unless one is set."""
    torch.manual_seed(0)
    config = MMADFERConfig() if size == "full" else MMADFERConfig.tiny()
    save_checkpoint(build_model(config), root / "model.safetensors")
    os.environ.setdefault("MMADFER_HOME", str(root / "home"))
    return root / "model.safetensors"


def annotate(
    inputs: list[Path],
    checkpoint: Path,
    out: Path,
    args: argparse.Namespace,
    *extra: str,
    reid: bool = False,
) -> dict:
    """Run the real command (with ``extra`` options; re-identification only with ``reid``);
    its wall time, CPU use and ``--stats``."""
    stats = out.with_suffix(".stats.json")
    cmd = [sys.executable, "-m", "mmadfer_cli", "annotate", *map(str, inputs), "--out", str(out),
           "--checkpoint", str(checkpoint), "--device", args.device, "--workers", str(args.workers),
           "--batch-size", str(args.batch_size), "--chunk", str(args.chunk), "--stats", str(stats),
           "-q", *([] if reid else ["--no-reid"]), *extra]  # fmt: skip
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    subprocess.run(cmd, check=True, cwd=REPO)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return {"wall": wall, "cpu": cpu, **json.loads(stats.read_text())}


def report(label: str, seconds: float, run: dict) -> None:
    rtf = seconds / run["wall"]
    print(
        f"{label}: {seconds / 60:.1f} min of video in {run['wall']:.1f} s: {rtf:.1f}x real time "
        f"(an hour in {3600 / rtf:.0f} s); CPU (user+sys)/wall {run['cpu'] / run['wall']:.2f}"
    )
    m, d, md = run["model"], run["detector"], run["media"]
    print(
        f"  model busy {100 * m['busy_share']:.0f}% ({m['batches']} batches, "
        f"{m['clips_per_batch']:.1f} clips per batch); {d['detectors']} detector(s) busy "
        f"{100 * d['busy_share']:.0f}% each ({d['frames_per_call']:.0f} frames per call); media chain busy "
        f"{100 * md['busy_share_per_worker']:.0f}% per worker ({run['workers']} workers); "
        f"{run['chunks_per_s']:.2f} chunks/s"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=2.0)
    parser.add_argument("--clips", type=int, default=0, help="also N ten-second clips")
    parser.add_argument("--model", choices=("full", "tiny"), default="full")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--workers", type=int, default=0)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--chunk", type=float, default=60.0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="mmadfer-bench-") as tmp:
        root = Path(tmp)
        checkpoint = random_model(root, args.model)
        print(
            f"torch {torch.__version__}, {os.cpu_count()} CPUs, model {args.model}, device {args.device}"
        )
        if args.minutes > 0:
            video = root / "long.mp4"
            seconds = loop_video(SOURCE, video, args.minutes * 60)
            run = annotate([video], checkpoint, root / "long.parquet", args)
            report(f"one {SOURCE.name} loop", seconds, run)
            if shutil.which("ffmpeg"):
                start = time.perf_counter()
                subprocess.run(
                    ["ffmpeg", "-v", "error", "-threads", "1", "-i", str(video), "-f", "null", "-"],
                    check=True,
                )
                floor = time.perf_counter() - start
                print(
                    f"  ffmpeg -threads 1 decode: {floor:.1f} s; pipeline / ffmpeg = {run['wall'] / floor:.1f}"
                )
        if args.clips > 0:
            folder = root / "clips"
            folder.mkdir()
            seconds = loop_video(SOURCE, folder / "clip0000.mp4", 10.0)
            for i in range(1, args.clips):
                os.link(folder / "clip0000.mp4", folder / f"clip{i:04d}.mp4")
            run = annotate([folder], checkpoint, root / "clips", args)
            report(f"{args.clips} clips of {seconds:.0f} s", seconds * args.clips, run)


if __name__ == "__main__":
    main()
