"""Throughput of the whole annotate pipeline on the sample videos, on the CPU and a GPU if any.

For each device, warm and with the threads a worker and the model get: the media chain in one
worker and its parts (frames decoded, faces detected, sound decoded, the rest: tracking, crops,
filterbank, which add up to it), the model alone, then the overlapped pipeline (worker threads
+ batched model), its wall time and segments/s, and how much of the faster stage the overlap
hid (``run/stage_timing.py``). Weights are random: only speed is measured.

Usage: ``python benchmarks/pipeline.py [VIDEO ...] [--model full|tiny] [--devices cpu,cuda]``

``--engine ray`` instead compares the engines on one workload (``--minutes`` of
looped sample video): the real ``mmadfer annotate`` on the local engine, then on
a Ray cluster (``--ray-address``; default a local Ray the command starts), the
wall time of each (the command's, and its pipeline's without start-up), their
ratio and the object store's peak.
"""

from __future__ import annotations

import argparse
import time
import warnings
from pathlib import Path

import torch

from mmadfer_cli.faces import FaceDetector, create_detector
from mmadfer_cli.model import MMADFERConfig, build_model
from mmadfer_cli.model.inference import cast_weights, model_predictor, resolve_precision
from mmadfer_cli.run.clips import ClipSettings
from mmadfer_cli.run.engines.local import worker_threads
from mmadfer_cli.run.stage_timing import time_stages

REPO = Path(__file__).resolve().parent.parent
SAMPLES = sorted((REPO / "sample_videos").glob("*.mp4"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("videos", nargs="*", type=Path, default=SAMPLES)
    parser.add_argument("--model", choices=("full", "tiny"), default="full")
    parser.add_argument(
        "--devices", default="cpu,cuda", help="comma-separated; cuda is skipped without a GPU"
    )
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--detector", default="auto")
    parser.add_argument("--face-models", type=Path, default=None)
    parser.add_argument("--engine", choices=("stages", "ray"), default="stages")
    parser.add_argument("--ray-address", default=None)
    parser.add_argument("--minutes", type=float, default=2.0)
    parser.add_argument("--chunk", type=float, default=60.0)
    args = parser.parse_args()
    if args.engine == "ray":
        compare_engines(args)
        return

    config = MMADFERConfig() if args.model == "full" else MMADFERConfig.tiny()
    settings = ClipSettings(detector=args.detector, face_models=args.face_models)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        backend = create_detector(args.detector, args.face_models, download=False).name
    for warning in caught:
        print(f"warning: {warning.message}")

    names = ", ".join(v.name for v in args.videos)
    print(f"videos: {names}; model: {args.model} (random weights); detector: {backend}")
    print(f"batch size {args.batch_size}, {args.workers} workers, torch {torch.__version__}")
    for name in args.devices.split(","):
        if name == "cuda" and not torch.cuda.is_available():
            print("\ncuda: no GPU here, skipped")
            continue
        device = torch.device(name)
        label = (
            torch.cuda.get_device_name(device)
            if device.type == "cuda"
            else f"CPU, {torch.get_num_threads()} threads"
        )
        precision = resolve_precision("auto", device)
        torch.manual_seed(0)
        model = cast_weights(build_model(config).eval().to(device), precision)
        predict = model_predictor(model, device, precision)

        def make_detector(on: torch.device = device) -> FaceDetector:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                return create_detector(args.detector, args.face_models, download=False, device=on)

        started = time.perf_counter()
        times = time_stages(
            args.videos,
            settings,
            make_detector,
            predict,
            config.class_names,
            batch_size=args.batch_size,
            workers=args.workers,
            threads_per_worker=worker_threads(args.workers, device),
        )
        print(
            f"\n{name} ({label}, {precision}): {times.videos} videos, {times.duration_s:.1f} s of video, "
            f"{times.segments} segments, {times.clips} face clips"
        )
        for line in times.lines():
            print(line)
        print(
            f"  pipeline: {times.pipeline_s:.2f} s wall, {times.segments / times.pipeline_s:.2f} segments/s, "
            f"{times.duration_s / times.pipeline_s:.2f}x real time "
            f"(benchmark total {time.perf_counter() - started:.1f} s)"
        )


def compare_engines(args: argparse.Namespace) -> None:
    """The same workload through the command on the local engine and on Ray."""
    import os
    import sys
    import tempfile

    sys.path.insert(0, str(REPO / "benchmarks"))
    from long_video import SOURCE, annotate, loop_video, random_model

    args.device = "auto"
    with tempfile.TemporaryDirectory(prefix="mmadfer-bench-") as tmp:
        root = Path(tmp)
        checkpoint = random_model(root, args.model)
        video = root / "long.mp4"
        seconds = loop_video(SOURCE, video, args.minutes * 60)
        print(f"{seconds / 60:.1f} min of {SOURCE.name} looped, model {args.model}, "
              f"{os.cpu_count()} CPUs, torch {torch.__version__}")  # fmt: skip
        runs = {}
        for engine in ("local", "ray"):
            extra = ["--engine", engine]
            if engine == "ray" and args.ray_address:
                extra += ["--ray-address", args.ray_address]
            run = annotate([video], checkpoint, root / f"{engine}.parquet", args, *extra)
            runs[engine] = run
            print(f"  {engine}: command {run['wall']:.1f} s, pipeline {run['wall_s']:.1f} s, "
                  f"CPU (user+sys)/wall {run['cpu'] / run['wall']:.2f}")  # fmt: skip
        local, ray = runs["local"], runs["ray"]
        peak = ray.get("ray", {}).get("object_store_peak_bytes", 0) / 2**20
        print(f"  ray / local: command {ray['wall'] / local['wall']:.2f}, pipeline "
              f"{ray['wall_s'] / local['wall_s']:.2f}; object store peak {peak:.0f} MiB")  # fmt: skip


if __name__ == "__main__":
    main()
