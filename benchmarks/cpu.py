"""CPU speed against this CPU's own limits: the figures of issue 24, measured in one run.

1. Face detection: MTCNN's frames/s beside dlib's HOG detector on the same frames (640 x 480,
   evenly spaced through the video, and scaled to 1080p), one thread each (dlib has one), best
   of three.
2. The model: GFLOP/s of the full-size model (random weights) at the default precision and
   batch size, beside a 4096 x 4096 matrix product in the same precision measured just before
   and just after it (their mean is the "matrix rate").
3. A 60-s one-face video through the real ``mmadfer annotate`` with its default settings
   (workers, batch size, precision, re-identification on): the pipeline's wall time beside the
   model alone on the same number of clips, what the media stages and face detection took of
   it, and the share of the matrix-rate limit reached end to end (the clips' GFLOP at the
   matrix rate, over the wall time). Each round also gives the pipeline's time over its own
   model turns: free of the model's process-to-process drift (some 3%), it shows what the
   media stages add. The pipeline and the model alone take turns
   (``--rounds``, 2 by default); each round's figures are printed, and the ratios are those
   of the best time of each (a busy machine only adds time).

A shared machine moves every figure (the video's ratio by up to 0.08 between single runs);
the ratios compare figures taken minutes apart at most.

Usage: ``python benchmarks/cpu.py [--seconds 60] [--frames 48] [--rounds 2] [--skip-video]``
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))
from long_video import SOURCE, annotate, loop_video, random_model
from model import matmul_gflops, model_gflop_per_clip

from mmadfer_cli.faces.mtcnn import MtcnnDetector
from mmadfer_cli.media.video import open_video
from mmadfer_cli.model import MMADFERConfig, build_model
from mmadfer_cli.model.inference import (
    cast_weights,
    model_predictor,
    resolve_precision,
)
from mmadfer_cli.plural import counted
from mmadfer_cli.run.allocator import keep_freed_memory
from mmadfer_cli.run.options import DEFAULTS

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16}


def best_rate(work: Callable[[], object], count: int, repeats: int = 3) -> float:
    """Items per second of ``work`` (``count`` items a call): the best of ``repeats`` calls."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        work()
        times.append(time.perf_counter() - start)
    return count / min(times)


def detectors(video: Path, frames: int) -> None:
    """MTCNN beside dlib on the video's frames and on the same frames scaled to 1080p, where
    dlib (not upsampled from 720 px up, as the tool ran it) finds faces from about 80 px only:
    MTCNN is timed there also searching from 80 px (``--min-face-size 80``)."""
    with open_video(video) as reader:
        total = reader.info.frame_count
        native = reader.frames(list(np.linspace(0, total - 1, frames).astype(int)))
    hd = np.stack([np.asarray(Image.fromarray(f).resize((1920, 1080))) for f in native[:16]])
    try:
        import dlib
    except ImportError:
        dlib = None
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    print("1. face detection, 1 thread each (dlib has one), best of 3:")
    for sample, min_faces in ((native, (20,)), (hd, (20, 80))):
        size = f"{sample.shape[2]} x {sample.shape[1]}, {len(sample)} frames"
        hog_rate = None
        if dlib is not None:
            hog = dlib.get_frontal_face_detector()
            upsample = 1 if max(sample.shape[1:3]) < 720 else 0
            hog_rate = best_rate(
                lambda h=hog, s=sample, u=upsample: [h(np.ascontiguousarray(f), u) for f in s],
                len(sample),
            )
            print(f"   {size}: dlib {hog_rate:6.1f} frames/s (upsampled {upsample}x)")
        for min_face in min_faces:
            mtcnn = MtcnnDetector("cpu", min_face=min_face)
            mtcnn.detect(sample[:2])  # warm up
            rate = best_rate(lambda d=mtcnn, s=sample: d.detect(s), len(sample))
            ratio = f"   MTCNN / dlib = {rate / hog_rate:.2f} (aim >= 1.5)" if hog_rate else ""
            print(f"   {size}: MTCNN {rate:6.1f} frames/s (faces from {min_face} px){ratio}")
    torch.set_num_threads(threads)
    if dlib is None:
        print("   dlib not installed: no comparison")


