"""The whole annotate run, for the command and the notebook alike: ``run(options, events)``.

In order: check the options; find the videos; choose the device and precision
(or join the Ray cluster); take the output's lock; load the model and a face
detector (``prepare``); open the sink (a file, a folder, stdout, or memory) and
skip what an earlier run of the same output finished; run the engine; hand each
finished video to re-identification and the sink; close the sink. Problems that
stop a run before it starts raise ``UsageError``; what happens after is in the
returned ``RunReport`` (failed and damaged videos, an interruption, a write
error), so that finished work is never lost and the caller only reports.
"""

from __future__ import annotations

import contextlib
import os
import sys
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa
import torch

from mmadfer_cli.faces.detection import DetectorUnavailableError, FaceDetector
from mmadfer_cli.faces.embedding import EmbeddingUnavailableError
from mmadfer_cli.media.discover import PathNotFoundError, discover_videos, path_text
from mmadfer_cli.media.video import MediaError, video_id
from mmadfer_cli.model.checkpoints import CheckpointError
from mmadfer_cli.model.compiled import CompileError
from mmadfer_cli.model.devices import resolve_device
from mmadfer_cli.model.inference import resolve_precision
from mmadfer_cli.model.registry import RegistryError
from mmadfer_cli.plural import agree, counted
from mmadfer_cli.run.allocator import keep_freed_memory
from mmadfer_cli.run.clips import ClipSettings, settings_detector
from mmadfer_cli.run.engines.local import (
    MAX_WORKERS,
    WORKERS_PER_CORE,
    default_workers,
    max_workers,
    run_pipeline,
    worker_threads,
)
from mmadfer_cli.run.engines.ray.connect import RayUnavailableError
from mmadfer_cli.run.errors import PipelineError, os_reason
from mmadfer_cli.run.input_order import InputOrder
from mmadfer_cli.run.options import AnnotateOptions, UsageError
from mmadfer_cli.run.prepare import Prepared, prepare
from mmadfer_cli.run.progress import RunEvents
from mmadfer_cli.run.run_stats import write_stats
from mmadfer_cli.run.shared_detector import DetectorStats
from mmadfer_cli.run.signals import Terminated
from mmadfer_cli.run.videos import PipelineStats, VideoResult, VideoTask
from mmadfer_cli.table.lock import OutputBusyError, OutputLock
from mmadfer_cli.table.schema import RunInfo, rows_table
from mmadfer_cli.table.sinks import MemorySink, Sink, open_sink, output_lock
from mmadfer_cli.table.writers import OutputError

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_STOPPED, EXIT_INTERRUPTED = 0, 1, 2, 3, 130
EXIT_TERMINATED = 143  # 128 + SIGTERM, as a shell reports a process SIGTERM killed

Damage = list[tuple[float, float, str]]


@dataclass
class Stop:
    """Why a run ended before its last video: ``interrupted`` (Ctrl-C), ``terminated`` (SIGTERM
    or SIGHUP), ``broken pipe`` (the reader of stdout went away), ``write`` (the results could
    not be written) or ``internal`` (a bug, or the model failing)."""

    kind: str
    message: str  # one line, what was kept and what to do
    exception: BaseException | None = None  # for --debug


@dataclass
class RunReport:
    """What a run did: its videos, what failed or was damaged (this run's and the earlier runs'
    of the same output), where the results are, and why it stopped early, if it did."""

    info: RunInfo
    results: list[VideoResult] = field(default_factory=list)
    skipped: int = 0  # done by an earlier run of the same output
    failures: list[tuple[str, str]] = field(default_factory=list)
    damage: list[tuple[str, Damage]] = field(default_factory=list)
    stats: PipelineStats = field(default_factory=PipelineStats)
    detection: DetectorStats = field(default_factory=DetectorStats)
    ray: Any = None  # the Ray engine's run (services, object store peak), if any
    where: Path | None = None  # the final output (None: stdout or memory)
    table: pa.Table | None = None  # the rows, when kept in memory
    stop: Stop | None = None
    wall_s: float = 0.0

    @property
    def exit_code(self) -> int:
        """0 all done, 1 some videos failed or are damaged, 3 stopped by an error, 130 Ctrl-C,
        143 SIGTERM or SIGHUP."""
        if self.stop is not None and self.stop.kind == "interrupted":
            return EXIT_INTERRUPTED
        if self.stop is not None and self.stop.kind == "terminated":
            return EXIT_TERMINATED
        if self.stop is not None and self.stop.kind == "broken pipe":  # as when nothing is read
            return EXIT_FAILED
        if self.stop is not None:
            return EXIT_STOPPED
        return EXIT_FAILED if self.failures or self.damage else EXIT_OK


