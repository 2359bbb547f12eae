"""Time the annotate pipeline on some videos: the media chain, the model, and both overlapped.

Used by ``mmadfer doctor`` and ``benchmarks/pipeline.py``. Every figure is taken under the
same conditions, so that they can be compared: each stage runs once before it is timed (a
cold detector or model would count its set-up as work); the media chain runs in a worker
thread with the PyTorch threads of a pipeline worker, the model in the calling thread with
the threads it keeps in the pipeline; the pipeline's workers get detectors that are already
warm. The media chain's parts (frames decoded, faces detected, sound decoded) are timed
inside the one timed pass of the chain, so that they and the rest (tracking, crops,
filterbank) add up to it.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import torch

from mmadfer_cli.faces import FaceDetector
from mmadfer_cli.media.video import Video, open_video, video_id
from mmadfer_cli.plural import counted
from mmadfer_cli.run.chunk import media_source
from mmadfer_cli.run.clips import ClipSettings, iter_video_clips, plan
from mmadfer_cli.run.engines.local import Predict, Stages, run_pipeline, use_threads
from mmadfer_cli.run.shared_detector import CountedDetector, DetectorStats
from mmadfer_cli.run.videos import PipelineStats, VideoResult, VideoTask

T = TypeVar("T")


@dataclass
class StageTimes:
    """Seconds of the media chain (and its parts), the model, and the pipeline, all warm."""

    videos: int = 0
    duration_s: float = 0.0  # of the videos
    segments: int = 0
    clips: int = 0
    workers: int = 1  # of the pipeline
    worker_threads: int = 1  # PyTorch threads of the media chain, alone and in each worker
    model_threads: int = 1  # PyTorch threads of the model, alone and in the pipeline
    batch_size: int = 8
    decode_s: float = 0.0  # parts of media_s: frames decoded,
    detect_s: float = 0.0  # faces detected,
    sound_s: float = 0.0  # sound decoded
    media_s: float = 0.0  # the whole media chain, one worker
    model_s: float = 0.0
    pipeline_s: float = 0.0
    pipeline_model_s: float = 0.0  # the model's busy time in the pipeline,
    pipeline_batches: int = 0  # in this many batches (smaller ones, when clips come slowly)
    results: list[VideoResult] = field(default_factory=list)

    def lines(self) -> list[str]:
        """The timings as printable lines; the media chain's parts add up to it as shown."""
        ms = [round(s * 1000) for s in (self.decode_s, self.detect_s, self.sound_s)]
        whole = round(self.media_s * 1000)
        parts = [
            ("decode frames", ms[0]),
            ("face detection", ms[1]),
            ("decode sound", ms[2]),
            ("tracking, crops, filterbank", max(whole - sum(ms), 0)),
        ]
        out = [
            f"  media chain, one worker, {counted(self.worker_threads, 'PyTorch thread')}:",
            *(f"    {name:<29} {_ms(value)}" for name, value in parts),
            f"    {'= the chain, timed whole':<29} {_ms(whole)}  "
            f"{_rate(self.segments, self.media_s, 'segments')}",
            f"  model alone, {counted(self.model_threads, 'thread')}, batches of "
            f"{self.batch_size}: {_ms(round(self.model_s * 1000))}  "
            f"{_rate(self.clips, self.model_s, 'clips')}",
            f"  pipeline, {counted(self.workers, 'worker')} beside the model: "
            f"{_ms(round(self.pipeline_s * 1000))}  "
            f"{_rate(self.segments, self.pipeline_s, 'segments')} (the model busy "
            f"{_ms(round(self.pipeline_model_s * 1000), 0)} in "
            f"{counted(self.pipeline_batches, 'batch', 'batches')})",
        ]
        return out + self._overlap()

    def _overlap(self) -> list[str]:
        """What overlapping the stages gained, between its two bounds."""
        media = self.media_s / self.workers  # the chain shared by the workers
        faster, slower = sorted((media, self.model_s))
        if faster <= 0:
            return ["  overlap: no face clips, so nothing for the model to overlap"]
        serial = media + self.model_s
        hidden = (serial - self.pipeline_s) / faster
        shared = f"the media chain shared by {self.workers} workers, " if self.workers > 1 else ""
        if self.pipeline_s < slower:
            verdict = (
                "all of the faster stage was hidden, and the pipeline took less than the slower "
                "stage alone: the machine's load changed between the measurements"
            )
        elif hidden > 0:
            verdict = f"{hidden:.0%} of the faster stage was hidden behind the slower"
        else:
            extra = round((self.pipeline_s - serial) * 1000)
            verdict = f"nothing was hidden, it took {_ms(extra, 0)} more than the stages in turn"
        return [
            f"  overlap: {shared}one stage after the other {_ms(round(serial * 1000), 0)}, the "
            f"slower alone {_ms(round(slower * 1000), 0)} (the best overlap); the pipeline "
            f"took {_ms(round(self.pipeline_s * 1000), 0)}: {verdict}"
        ]


