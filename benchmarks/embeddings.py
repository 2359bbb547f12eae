"""Re-identification's face descriptor: dlib's own network beside its PyTorch port, one run.

On the same 150 x 150 chips (the astronaut and the six people of insightface's group
photo, aligned by dlib as the embedder aligns them), prints milliseconds a face for
dlib's ``compute_face_descriptor`` (one core, as dlib runs it) and for the PyTorch
network (``faces/dlib_resnet.py``) with 1 and 2 threads, in batches of 1, 3 (a track's
frames in a segment) and 7, best of five; then how far apart the two versions' vectors
are (max per number, max as a distance) and the ratio of the times.

Usage: ``python benchmarks/embeddings.py``
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from pathlib import Path

import dlib
import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from mmadfer_cli.faces.dlib_resnet import descriptor_net
from mmadfer_cli.faces.embedding import DESCRIPTOR_FILE, models_dir
from mmadfer_cli.run.allocator import keep_freed_memory
from tests.reid_helpers import aligned_chips, face_crops

BATCHES = (1, 3, 7)


def best_ms_a_face(work: Callable[[], object], faces: int, repeats: int = 5) -> float:
    """Milliseconds a face of the fastest of ``repeats`` calls, after one warm-up call."""
    work()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        work()
        times.append(time.perf_counter() - start)
    return 1000 * min(times) / faces


def main() -> None:
    keep_freed_memory()  # as annotate runs on the CPU
    faces = aligned_chips(face_crops())
    reference = dlib.face_recognition_model_v1(str(models_dir() / DESCRIPTOR_FILE))
    net = descriptor_net(models_dir() / DESCRIPTOR_FILE)
    batch = torch.from_numpy(np.stack(faces)).permute(0, 3, 1, 2)
    print(f"torch {torch.__version__}, dlib {dlib.__version__}, {len(faces)} faces")
    dlib_ms = {}
    for n in BATCHES:
        dlib_ms[n] = best_ms_a_face(lambda n=n: reference.compute_face_descriptor(faces[:n]), n)
        print(f"dlib, one core, batch {n}: {dlib_ms[n]:.1f} ms a face")
    for threads in (1, 2):
        torch.set_num_threads(threads)
        for n in BATCHES:
            with torch.inference_mode():
                ms = best_ms_a_face(lambda n=n: net(batch[:n]), n)
            print(f"PyTorch, {threads} thread(s), batch {n}: {ms:.1f} ms a face "
                  f"({dlib_ms[n] / ms:.0f}x dlib)")  # fmt: skip
    expected = np.asarray([np.asarray(v) for v in reference.compute_face_descriptor(faces)])
    with torch.inference_mode():
        vectors = net(batch).numpy()
    apart = np.abs(vectors - expected)
    print(f"PyTorch against dlib: at most {apart.max():.1e} apart a number, "
          f"{np.linalg.norm(vectors - expected, axis=1).max():.1e} as a distance")  # fmt: skip


if __name__ == "__main__":
    main()
