"""The driver of a Ray run: chunks scheduled with a bound on those in flight, per-video results.

Videos are planned by tasks (a worker opens the file), then their chunks run
as tasks (``remote.run_chunk``), a video's chunks before new videos, so that
its rows become durable soon. At most twice the cluster's CPUs in plans and chunks
are out at once, so the driver's memory and the object store do not grow with the
number or length of the videos. Ray retries a chunk whose worker died (its
result is taken once, so no row is lost or doubled) and restarts a dead
service actor. Finished videos come out as the local engine's ``VideoResult``s,
stitched the same way, for the same sink.
"""

from __future__ import annotations

import collections
import contextlib
import os
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from mmadfer_cli.run.chunk import PredictorError
from mmadfer_cli.run.engines.ray.connect import cluster_info, object_store_used
from mmadfer_cli.run.engines.ray.remote import (
    ChunkSpec,
    Service,
    chunk_task,
    plan_task,
    warm_worker,
)
from mmadfer_cli.run.errors import Failure, PipelineError
from mmadfer_cli.run.videos import PipelineEvents, PipelineStats, VideoResult, Videos, VideoTask

CHUNK_RETRIES = 3  # a chunk whose worker process died runs again, up to this many times
SAMPLE_EVERY_S = 0.5  # object store use is sampled this often


@dataclass
class RayRun:
    """How a Ray run is laid out, and what it measured (``object_store_peak``, service stats)."""

    model: torch.nn.Module
    precision: str
    batch_size: int
    actors_per_gpu: int = 1
    object_store_peak: int = 0
    services: int = 0
    service_stats: dict[str, float] = field(default_factory=dict)
    _model_ref: Any = None

    def run(
        self,
        tasks: Sequence[VideoTask],
        spec: ChunkSpec,
        events: PipelineEvents | None = None,
        stats: PipelineStats | None = None,
    ) -> Iterator[VideoResult]:
        """Every video through the cluster; each video's result as soon as it is finished."""
        import ray

        events = events or PipelineEvents()
        stats = stats if stats is not None else PipelineStats()
        started = time.perf_counter()
        info = cluster_info()
        # Workers import the chain and load their detectors while the services load the model.
        warm = ray.remote(num_cpus=1, max_retries=0)(warm_worker)
        for _ in range(int(min(info.cpus, 256))):
            warm.remote(spec.settings, bool(info.gpus))
        services, detector_ref = self._start_services(ray, info, spec)
        detector: Any = None  # resolved when the first chunk goes out (the model is loaded then)
        plan = ray.remote(num_cpus=1, max_retries=CHUNK_RETRIES)(plan_task)
        chunk = ray.remote(num_cpus=1, max_retries=CHUNK_RETRIES)(chunk_task)
        limit = max(2, int(2 * info.cpus))
        videos = collections.deque(tasks)
        chunks: collections.deque[tuple[VideoTask, int, int]] = collections.deque()
        state = Videos(tasks, events, stats)
        flying: dict[Any, tuple[VideoTask, int | None]] = {}  # ref -> (video, chunk or plan)
        spec_ref = ray.put(spec)
        submitted = 0
        sampled = 0.0
        try:
            while state:
                while len(flying) < limit and (chunks or videos):
                    if chunks:
                        task, k, count = chunks.popleft()
                        video = state.wanted(task.index)
                        if video is None:
                            continue
                        if detector_ref is not None:
                            detector, detector_ref = ray.get(detector_ref), None
                        ref = chunk.remote(
                            spec_ref, services[submitted % len(services)], detector,
                            str(task.path), task.video, video.video_id, (k, count),
                        )  # fmt: skip
                        submitted += 1
                        flying[ref] = (task, k)
                    else:
                        task = videos.popleft()
                        ref = plan.remote(str(task.path), spec.settings, spec.chunk_s)
                        flying[ref] = (task, None)
                ready, _ = ray.wait(list(flying), num_returns=1, timeout=SAMPLE_EVERY_S)
                if time.perf_counter() - sampled >= SAMPLE_EVERY_S:
                    sampled = time.perf_counter()
                    self.object_store_peak = max(self.object_store_peak, object_store_used() or 0)
                for ref in ready:
                    task, k = flying.pop(ref)
                    value = _value(ray, ref, task)
                    if isinstance(value, Failure):
                        state.failed(task.index, value)
                    elif k is None:
                        count = state.planned(task.index, value)
                        chunks.extendleft((task, c, count) for c in range(count - 1, -1, -1))
                    else:
                        state.chunk_done(task.index, k, value)
                    yield from state.finished([task.index])
            self.service_stats = _summed(ray.get([s.stats.remote() for s in services]))
            stats.model_s = self.service_stats.get("model_s", 0.0)
            stats.batches = int(self.service_stats.get("model_batches", 0))
        finally:
            stats.wall_s = time.perf_counter() - started
            for ref in flying:
                ray.cancel(ref, force=False)
            for service in services:
                ray.kill(service)

    def _start_services(self, ray: Any, info: Any, spec: ChunkSpec) -> tuple[list[Any], Any]:
        """One service actor per GPU (``actors_per_gpu`` each), else one per node on the CPU;
        a service restarts when it dies and a call it had in hand runs again. Also a reference
        to the GPU detector's name and checksum (ready once the first service has loaded)."""
        self._model_ref = ray.put(self.model.cpu())  # kept for the life of the run
        gpus = int(info.gpus)
        options: dict[str, Any] = {
            "max_restarts": -1,
            "max_task_retries": -1,
            "max_concurrency": 256,
        }
        if gpus:
            count = gpus * self.actors_per_gpu
            actor = ray.remote(Service).options(
                num_gpus=1 / self.actors_per_gpu, num_cpus=0, **options
            )
            args = ("cuda", self.precision, self.batch_size, spec.settings)
        else:
            count = max(1, len(info.nodes))
            strategy = "SPREAD" if count > 1 else "DEFAULT"
            actor = ray.remote(Service).options(num_cpus=0, scheduling_strategy=strategy, **options)
            args = ("cpu", self.precision, self.batch_size, None)
        with _native_stderr_muted():  # Ray's core logs that restarts need the model kept: it is
            services = [actor.remote([self._model_ref], *args) for _ in range(count)]
        self.services = count
        return services, services[0].detector.remote()


def _value(ray: Any, ref: Any, task: VideoTask) -> Any:
    """A task's result; a task that failed for good (its worker died every time) as a failure.
    The model failing stops the run, as on the local engine."""
    try:
        return ray.get(ref)
    except ray.exceptions.RayTaskError as exc:
        if isinstance(exc.cause, PredictorError):
            raise PipelineError("the model", [task.video], exc.cause.cause) from exc
        return _task_failure(exc)
    except ray.exceptions.RayError as exc:
        return _task_failure(exc)


def _task_failure(exc: Exception) -> Failure:
    first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return Failure(f"the Ray task failed: {first}", None)


@contextlib.contextmanager
def _native_stderr_muted() -> Iterator[None]:
    """Silence what native code writes to stderr meanwhile (Ray's core prints an error-level note
    when an actor that may restart gets arguments from the object store: here on purpose)."""
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as null:
            os.dup2(null.fileno(), 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def _summed(reports: list[dict[str, float]]) -> dict[str, float]:
    total: dict[str, float] = {}
    for report in reports:
        for key, value in report.items():
            total[key] = total.get(key, 0.0) + value
    return total