def _ms(milliseconds: int, width: int = 8) -> str:
    """Seconds from whole milliseconds, "<0.001 s" where that would read 0.000."""
    shown = f"{milliseconds / 1000:.3f}" if milliseconds else "<0.001"
    return f"{shown:>{width}} s"


def _rate(count: int, seconds: float, unit: str) -> str:
    return f"{count / seconds:8.2f} {unit}/s" if seconds > 0 else ""


class _TimedVideo:
    """An open video whose frame and sound reads are timed (the rest passes through)."""

    def __init__(self, video: Video) -> None:
        self._video = video
        self.decode_s = self.sound_s = 0.0

    def __getattr__(self, name: str) -> Any:
        return getattr(self._video, name)

    def frames(self, indices: Sequence[int]) -> np.ndarray:
        t0 = time.perf_counter()
        try:
            return self._video.frames(indices)
        finally:
            self.decode_s += time.perf_counter() - t0

    def audio(self, start_s: float, end_s: float) -> np.ndarray | None:
        t0 = time.perf_counter()
        try:
            return self._video.audio(start_s, end_s)
        finally:
            self.sound_s += time.perf_counter() - t0


def _in_worker(threads: int | None, work: Callable[[], T]) -> tuple[T, int]:
    """``work()`` in a new thread set up as a pipeline worker (``threads`` PyTorch threads; None:
    as a worker leaves them), and the thread count it ran with."""
    done: queue.SimpleQueue = queue.SimpleQueue()

    def run() -> None:
        try:
            if threads is not None:
                use_threads(threads)
            done.put((True, (work(), torch.get_num_threads())))
        except BaseException as exc:
            done.put((False, exc))

    thread = threading.Thread(target=run, name="mmadfer-timing")
    thread.start()
    thread.join()
    ok, value = done.get()
    if not ok:
        raise value
    return value


def time_stages(
    paths: Sequence[Path],
    settings: ClipSettings,
    make_detector: Callable[[], FaceDetector],
    predict: Predict,
    class_names: Sequence[str],
    batch_size: int = 8,
    workers: int = 1,
    chunk_s: float = 60.0,
    threads_per_worker: int | None = None,
) -> StageTimes:
    """Time the media chain over ``paths`` (warm, in one worker), the model on its clips
    (warm), then the pipeline with ``workers`` workers (warm detectors); see the module."""
    times = StageTimes(videos=len(paths), workers=workers, batch_size=batch_size)
    detectors = [make_detector() for _ in range(workers)]
    times.model_threads = torch.get_num_threads()

    def media() -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        for detector in detectors if paths else []:  # warm-up: the chain and every detector
            _first_segment(paths[0], settings, detector)
        counted_detector = CountedDetector(detectors[0], DetectorStats())
        clips, fbanks = [], []
        for path in paths:
            with open_video(path) as opened:
                times.duration_s += opened.info.duration_s
                video = _TimedVideo(opened)
                t0 = time.perf_counter()
                for segment in iter_video_clips(path, settings, counted_detector, video=video):
                    times.segments += 1
                    clips += [face.clip for face in segment.faces]
                    fbanks += [segment.fbank] * len(segment.faces)
                times.media_s += time.perf_counter() - t0
                times.decode_s += video.decode_s
                times.sound_s += video.sound_s
        times.detect_s = counted_detector.stats.busy_s
        return clips, fbanks

    (clips, fbanks), times.worker_threads = _in_worker(threads_per_worker, media)
    times.clips = len(clips)
    if clips:
        predict(clips[:batch_size], fbanks[:batch_size])  # warm-up: lazy set-up is not work
        t0 = time.perf_counter()
        for start in range(0, len(clips), batch_size):
            predict(clips[start : start + batch_size], fbanks[start : start + batch_size])
        times.model_s = time.perf_counter() - t0
    del clips, fbanks
    warm: queue.SimpleQueue = queue.SimpleQueue()
    for detector in detectors:
        warm.put(detector)
    open_source, chunks = media_source(settings, warm.get_nowait, chunk_s)
    stages = Stages(open_source, video_id, predict, chunks)
    tasks = [VideoTask(i, str(p), Path(p)) for i, p in enumerate(paths)]
    t0 = time.perf_counter()
    stats = PipelineStats()
    pipeline = run_pipeline(tasks, stages, class_names, batch_size=batch_size, workers=workers,
                            stats=stats, threads_per_worker=threads_per_worker)  # fmt: skip
    times.results = list(pipeline)
    times.pipeline_s = time.perf_counter() - t0
    times.pipeline_model_s, times.pipeline_batches = stats.model_s, stats.batches
    return times


def _first_segment(path: Path, settings: ClipSettings, detector: FaceDetector) -> None:
    """Run the media chain on the video's first segment (decoding, detection, crops, sound)."""
    with open_video(path) as video:
        segments = plan(video, settings)
        if segments:
            first = segments[0]
            for _ in iter_video_clips(
                path, settings, detector, span=(first.start_s, first.end_s), video=video
            ):
                pass