def run(options: AnnotateOptions, events: RunEvents | None = None) -> RunReport:
    """Annotate ``options.inputs`` into ``options.out`` (memory when None); see the module."""
    events = events or RunEvents()
    options.validate()
    with contextlib.ExitStack() as cleanup:
        videos, device, precision, bf16_as, workers = _setup(options, cleanup, events)
        lock = _lock(options)
        if lock is not None:
            cleanup.callback(lock.release)  # however the run ends
            if lock.note:
                events.warning(lock.note, label="note")
        if options.compile:
            events.note("Compiling the model (--compile)...")
        try:
            prepared = prepare(
                options.clip_settings(),
                chunk_s=options.chunk,
                compile_batch=options.batch_size if options.compile else None,
                model=options.model,
                checkpoint=options.checkpoint,
                device=device,
                precision=precision,
                bfloat16=bf16_as,
                first_detector=_warning_detector(events),
                reid=options.reid_settings(),
            )
        except (RegistryError, CheckpointError, DetectorUnavailableError,
                EmbeddingUnavailableError, CompileError, OSError) as exc:  # fmt: skip
            raise UsageError(str(exc)) from exc
        sink = _sink(options, prepared.run)
        report = RunReport(prepared.run, detection=prepared.detection)
        tasks = _not_done(videos, sink, report)
        if report.skipped:
            new = counted(len(tasks), "new video")
            events.note(f"{new}, {report.skipped} already done by an earlier run of this output.")
        reid = options.reid_settings()
        if report.skipped and tasks and reid is not None and reid.scope == "run":
            raise UsageError(
                "--reid-scope run cannot resume: the people of the videos done earlier are not "
                "kept; rerun with --overwrite (or use --reid-scope video)"
            )
        # A worker's thread count follows from the options alone, never from how much work there
        # is: boxes shift by float rounding with it, and rows must not depend on --chunk.
        threads = worker_threads(min(workers, max_workers()), device)
        if options.engine == "local":
            workers = _bounded_workers(options, workers, tasks, prepared.stages.chunks, events)
        results = _engine(options, prepared, tasks, (workers, threads), report, events)
        _consume(results, prepared, sink, (tasks, [path_text(v) for v in videos]), report,
                 events)  # fmt: skip
        if isinstance(sink, MemorySink):
            report.table = sink.table
    if options.stats is not None:
        problem = write_stats(options.stats, report.stats, report.detection, report.ray,
                              (workers, options.batch_size, options.chunk))  # fmt: skip
        if problem:
            events.warning(problem)
    return report


def _setup(
    options: AnnotateOptions, cleanup: contextlib.ExitStack, events: RunEvents
) -> tuple[list[Path], torch.device, str, object, int]:
    """The videos (``events`` told what the folder scans skipped), the device, the precision
    (and how bfloat16 runs) and the worker count."""
    bf16_as = None  # how bfloat16 runs: the device's faster way, or the GPU actors' (weights)
    skipped: list[tuple[Path, str]] = []
    try:
        videos = discover_videos(list(options.inputs), recursive=options.recursive,
                                 globs=options.globs, skipped=skipped)  # fmt: skip
        if skipped:
            events.skipped([(path_text(path), kind) for path, kind in skipped])
        if options.engine == "ray":  # the driver loads the model on its CPU for the actors
            from mmadfer_cli.run.engines.ray.connect import (
                cluster_info,
                cluster_precision,
                connect,
                disconnect,
            )

            if connect(options.ray_address):
                cleanup.callback(disconnect)  # a Ray this run started stops with it
            device = torch.device("cpu")
            precision, bf16_as = cluster_precision(options.precision, cluster_info().gpus)
        else:
            device = resolve_device(options.device)
            precision = resolve_precision(options.precision, device)
        workers = options.workers or default_workers(device)
    except (PathNotFoundError, ValueError, RayUnavailableError) as exc:
        raise UsageError(str(exc)) from exc
    if device.type == "cpu":
        keep_freed_memory()
    if not videos:
        raise UsageError(
            "no video files found in "
            + ", ".join(str(p) for p in options.inputs)
            + " (use --glob PATTERN for unusual extensions)"
        )
    return videos, device, precision, bf16_as, workers


