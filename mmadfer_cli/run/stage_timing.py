"""Time each annotate stage alone, then the whole overlapped pipeline, on the same videos.

Used by ``mmadfer doctor`` and ``benchmarks/pipeline.py``. Overlap efficiency
is the pipeline's wall time over the slowest stage alone: 1.0 means the other
stages are completely hidden behind the slowest one.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from mmadfer_cli.faces import FaceDetector
from mmadfer_cli.media.video import open_video, video_id
from mmadfer_cli.run.chunk import media_source
from mmadfer_cli.run.clips import ClipSettings, iter_video_clips, plan, segment_fbank
from mmadfer_cli.run.engines.local import Predict, Stages, run_pipeline
from mmadfer_cli.run.videos import PipelineStats, VideoResult, VideoTask


@dataclass
class StageTimes:
    """Seconds per stage (each alone, one thread) and for the whole pipeline."""

    videos: int = 0
    duration_s: float = 0.0  # of the videos
    segments: int = 0
    clips: int = 0
    decode_s: float = 0.0
    detect_s: float = 0.0
    fbank_s: float = 0.0
    media_s: float = 0.0  # the whole media chain: decode, detect, track, crop, fbank
    model_s: float = 0.0
    pipeline_s: float = 0.0
    results: list[VideoResult] = field(default_factory=list)

    @property
    def track_crop_s(self) -> float:
        """Tracking and cropping: what the media chain spends beyond its measured parts."""
        return max(self.media_s - self.decode_s - self.detect_s - self.fbank_s, 0.0)

    @property
    def overlap_efficiency(self) -> float:
        return self.pipeline_s / max(self.media_s, self.model_s, 1e-9)

    def lines(self) -> list[str]:
        """A printable table of the timings."""

        def rate(seconds: float, count: int, unit: str) -> str:
            return f"{count / seconds:8.2f} {unit}/s" if seconds > 0 else ""

        rows = [
            ("decode (sampled frames)", self.decode_s, ""),
            ("face detection", self.detect_s, ""),
            ("tracking + crops", self.track_crop_s, ""),
            ("audio filterbank", self.fbank_s, ""),
            ("media chain alone", self.media_s, rate(self.media_s, self.segments, "segments")),
            ("model alone", self.model_s, rate(self.model_s, self.clips, "clips")),
            (
                "pipeline (overlapped)",
                self.pipeline_s,
                rate(self.pipeline_s, self.segments, "segments"),
            ),
        ]
        out = [f"  {name:<26} {seconds:8.3f} s  {extra}" for name, seconds, extra in rows]
        out.append(
            f"  overlap efficiency {self.overlap_efficiency:.2f} "
            "(pipeline wall time / slowest stage alone; 1.0 is perfect overlap)"
        )
        return out


def time_stages(
    paths: Sequence[Path],
    settings: ClipSettings,
    make_detector: Callable[[], FaceDetector],
    predict: Predict,
    class_names: Sequence[str],
    batch_size: int = 8,
    workers: int = 2,
    chunk_s: float = 60.0,
) -> StageTimes:
    """Run every stage alone over ``paths``, then the pipeline, and time them."""
    times = StageTimes(videos=len(paths))
    detector = make_detector()
    for path in paths:
        with open_video(path) as video:
            times.duration_s += video.info.duration_s
            for segment in plan(video, settings):
                indices = np.unique(segment.frame_indices).tolist()
                t0 = time.perf_counter()
                frames = video.frames(indices)
                t1 = time.perf_counter()
                detector.detect(frames)
                t2 = time.perf_counter()
                segment_fbank(video, segment)
                t3 = time.perf_counter()
                times.decode_s += t1 - t0
                times.detect_s += t2 - t1
                times.fbank_s += t3 - t2
    clips, fbanks = [], []
    t0 = time.perf_counter()
    for path in paths:
        for segment in iter_video_clips(path, settings, detector):
            times.segments += 1
            clips += [face.clip for face in segment.faces]
            fbanks += [segment.fbank] * len(segment.faces)
    times.media_s = time.perf_counter() - t0
    times.clips = len(clips)
    if clips:
        predict(clips[:1], fbanks[:1])  # warm-up: lazy initialisation is not throughput
        t0 = time.perf_counter()
        for start in range(0, len(clips), batch_size):
            predict(clips[start : start + batch_size], fbanks[start : start + batch_size])
        times.model_s = time.perf_counter() - t0
    del clips, fbanks
    open_source, chunks = media_source(settings, make_detector, chunk_s)
    stages = Stages(open_source, video_id, predict, chunks)
    tasks = [VideoTask(i, str(p), Path(p)) for i, p in enumerate(paths)]
    stats = PipelineStats()
    t0 = time.perf_counter()
    times.results = list(
        run_pipeline(
            tasks, stages, class_names, batch_size=batch_size, workers=workers, stats=stats
        )
    )
    times.pipeline_s = time.perf_counter() - t0
    return times
