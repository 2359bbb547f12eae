"""``mmadfer doctor --engine ray``: what each node of the cluster can do, checked on the node."""

from __future__ import annotations

import socket
import time
from pathlib import Path

import torch

import mmadfer_cli
from mmadfer_cli.plural import counted


def probe_node(video: str) -> str:
    """On a worker: mmadfer imports, a tiny model runs, and ``video`` (shared storage) decodes."""
    from mmadfer_cli.media.video import open_video
    from mmadfer_cli.model import MMADFERConfig, build_model
    from mmadfer_cli.model.inference import predict_logits

    t0 = time.perf_counter()
    model = build_model(MMADFERConfig.tiny()).eval()
    images = torch.zeros(1, 16, 3, 224, 224, dtype=torch.uint8)
    predict_logits(model, images, torch.zeros(1, 1, 512, 128))
    with open_video(Path(video)) as v:
        frames = v.frames([0, 1, 2])
    gpus = torch.cuda.device_count()
    return (
        f"{socket.gethostname()}: mmadfer {mmadfer_cli.__version__}, torch {torch.__version__}, "
        f"{counted(gpus, 'CUDA device')} visible, tiny model ran, read "
        f"{counted(len(frames), 'frame')} of "
        f"{Path(video).name} ({time.perf_counter() - t0:.1f} s)"
    )


def probe_nodes(video: str) -> list[tuple[str, str | BaseException]]:
    """``probe_node`` once on every alive node: (node, its report or the error)."""
    import ray
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    probe = ray.remote(num_cpus=1, max_retries=0)(probe_node)
    refs = []
    for node in ray.nodes():
        if node.get("Alive"):
            strategy = NodeAffinitySchedulingStrategy(node["NodeID"], soft=False)
            refs.append(
                (
                    node["NodeManagerHostname"],
                    probe.options(scheduling_strategy=strategy).remote(video),
                )
            )
    results: list[tuple[str, str | BaseException]] = []
    for name, ref in refs:
        try:
            results.append((name, ray.get(ref, timeout=600)))
        except Exception as exc:  # reported per node: the point is to see which fails
            results.append((name, exc))
    return results