def _bounded_workers(
    options: AnnotateOptions,
    workers: int,
    tasks: list[VideoTask],
    chunks: Callable[[Path], int],
    events: RunEvents,
) -> int:
    """No more workers than there are chunks to run (each would build its detector and embedder
    for nothing) nor than ``max_workers``; a ``--workers`` asked for above that is warned of."""
    ceiling = min(workers, max_workers())
    units, counted = 0, 0
    for task in tasks:  # a video opened only while the count is under the ceiling
        if units >= ceiling:
            break
        units += _chunk_count(chunks, task.path) if options.chunk else 1
        counted += 1
    used = max(1, min(ceiling, units))
    if options.workers and tasks and used < options.workers:
        if used < ceiling:
            videos = f"{counted} video{'s' if counted != 1 else ''}"
            why = f"{videos}, {units} chunk{'s' if units != 1 else ''} of work in all"
        else:
            why = (
                f"at most {WORKERS_PER_CORE} per CPU core and {MAX_WORKERS} in all: each holds "
                "its own face detector and embedder, and a segment's frames"
            )
        events.warning(f"--workers {options.workers}: using {used} ({why})")
    return used


def _chunk_count(chunks: Callable[[Path], int], path: Path) -> int:
    try:
        return chunks(path)
    except Exception:  # unreadable: one unit of work, which makes its error row
        return 1


def _lock(options: AnnotateOptions) -> OutputLock | None:
    """The output's lock, taken (None for stdout and memory)."""
    if options.out is None:
        return None
    try:
        lock = output_lock(options.out, options.fmt)
        if lock is not None:
            lock.acquire()
        return lock
    except (OutputError, OutputBusyError) as exc:
        raise UsageError(str(exc)) from exc
    except OSError as exc:  # a read-only folder, a path through a file, no permission
        raise UsageError(f"cannot write to --out {options.out}: {os_reason(exc)}") from exc


def _sink(options: AnnotateOptions, info: RunInfo) -> Sink:
    if options.out is None:
        return MemorySink(info.schema())
    try:
        return open_sink(options.out, options.fmt, info, overwrite=not options.resume,
                         spreadsheet=options.csv_for_spreadsheets)  # fmt: skip
    except OutputError as exc:
        raise UsageError(str(exc)) from exc
    except OSError as exc:
        raise UsageError(f"cannot write to --out {options.out}: {os_reason(exc)}") from exc


def _warning_detector(events: RunEvents) -> Callable[[ClipSettings, torch.device], FaceDetector]:
    """A detector for the settings whose warnings go to ``events``, once."""

    def make(settings: ClipSettings, device: torch.device) -> FaceDetector:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            detector = settings_detector(settings, device)
        for warning in caught:
            events.warning(str(warning.message))
        return detector

    return make


def _current_id(path: Path) -> str | None:
    try:
        return video_id(path)
    except (OSError, MediaError):  # not a file that can be read: it gets an error row
        return None


def _not_done(videos: list[Path], sink: Sink, report: RunReport) -> list[VideoTask]:
    """The videos to run: those an earlier run of this output did not finish, or whose file
    changed since (their failures and damage are reported again)."""
    done = sink.done()
    tasks = []
    for index, path in enumerate(videos):
        name = path_text(path)
        if name in done and done[name].video_id == _current_id(path):
            report.skipped += 1
            if done[name].error is not None:
                report.failures.append((name, done[name].error))
            if done[name].damaged:
                report.damage.append((name, done[name].damaged))
            continue
        tasks.append(VideoTask(index, name, path))
    return tasks