def model_alone(clips: int, batch: int) -> tuple[float, float, float, str]:
    """Seconds for ``clips`` clips in batches of ``batch``, GFLOP per clip, the matrix rate
    (GFLOP/s, mean of before and after) and the precision."""
    precision = resolve_precision("auto", "cpu")
    config = MMADFERConfig()
    torch.manual_seed(0)
    model = cast_weights(build_model(config).eval(), precision)
    predict = model_predictor(model, torch.device("cpu"), precision)
    shape = (config.frames, 3, config.image_size, config.image_size)
    images = [torch.randint(0, 256, shape, dtype=torch.uint8) for _ in range(batch)]
    fbanks = [torch.randn(config.fbank_frames, config.mel_bins) for _ in range(batch)]
    predict(images[:1], fbanks[:1])  # warm up
    cpu, dtype = torch.device("cpu"), DTYPES[precision]
    before = matmul_gflops(cpu, 4096, 3.0, dtype)
    start = time.perf_counter()
    done = 0
    while done < clips:
        n = min(batch, clips - done)
        predict(images[:n], fbanks[:n])
        done += n
    seconds = time.perf_counter() - start
    after = matmul_gflops(cpu, 4096, 3.0, dtype)
    return seconds, model_gflop_per_clip(config), (before + after) / 2, precision


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60.0, help="video length")
    parser.add_argument("--frames", type=int, default=48, help="frames for the detectors")
    parser.add_argument("--rounds", type=int, default=2, help="pipeline / model-alone turns")
    parser.add_argument("--skip-video", action="store_true", help="only parts 1 and 2")
    args = parser.parse_args()
    kept = keep_freed_memory()  # as annotate runs on the CPU: freed blocks are not faulted in again
    print(f"glibc keeps freed memory: {kept}")
    print(f"torch {torch.__version__}, {os.cpu_count()} CPUs, {torch.get_num_threads()} threads")
    with tempfile.TemporaryDirectory(prefix="mmadfer-cpu-") as tmp:
        root = Path(tmp)
        video = root / "one_face.mp4"
        seconds = loop_video(SOURCE, video, args.seconds)
        detectors(video, args.frames)

        batch = DEFAULTS.batch_size
        runs: list[dict] = []
        alones: list[tuple[float, float, float, str]] = []
        checkpoint = None if args.skip_video else random_model(root, "full")
        settings = argparse.Namespace(
            device="cpu", workers=0, batch_size=batch, chunk=DEFAULTS.chunk
        )
        for _ in range(1 if args.skip_video else max(1, args.rounds)):
            if checkpoint is not None:
                out = root / "out.parquet"
                out.unlink(missing_ok=True)
                runs.append(annotate([video], checkpoint, out, settings, reid=True))
            clips = runs[-1]["model"]["clips"] if runs else 2 * batch
            alones.append(model_alone(clips, batch))
        video_report(seconds, clips, batch, runs, alones)


def video_report(
    seconds: float,
    clips: int,
    batch: int,
    runs: list[dict],
    alones: list[tuple[float, float, float, str]],
) -> None:
    """Parts 2 and 3 from the rounds: each round's times, then the ratios of the best ones."""
    alone, gflop, _, precision = min(alones)
    matrix = float(np.mean([a[2] for a in alones]))
    rate = clips * gflop / alone
    rounds = f", best of {len(alones)}" if len(alones) > 1 else ""
    print(f"2. the model ({precision}, batch {batch}, {gflop:.0f} GFLOP a clip{rounds}): "
          f"{clips / alone:.3f} clips/s = {rate:.0f} GFLOP/s")  # fmt: skip
    print(f"   4096 x 4096 {precision} matrix product: {matrix:.0f} GFLOP/s   "
          f"model / matrix = {rate / matrix:.2f} (aim >= 0.7)")  # fmt: skip
    if not runs:
        return
    print(f"3. {seconds:.0f}-s one-face video ({SOURCE.name} looped), {clips} clips, "
          f"{counted(runs[0]['workers'], 'worker')}, default settings (re-identification on):")  # fmt: skip
    for i, (run, (one, *_)) in enumerate(zip(runs, alones, strict=True), 1):
        media, found = run["media"]["busy_s"], run["detector"]
        turns = run["model"]["busy_s"]
        print(f"   round {i}: pipeline {run['wall_s']:.1f} s, model alone {one:.1f} s "
              f"({run['wall_s'] / one:.2f}); media stages {media:.1f} s, face detection "
              f"{found['busy_s']:.1f} s ({found['frames'] / max(found['busy_s'], 1e-9):.0f} "
              f"frames/s); model in {counted(run['model']['batches'], 'batch', 'batches')}, "
              f"{turns:.1f} s (pipeline / its own model time {run['wall_s'] / turns:.2f})")  # fmt: skip
    best = min(runs, key=lambda run: run["wall_s"])
    wall, limit = best["wall_s"], clips * gflop / matrix
    print(f"   best: pipeline {wall:.1f} s, model alone {alone:.1f} s: "
          f"pipeline / model = {wall / alone:.2f} (aim <= 1.2)")  # fmt: skip
    print(f"   at the matrix rate {limit:.1f} s: end to end at {limit / wall:.2f} of the "
          f"limit (aim >= 0.58); command {best['wall']:.1f} s with start-up")  # fmt: skip


if __name__ == "__main__":
    main()
