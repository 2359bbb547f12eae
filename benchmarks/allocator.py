"""The model on the CPU with and without ``allocator.keep_freed_memory``, each in a fresh process.

Prints clips/s, user and system CPU seconds and page faults of a few batches of the
full-size model (random weights, bfloat16 autocast where the CPU has it natively,
float32 elsewhere), and the speed ratio measured in this run.

    python benchmarks/allocator.py [--batch 4] [--repeats 3]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent

_RUN = """
import resource, sys, time, torch
from mmadfer_cli.run.allocator import keep_freed_memory
from mmadfer_cli.model import MMADFERConfig, build_model
from mmadfer_cli.model.inference import predict_logits, resolve_precision
if sys.argv[1] == "keep":
    keep_freed_memory()
batch, repeats = int(sys.argv[2]), int(sys.argv[3])
model = build_model(MMADFERConfig()).eval()
precision = resolve_precision("auto", "cpu")
images = (torch.rand(batch, 16, 3, 224, 224) * 255).to(torch.uint8)
audio = torch.randn(batch, 1, 512, 128)
predict_logits(model, images, audio, "cpu", precision)
before, t0 = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
for _ in range(repeats):
    predict_logits(model, images, audio, "cpu", precision)
after, wall = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter() - t0
print(batch * repeats / wall, after.ru_utime - before.ru_utime, after.ru_stime - before.ru_stime,
      after.ru_minflt - before.ru_minflt, precision)
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    rates = {}
    for mode in ("plain", "keep"):
        cmd = [sys.executable, "-c", _RUN, mode, str(args.batch), str(args.repeats)]
        out = subprocess.run(cmd, cwd=REPO, check=True, capture_output=True, text=True).stdout
        rate, user, system, faults, precision = out.split()
        rates[mode] = float(rate)
        print(f"{mode:5s} ({precision}): {float(rate):.2f} clips/s, user {float(user):.1f} s, "
              f"system {float(system):.1f} s, {int(faults)} page faults")  # fmt: skip
    print(f"keep / plain: {rates['keep'] / rates['plain']:.2f}x")


if __name__ == "__main__":
    main()