def _engine(
    options: AnnotateOptions,
    prepared: Prepared,
    tasks: list[VideoTask],
    workers: tuple[int, int | None],
    report: RunReport,
    events: RunEvents,
) -> Iterator[VideoResult]:
    """The chosen engine's stream of finished videos (``workers``: the local engine's workers and
    each one's PyTorch threads)."""
    if options.engine == "ray":
        from mmadfer_cli.run.engines.ray.driver import RayRun
        from mmadfer_cli.run.engines.ray.remote import ChunkSpec

        assert prepared.model is not None
        reid = options.reid_settings()
        ray_run = RayRun(prepared.model, prepared.run.settings["precision"], options.batch_size,
                         options.actors_per_gpu)  # fmt: skip
        report.ray = ray_run
        spec = ChunkSpec(options.clip_settings(), options.chunk, prepared.run.class_names,
                         reid.frames if reid else None)  # fmt: skip
        return ray_run.run(tasks, spec, events, report.stats)
    return run_pipeline(tasks, prepared.stages, prepared.run.class_names,
                        batch_size=options.batch_size, workers=workers[0], events=events,
                        stats=report.stats,
                        threads_per_worker=workers[1])  # fmt: skip


def _consume(
    results: Iterator[VideoResult],
    prepared: Prepared,
    sink: Sink,
    videos: tuple[list[VideoTask], list[str]],
    report: RunReport,
    events: RunEvents,
) -> None:
    """Each finished video through re-identification into the sink; the sink closed at the end
    (``videos``: the tasks to run and every video's name). With ``--reid-scope run`` videos are
    matched in input order (``InputOrder``). Whatever stops the run, the videos finished so far
    stay written."""
    tasks, all_videos = videos
    schema = prepared.run.schema()
    people = prepared.people
    order = InputOrder(tasks) if people is not None and people.settings.scope == "run" else None
    started = time.perf_counter()
    count = len(all_videos) - report.skipped
    events.starting(count)

    def keep(result: VideoResult) -> None:
        if people is not None:
            people.assign(result.rows)
        sink.write(result.task.video, rows_table(result.rows, schema))
        report.results.append(result)
        if result.error is not None:
            report.failures.append((result.task.video, result.error))
        if result.damaged:
            report.damage.append((result.task.video, result.damaged))
        events.video_done(result)

    try:
        for result in results:
            for ready in order.ready(result) if order is not None else (result,):
                keep(ready)
        report.where = sink.close(all_videos)
    except (KeyboardInterrupt, Terminated) as exc:
        results.close()
        for held in order.rest() if order is not None else ():
            keep(held)
        done = len(report.results)
        kept = (
            f"{counted(done, 'finished video')} {agree(done, 'is', 'are')} kept; rerun the same "
            "command to resume."
        )
        if isinstance(exc, Terminated):
            report.stop = Stop("terminated", f"{exc.signal_name}: {kept}")
        else:
            report.stop = Stop("interrupted", kept)
    except BrokenPipeError:
        results.close()
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        report.stop = Stop("broken pipe", "the reader of stdout went away")
    except OSError as exc:  # disk full, no permission, a file system gone read-only
        results.close()
        kept, n = _kept(report, count, all_videos)
        if sink.durable:
            held = f" {agree(n, 'is', 'are')} kept in {sink.durable}"
        else:
            held = f" {agree(n, 'was', 'were')} written"
        report.stop = Stop(
            "write",
            f"cannot write the results: {os_reason(exc)}{kept}{held}."
            " Free some space or fix the permissions, then rerun the same command to resume.",
            exc,
        )
    except Exception as exc:  # a bug: one line, the traceback with --debug
        results.close()
        text = str(exc) if isinstance(exc, PipelineError) else f"internal error: {exc!r}"
        cause = exc.cause if isinstance(exc, PipelineError) else exc
        kept, n = _kept(report, count, all_videos)
        report.stop = Stop(
            "internal",
            f"{path_text(text)}{kept} {agree(n, 'is', 'are')} kept; "
            "rerun the same command to resume.",
            cause,
        )
    finally:
        events.finished()
        report.wall_s = time.perf_counter() - started


def _kept(report: RunReport, count: int, all_videos: list[str]) -> tuple[str, int]:
    """``; N finished videos`` (this run's and earlier runs'), and N for the verb that follows."""
    if not report.results:
        n = len(all_videos) - count
        return f"; {counted(n, 'video')} done before this run", n
    n = len(report.results) + len(all_videos) - count
    return f"; {counted(n, 'finished video')}", n
