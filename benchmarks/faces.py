"""Face detection throughput: MTCNN on the CPU and on CUDA, beside dlib's HOG and decoding.

Prints frames/s of MTCNN at 640 x 480 and 1920 x 1080 in batches of 1, 16
and 64 on each device there is, the reader's decoding rate of the same video, and
dlib's HOG detector (the former offline default, one frame per call as it
works, upsampled below 720 px as it was) where the ``dlib`` module is
installed, with the MTCNN / dlib ratio measured in this run.

Usage: ``python benchmarks/faces.py [--frames N] [--devices cpu,cuda]``
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from mmadfer_cli.faces.mtcnn import MtcnnDetector
from mmadfer_cli.media.video import open_video

REPO = Path(__file__).resolve().parent.parent
VIDEO = REPO / "sample_videos" / "single_speaker.mp4"
SIZES = {"640x480": (640, 480), "1920x1080": (1920, 1080)}
BATCHES = (1, 16, 64)


def frames_at(frames: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    if frames.shape[2] == size[0] and frames.shape[1] == size[1]:
        return frames
    return np.stack([np.asarray(Image.fromarray(f).resize(size, Image.BILINEAR)) for f in frames])


def rate(work, count: int, device: torch.device) -> float:
    work()  # warm up (kernels, caches)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    start = time.perf_counter()
    work()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return count / (time.perf_counter() - start)


def mtcnn_rate(detector: MtcnnDetector, frames: np.ndarray, batch: int) -> float:
    def work() -> None:
        for first in range(0, len(frames), batch):
            detector.detect(frames[first : first + batch])

    return rate(work, len(frames), detector.device)


def dlib_rate(frames: np.ndarray) -> float | None:
    try:
        import dlib
    except ImportError:
        return None
    detector = dlib.get_frontal_face_detector()
    upsample = 1 if max(frames.shape[1:3]) < 720 else 0

    def work() -> None:
        for frame in frames:
            detector(np.ascontiguousarray(frame), upsample)

    return rate(work, len(frames), torch.device("cpu"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--frames", type=int, default=0, help="frames per run [64 on CUDA, 32 on the CPU]"
    )
    parser.add_argument("--devices", default="cpu,cuda" if torch.cuda.is_available() else "cpu")
    args = parser.parse_args()
    with open_video(VIDEO) as video:
        count = video.info.frame_count
        start = time.perf_counter()
        decoded = video.frames(list(range(count)))
        decode_fps = count / (time.perf_counter() - start)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} CPU threads")
    print(f"decode (PyAV, {VIDEO.name}, 640x480): {decode_fps:8.1f} frames/s")
    for name, size in SIZES.items():
        for device_name in args.devices.split(","):
            device = torch.device(device_name)
            n = args.frames or (64 if device.type == "cuda" else 32)
            frames = frames_at(decoded[np.linspace(0, count - 1, n).astype(int)], size)
            detector = MtcnnDetector(device)
            for batch in BATCHES:
                fps = mtcnn_rate(detector, frames, min(batch, n))
                print(f"mtcnn {name:>9} {device.type:<4} batch {batch:>2}: {fps:8.1f} frames/s")
        sample = frames_at(decoded[np.linspace(0, count - 1, 16).astype(int)], size)
        threads = torch.get_num_threads()
        torch.set_num_threads(1)  # per core, as dlib runs and as each CPU worker would
        one_core = mtcnn_rate(MtcnnDetector("cpu"), sample, 16)
        torch.set_num_threads(threads)
        print(f"mtcnn {name:>9} cpu  batch 16, 1 thread: {one_core:8.1f} frames/s")
        dlib_fps = dlib_rate(sample)
        if dlib_fps is None:
            print(f"dlib  {name:>9}: not installed")
            continue
        print(
            f"dlib  {name:>9} cpu  1 frame per call (1 thread): {dlib_fps:8.1f} frames/s; "
            f"mtcnn / dlib per core: {one_core / dlib_fps:.2f}"
        )


if __name__ == "__main__":
    main()
