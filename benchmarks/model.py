"""Model throughput: clips per second and achieved GFLOP/s by batch size, beside a plain matmul rate.

The matmul rate (float32, square matrices, best of three) measured in the
same run is the machine's practical ceiling; the ratio says how well the
model uses it. On a shared machine both figures move with the load.

    python benchmarks/model.py                       # CPU (and CUDA when present), batch 1 and 2
    python benchmarks/model.py --devices cuda --batch-sizes 1 8 32 --precisions float32 bfloat16 float16
"""

from __future__ import annotations

import argparse
import time

import torch
from torch.utils.flop_counter import FlopCounterMode

from mmadfer_cli.model import MMADFERConfig, build_model
from mmadfer_cli.model.inference import check_precision, predict_logits


def model_gflop_per_clip(config: MMADFERConfig) -> float:
    """Floating-point operations of one clip's forward pass, counted on the meta device (no compute)."""
    with torch.device("meta"):
        model = build_model(config)
        images = torch.zeros(1, config.frames, 3, config.image_size, config.image_size)
        audio = torch.zeros(1, 1, config.fbank_frames, config.mel_bins)
    with FlopCounterMode(display=False) as counter:
        model(images, audio)
    return counter.get_total_flops() / 1e9


def matmul_gflops(
    device: torch.device, size: int, seconds: float, dtype: torch.dtype = torch.float32
) -> float:
    a = torch.randn(size, size, device=device).to(dtype)
    b = torch.randn(size, size, device=device).to(dtype)
    torch.mm(a, b)
    _sync(device)
    runs, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        torch.mm(a, b)
        runs += 1
    _sync(device)
    return 2 * size**3 * runs / (time.perf_counter() - start) / 1e9


def clips_per_second(model, device, batch: int, precision: str, iters: int) -> float:
    c = model.config
    images = torch.randint(
        0, 256, (batch, c.frames, 3, c.image_size, c.image_size), dtype=torch.uint8
    )
    audio = torch.randn(batch, 1, c.fbank_frames, c.mel_bins)
    predict_logits(model, images, audio, device, precision)  # warm-up
    _sync(device)
    start = time.perf_counter()
    for _ in range(iters):
        predict_logits(model, images, audio, device, precision)
    _sync(device)
    return batch * iters / (time.perf_counter() - start)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    default_devices = ["cpu", "cuda"] if torch.cuda.is_available() else ["cpu"]
    parser.add_argument(
        "--devices", nargs="+", default=default_devices, help="default: %(default)s"
    )
    parser.add_argument(
        "--batch-sizes", nargs="+", type=int, default=[1, 2], help="default: %(default)s"
    )
    parser.add_argument("--precisions", nargs="+", default=["float32"], help="default: %(default)s")
    parser.add_argument("--iters", type=int, default=2, help="timed batches (default: %(default)s)")
    parser.add_argument("--tiny", action="store_true", help="the tiny test configuration")
    args = parser.parse_args()

    config = MMADFERConfig.tiny() if args.tiny else MMADFERConfig()
    gflop = model_gflop_per_clip(config)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} CPU threads")
    print(f"model: {'tiny' if args.tiny else 'full'}, {gflop:.1f} GFLOP per clip")
    for name in args.devices:
        device = torch.device(name)
        label = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
        size = 4096 if device.type == "cuda" else 1024
        ceiling = max(matmul_gflops(device, size, seconds=0.5) for _ in range(3))
        print(f"\n{label}: float32 matmul {size}x{size}: {ceiling:,.0f} GFLOP/s")
        print(f"{'precision':>9} {'batch':>5} {'clips/s':>9} {'GFLOP/s':>9} {'of matmul':>9}")
        model = build_model(config).to(device).eval()
        for precision in args.precisions:
            try:
                check_precision(precision, device)
            except ValueError as e:
                print(f"{precision:>9}  skipped: {e}")
                continue
            for batch in args.batch_sizes:
                rate = clips_per_second(model, device, batch, precision, args.iters)
                achieved = rate * gflop
                print(
                    f"{precision:>9} {batch:>5} {rate:>9.2f} {achieved:>9,.0f} "
                    f"{achieved / ceiling:>9.0%}"
                )


if __name__ == "__main__":
    main()
