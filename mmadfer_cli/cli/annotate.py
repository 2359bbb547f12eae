"""``mmadfer annotate``: videos in, one emotion table out (per person, per segment).

A thin layer: parse options, resolve the model, device and output, run
``pipeline.run_pipeline`` and hand each finished video to the output sink.
Progress and logs go to stderr; stdout carries data only (``--out -``).
"""

from __future__ import annotations

import json
import os
import sys
import time
import traceback
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path

import torch
import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeRemainingColumn,
)

from mmadfer_cli.api import ENGINES, clip_settings, prepare, settings_detector
from mmadfer_cli.cli.engine_options import ENGINE_HELP, RAY_ADDRESS_HELP
from mmadfer_cli.faces import DETECTORS
from mmadfer_cli.faces.detection import DetectorUnavailableError, FaceDetector
from mmadfer_cli.faces.embedding import EmbeddingUnavailableError
from mmadfer_cli.media.discover import PathNotFoundError, discover_videos, path_text
from mmadfer_cli.media.video import seconds_span, video_id
from mmadfer_cli.model.checkpoints import CheckpointError
from mmadfer_cli.model.compiled import CompileError
from mmadfer_cli.model.devices import resolve_device
from mmadfer_cli.model.inference import PRECISION_CHOICES, resolve_precision
from mmadfer_cli.model.registry import RegistryError
from mmadfer_cli.run.allocator import keep_freed_memory
from mmadfer_cli.run.clips import ClipSettings
from mmadfer_cli.run.engines.local import (
    PipelineError,
    PipelineEvents,
    PipelineStats,
    VideoResult,
    VideoTask,
    default_workers,
    run_pipeline,
    worker_threads,
)
from mmadfer_cli.run.engines.ray.connect import (
    ClusterInfo,
    RayUnavailableError,
    cluster_info,
    cluster_precision,
    connect,
)
from mmadfer_cli.run.engines.ray.driver import RayRun
from mmadfer_cli.run.engines.ray.remote import ChunkSpec
from mmadfer_cli.run.reid import DEFAULT_THRESHOLD, SCOPES, People, ReidSettings
from mmadfer_cli.run.shared_detector import DetectorStats
from mmadfer_cli.table.lock import OutputBusyError
from mmadfer_cli.table.sinks import (
    FORMATS,
    OutputError,
    RunInfo,
    Sink,
    open_sink,
    output_lock,
    rows_table,
)

_err = Console(stderr=True)
EXIT_FAILED, EXIT_USAGE, EXIT_STOPPED, EXIT_INTERRUPTED = 1, 2, 3, 130


def _usage_error(message: str) -> typer.Exit:
    _err.print(f"[red]error:[/] {escape(path_text(message))}")
    return typer.Exit(EXIT_USAGE)


def _current_id(path: Path) -> str | None:
    try:
        return video_id(path)
    except OSError:
        return None


class _Progress(PipelineEvents):
    """Rich progress on stderr: videos done, segments/s, ETA, current file."""

    def __init__(self, total: int, quiet: bool) -> None:
        self.segments = 0
        self.started = time.perf_counter()
        self.progress = Progress(
            BarColumn(bar_width=20),
            MofNCompleteColumn(),
            TextColumn("videos · {task.fields[rate]} segments/s · ETA"),
            TimeRemainingColumn(),
            TextColumn("{task.fields[current]}", style="dim"),
            console=_err,
            disable=quiet,
        )
        self.task = self.progress.add_task("annotate", total=total, rate="0.0", current="")

    def video_started(self, task: VideoTask) -> None:
        self.progress.update(self.task, current=escape(_short(task.video)))

    def segments_done(self, task: VideoTask, count: int) -> None:
        self.segments += count
        rate = self.segments / max(time.perf_counter() - self.started, 1e-9)
        self.progress.update(self.task, rate=f"{rate:.1f}")

    def video_done(self) -> None:
        self.progress.advance(self.task)


def _short(video: str, width: int = 30) -> str:
    return video if len(video) <= width else "…" + video[-(width - 1) :]


def _summary(
    results: list[VideoResult], stats: PipelineStats, skipped: int, wall: float, where: str
) -> None:
    videos = len(results)
    if not videos:
        _err.print(
            f"Nothing to do: all {skipped} videos were done by an earlier run of this command "
            f"(--overwrite starts again). Results: {escape(where)}"
        )
        return
    failed = sum(r.error is not None for r in results)
    damaged = sum(bool(r.damaged) for r in results)
    segments = sum(r.segments for r in results)
    tracks = sum(r.tracks for r in results)
    rate = segments / wall if wall > 0 else 0.0
    resumed = f", {skipped} already done" if skipped else ""
    _err.print(
        f"Annotated {videos - failed} of {videos} videos{resumed}: {segments} segments, "
        f"{tracks} person tracks, {stats.clips} face clips, {failed} failed"
        f"{f', {damaged} with damaged stretches' if damaged else ''}; "
        f"{wall:.1f} s ({rate:.2f} segments/s). Results: {escape(where)}"
    )
    if stats.batches:
        # Where the time went, to tune --workers and --batch-size: a model busy most of the
        # wall time wants a faster device; a model mostly idle wants more workers.
        _err.print(
            f"Time: model {stats.model_s:.1f} s in {stats.batches} batches "
            f"({stats.clips / stats.batches:.1f} clips per batch, busy "
            f"{100 * stats.model_s / wall if wall > 0 else 0:.0f}% of the wall time); "
            f"decoding, faces and audio {stats.produce_s:.1f} s summed over the workers.",
            soft_wrap=True,
        )


def annotate(
    ctx: typer.Context,
    inputs: list[Path] = typer.Argument(
        ..., help="Video files and folders (folders are searched for videos).", show_default=False
    ),
    out: str = typer.Option(
        ...,
        "--out",
        "-o",
        help="Result file (.parquet, .csv, .jsonl), a directory (one Parquet file per video), "
        "or - for CSV on stdout.",
        show_default=False,
    ),
    fmt: str | None = typer.Option(
        None,
        "--format",
        "-f",
        help=f"Output format: {', '.join(FORMATS)}. \\[default: from the --out extension; csv for -]",
        show_default=False,
    ),
    model: str | None = typer.Option(
        None,
        "--model",
        "-m",
        help="Name of an imported model. \\[default: the only imported model]",
        show_default=False,
    ),
    checkpoint: Path | None = typer.Option(
        None,
        "--checkpoint",
        help="Use this checkpoint file instead of an imported model.",
        show_default=False,
    ),
    device: str = typer.Option(
        "auto", "--device", "-d", help="auto (a GPU when there is one), cpu, cuda or cuda:N."
    ),
    precision: str = typer.Option(
        "auto",
        "--precision",
        help=f"{', '.join(PRECISION_CHOICES)}: auto is bfloat16 on CUDA (float16 without "
        "bfloat16) and on CPUs with native bfloat16 (AVX512-BF16, AMX), else float32. bfloat16 "
        "casts the weights on CUDA and runs under autocast on the CPU (faster on each).",
    ),
    batch_size: int = typer.Option(
        8, "--batch-size", "-b", min=1, help="Face clips per model call (across videos)."
    ),
    workers: int = typer.Option(
        0,
        "--workers",
        "-j",
        min=0,
        help="Threads decoding videos, detecting faces and cutting clips, in parallel with the "
        "model. 0: one per CPU core, at most 8 (16 with a GPU).",
    ),
    engine: str = typer.Option(
        "local",
        "--engine",
        help=ENGINE_HELP,
    ),
    ray_address: str | None = typer.Option(
        None,
        "--ray-address",
        help=RAY_ADDRESS_HELP,
        show_default=False,
    ),
    actors_per_gpu: int = typer.Option(
        1,
        "--actors-per-gpu",
        min=1,
        help="With --engine ray: model service actors per GPU (2 keeps a GPU busy while one "
        "actor waits on its chunks; each holds a copy of the model).",
    ),
    chunk: float = typer.Option(
        60.0,
        "--chunk",
        min=0.0,
        help="Seconds of video per unit of work: the workers share a long video's chunks "
        "(rows do not depend on it). 0: one video per worker.",
    ),
    compile: bool = typer.Option(
        False,
        "--compile",
        help="Compile the model (torch.compile) before the run: on an H200 581 against 522 "
        "clips/s, after 26 s of compiling (about 2 minutes on a 2-core CPU; less once PyTorch's "
        "compile cache holds it), so it pays back only on long runs (hours of video). Needs a "
        "C++ compiler on the CPU; --engine local only. \\[default: off]",
    ),
    window: float = typer.Option(3.0, "--window", min=0.1, help="Segment length in seconds."),
    stride: float | None = typer.Option(
        None,
        "--stride",
        min=0.1,
        help="Seconds between segment starts. \\[default: the window: a contiguous timeline]",
        show_default=False,
    ),
    min_segment: float = typer.Option(
        1.0, "--min-segment", min=0.0, help="Shortest last partial segment kept, in seconds."
    ),
    detector: str = typer.Option(
        "auto",
        "--detector",
        help="Face detector: auto or mtcnn (MTCNN, as the model's training faces were found; "
        "runs on --device), insightface (SCRFD, needs a model pack) or dlib (HOG, frontal faces).",
    ),
    face_models: Path | None = typer.Option(
        None,
        "--face-models",
        help="Folder of an unpacked insightface model pack (e.g. buffalo_l). "
        "\\[default: ~/.insightface/models/buffalo_l]",
        show_default=False,
    ),
    face_threshold: float = typer.Option(
        0.5, "--face-threshold", min=0.0, max=1.0, help="Minimum detector confidence of a face."
    ),
    min_face_size: int = typer.Option(
        20,
        "--min-face-size",
        min=1,
        help="Smallest face kept (shorter box side, in pixels); MTCNN searches from this size up "
        "(20 as the official preprocessing; larger is faster on HD video).",
    ),
    max_faces: int = typer.Option(
        0, "--max-faces", min=0, help="Keep the largest N faces per frame (0: all)."
    ),
    min_face_frames: int = typer.Option(
        8,
        "--min-face-frames",
        min=1,
        max=16,
        help="A person gets a prediction in a segment when seen in at least this many of its 16 frames.",
    ),
    track_iou: float = typer.Option(
        0.3, "--track-iou", min=0.0, max=1.0, help="Box overlap that continues a track."
    ),
    max_gap: float = typer.Option(
        1.0, "--max-gap", min=0.0, help="Seconds a person may be unseen before the track ends."
    ),
    reid: bool = typer.Option(
        True,
        "--reid/--no-reid",
        help="Re-identify people: a person_id that stays the same across cuts and "
        "re-appearances, and tracks split where the person changed.",
    ),
    reid_threshold: float = typer.Option(
        DEFAULT_THRESHOLD,
        "--reid-threshold",
        min=0.0,
        help="Face-embedding distance under which two tracks are the same person "
        "(lower: fewer wrong merges, more ids per person).",
    ),
    reid_scope: str = typer.Option(
        "video",
        "--reid-scope",
        help=f"{' or '.join(SCOPES)}: person ids per video, or shared by the videos of the run "
        "(the same participants in several sessions).",
    ),
    recursive: bool = typer.Option(
        True, "--recursive/--no-recursive", help="Search folders recursively."
    ),
    globs: list[str] = typer.Option(
        [],
        "--glob",
        help="Also treat files matching this pattern as videos (repeatable).",
        show_default=False,
    ),
    resume: bool = typer.Option(
        True,
        "--resume/--overwrite",
        help="Resume: skip videos an interrupted run with the same --out already finished. "
        "Overwrite: start again.",
    ),
    quiet: bool = typer.Option(
        False,
        "--quiet",
        "-q",
        help="Print only errors and warnings (no progress, no summary). \\[default: off]",
    ),
    stats: Path | None = typer.Option(
        None,
        "--stats",
        help="Write where the time went (each stage's busy seconds, batch sizes, chunks/s) "
        "to this JSON file.",
        show_default=False,
    ),
    debug: bool = typer.Option(
        False,
        "--debug",
        help="Print the traceback of internal errors (bugs), not only their one-line reason. "
        "\\[default: off]",
    ),
) -> None:
    """Annotate every person in every segment of the videos with an emotion and class probabilities.

    Exit codes: 0 all videos done, 1 some videos failed or have damaged stretches (error rows, listed at the end), 2 usage errors (bad option, missing input, no model, another run writing the same --out, an --out that cannot be written, --compile where compiling cannot work), 3 stopped early (results could not be written: disk full, no permission; or an internal error), 130 interrupted. After 3 or 130 finished videos are kept: rerun the same command to resume.
    """
    if fmt is not None and fmt not in FORMATS:
        raise _usage_error(f"--format must be one of {', '.join(FORMATS)}, not {fmt!r}")
    if detector not in DETECTORS:
        raise _usage_error(f"--detector must be one of {', '.join(DETECTORS)}, not {detector!r}")
    if precision not in PRECISION_CHOICES:
        raise _usage_error(f"--precision must be one of {', '.join(PRECISION_CHOICES)}")
    if reid_scope not in SCOPES:
        raise _usage_error(f"--reid-scope must be one of {', '.join(SCOPES)}, not {reid_scope!r}")
    if engine not in ENGINES:
        raise _usage_error(f"--engine must be one of {', '.join(ENGINES)}, not {engine!r}")
    if compile and engine != "local":
        raise _usage_error("--compile needs --engine local (Ray's actors run the model as is)")
    bf16_as = None  # how bfloat16 runs: the device's faster way, or the GPU actors' (weights)
    try:
        videos = discover_videos(inputs, recursive=recursive, globs=globs)
        if engine == "ray":  # the driver loads the model on its CPU for the actors
            cluster = _join_cluster(ray_address, ctx)
            torch_device = torch.device("cpu")
            mode, bf16_as = cluster_precision(precision, cluster.gpus)
        else:
            torch_device = resolve_device(device)
            mode = resolve_precision(precision, torch_device)
        workers = workers or default_workers(torch_device)
    except (PathNotFoundError, ValueError, RayUnavailableError) as exc:
        raise _usage_error(str(exc)) from exc
    if torch_device.type == "cpu":
        keep_freed_memory()
    if not videos:
        raise _usage_error(
            "no video files found in "
            + ", ".join(str(p) for p in inputs)
            + " (use --glob PATTERN for unusual extensions)"
        )
    try:
        lock = output_lock(out, fmt)
        if lock is not None:
            lock.acquire()
            ctx.call_on_close(lock.release)  # however the command ends
    except (OutputError, OutputBusyError) as exc:
        raise _usage_error(str(exc)) from exc
    except OSError as exc:  # a read-only folder, a path through a file, no permission
        raise _usage_error(f"cannot write to --out {out}: {_os_reason(exc)}") from exc
    if lock is not None and lock.note:
        _err.print(f"[yellow]note:[/] {escape(lock.note)}")
    settings = clip_settings(window, stride, min_segment, min_face_frames, face_threshold,
                             min_face_size, max_faces, track_iou, max_gap, detector, face_models)  # fmt: skip
    if compile and not quiet:
        _err.print("Compiling the model (--compile)...")
    try:
        prepared = prepare(
            settings,
            chunk_s=chunk,
            compile_batch=batch_size if compile else None,
            model=model,
            checkpoint=checkpoint,
            device=torch_device,
            precision=mode,
            bfloat16=bf16_as,
            first_detector=_make_detector,
            reid=ReidSettings(reid_threshold, reid_scope) if reid else None,
        )
    except (RegistryError, CheckpointError, DetectorUnavailableError, EmbeddingUnavailableError,
            CompileError, OSError) as exc:  # fmt: skip
        raise _usage_error(str(exc)) from exc
    run = prepared.run
    try:
        sink = open_sink(out, fmt, run, overwrite=not resume)
    except OutputError as exc:
        raise _usage_error(str(exc)) from exc
    except OSError as exc:
        raise _usage_error(f"cannot write to --out {out}: {_os_reason(exc)}") from exc

    done = sink.done()
    tasks, skipped, previous_failures, previous_damage = [], 0, [], []
    for index, path in enumerate(videos):
        name = path_text(path)
        if name in done and done[name].video_id == _current_id(path):
            skipped += 1
            if done[name].error is not None:
                previous_failures.append((name, done[name].error))
            if done[name].damaged:
                previous_damage.append((name, done[name].damaged))
            continue
        tasks.append(VideoTask(index, name, path))
    if skipped and not quiet:
        _err.print(f"Resuming: {skipped} of {len(videos)} videos already done in an earlier run.")
    if skipped and tasks and reid and reid_scope == "run":
        raise _usage_error(
            "--reid-scope run cannot resume: the people of the videos done earlier are not "
            "kept; rerun with --overwrite (or use --reid-scope video)"
        )

    names = [path_text(v) for v in videos]
    pipeline_stats = PipelineStats()
    on_ray = None
    if engine == "ray":
        assert prepared.model is not None
        on_ray = RayRun(prepared.model, mode, batch_size, actors_per_gpu)
        frames = ReidSettings(reid_threshold, reid_scope).frames if reid else None
        spec = ChunkSpec(settings, chunk, run.class_names, frames)

        def start(events: PipelineEvents, stats: PipelineStats) -> Iterator[VideoResult]:
            return on_ray.run(tasks, spec, events, stats)
    else:

        def start(events: PipelineEvents, stats: PipelineStats) -> Iterator[VideoResult]:
            return run_pipeline(tasks, prepared.stages, run.class_names, batch_size=batch_size,
                                workers=workers, events=events, stats=stats,
                                threads_per_worker=worker_threads(workers, torch_device))  # fmt: skip

    exit_code, failures, damage = _run(
        pipeline_stats, len(tasks), start, prepared.people, run, sink, names, quiet, debug
    )
    if on_ray is not None and not quiet:
        _err.print(
            f"Ray: {on_ray.services} service actor(s); object store peak "
            f"{on_ray.object_store_peak / 2**20:.0f} MiB."
        )
    if stats is not None:
        _write_stats(stats, pipeline_stats, prepared.detection, workers, batch_size, chunk, on_ray)
    failures = previous_failures + failures
    damage = previous_damage + damage
    if damage:
        _err.print(
            f"[yellow]{len(damage)} video(s) have damaged stretches[/] "
            "(their segments there are error rows, the others are annotated):"
        )
        for name, stretches in damage:
            _err.print(f"  {escape(_damage_line(name, stretches))}", soft_wrap=True)
        exit_code = max(exit_code, EXIT_FAILED)
    if failures:
        _err.print(f"[red]{len(failures)} video(s) failed:[/]")
        for name, reason in failures:
            # Media errors already start with the path; do not print it twice.
            line = reason if reason.startswith(name) else f"{name}: {reason}"
            _err.print(f"  {escape(line)}", soft_wrap=True)  # paths stay whole for copying
        if not debug and any(r.startswith("internal error") for _, r in failures):
            _err.print(
                "Rerun with --debug for the tracebacks of internal errors (and please report them)."
            )
        exit_code = max(exit_code, EXIT_FAILED)
    raise typer.Exit(exit_code)


def _damage_line(name: str, stretches: list[tuple[float, float, str]]) -> str:
    """One line for a partly damaged video: how many segments, where, and the first reason."""
    start, end = stretches[0][0], stretches[-1][1]
    first = "" if len(stretches) == 1 else "first: "
    return (
        f"{name}: {len(stretches)} segment(s) in {seconds_span(start, end)} could not be read; "
        f"{first}{stretches[0][2]}"
    )


def _make_detector(settings: ClipSettings, device: torch.device) -> FaceDetector:
    """A detector for the settings; any warning it gives is shown once, on stderr."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        detector = settings_detector(settings, device)
    for warning in caught:
        _err.print(f"[yellow]warning:[/] {escape(str(warning.message))}")
    return detector


def _join_cluster(address: str | None, ctx: typer.Context) -> ClusterInfo:
    """Join (or start) the Ray cluster; a Ray this command started stops with it."""
    if connect(address):
        import ray

        ctx.call_on_close(ray.shutdown)
    return cluster_info()


def _run(
    stats: PipelineStats,
    count: int,
    start: Callable[[PipelineEvents, PipelineStats], Iterator[VideoResult]],
    people: People | None,
    run: RunInfo,
    sink: Sink,
    all_videos: list[str],
    quiet: bool,
    debug: bool,
) -> tuple[int, list[tuple[str, str]], list[tuple[str, list[tuple[float, float, str]]]]]:
    """Run ``count`` videos through the engine ``start`` gives into the sink: the exit code so
    far (0; 3 when results could not be written or an internal error stopped the run; 130 when
    interrupted), the failed videos with their reasons and the partly damaged ones with their
    damaged segments."""
    schema = run.schema()
    events = _Progress(count, quiet)
    results: list[VideoResult] = []
    started = time.perf_counter()
    failures: list[tuple[str, str]] = []
    damage: list[tuple[str, list[tuple[float, float, str]]]] = []
    pipeline = start(events, stats)
    kept = f"; {len(all_videos) - count} video(s) done before this run"
    try:
        with events.progress:
            for result in pipeline:
                if result.exception is not None and debug:
                    _print_traceback(result.exception)
                if people is not None:
                    people.assign(result.rows)
                sink.write(result.task.video, rows_table(result.rows, schema))
                results.append(result)
                kept = f"; {len(results) + len(all_videos) - count} finished video(s)"
                if result.error is not None:
                    failures.append((result.task.video, result.error))
                if result.damaged:
                    damage.append((result.task.video, result.damaged))
                events.video_done()
        where = sink.close(all_videos)
    except KeyboardInterrupt:
        pipeline.close()
        _err.print(
            f"[yellow]Interrupted:[/] {len(results)} finished video(s) are kept; "
            "rerun the same command to resume."
        )
        return EXIT_INTERRUPTED, failures, damage
    except BrokenPipeError:
        pipeline.close()
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_FAILED, failures, damage
    except OSError as exc:  # disk full, no permission, a file system gone read-only
        pipeline.close()
        if debug:
            _print_traceback(exc)
        held = f" are kept in {sink.durable}" if sink.durable else " were written"
        _err.print(
            f"[red]error:[/] cannot write the results: {escape(_os_reason(exc))}{kept}{held}. "
            "Free some space or fix the permissions, then rerun the same command to resume.",
            soft_wrap=True,
        )
        return EXIT_STOPPED, failures, damage
    except Exception as exc:  # a bug: one line, the traceback with --debug
        pipeline.close()
        if debug:
            _print_traceback(exc.cause if isinstance(exc, PipelineError) else exc)
        text = str(exc) if isinstance(exc, PipelineError) else f"internal error: {exc!r}"
        hint = "" if debug else " Rerun with --debug for the traceback (and please report it)."
        _err.print(
            f"[red]error:[/] {escape(path_text(text))}{kept} are kept; "
            f"rerun the same command to resume.{hint}",
            soft_wrap=True,
        )
        return EXIT_STOPPED, failures, damage
    if not quiet:
        wall = time.perf_counter() - started
        skipped = len(all_videos) - count
        _summary(results, stats, skipped, wall, str(where or "stdout"))
    return 0, failures, damage


def _write_stats(
    path: Path,
    stats: PipelineStats,
    detection: DetectorStats,
    workers: int,
    batch_size: int,
    chunk_s: float,
    on_ray: RayRun | None = None,
) -> None:
    """Where the time went, as JSON: busy seconds and shares of the wall time per stage."""
    wall = max(stats.wall_s, 1e-9)
    report = {
        "wall_s": stats.wall_s,
        "videos": stats.videos,
        "chunks": stats.chunks,
        "segments": stats.segments,
        "chunks_per_s": stats.chunks / wall,
        "segments_per_s": stats.segments / wall,
        "workers": workers,
        "chunk_s": chunk_s,
        "media": {  # decode, faces, crops, filterbank: summed over the workers
            "busy_s": stats.produce_s,
            "busy_share_per_worker": stats.produce_s / (wall * workers),
        },
        "detector": {  # one shared by the workers (GPU) or one per worker: busy_s summed
            "detectors": detection.detectors,
            "busy_s": detection.busy_s,
            "busy_share": detection.busy_s / (wall * max(detection.detectors, 1)),
            "calls": detection.calls,
            "frames": detection.frames,
            "frames_per_call": detection.frames / max(detection.calls, 1),
        },
        "model": {
            "busy_s": stats.model_s,
            "busy_share": stats.model_s / wall,
            "batches": stats.batches,
            "clips": stats.clips,
            "clips_per_batch": stats.clips / max(stats.batches, 1),
            "batch_size": batch_size,
        },
    }
    if on_ray is not None:  # the model (and GPU detector) ran in the service actors
        report["ray"] = {
            "services": on_ray.services,
            "object_store_peak_bytes": on_ray.object_store_peak,
            **on_ray.service_stats,
        }
    try:
        path.write_text(json.dumps(report, indent=2) + "\n")
    except OSError as exc:
        _err.print(
            f"[yellow]warning:[/] cannot write --stats {escape(str(path))}: {escape(_os_reason(exc))}"
        )


def _os_reason(exc: OSError) -> str:
    """What went wrong with a file, in words (pyarrow's errors carry no strerror)."""
    if exc.strerror:
        name = f" ({path_text(exc.filename)})" if exc.filename else ""
        return f"{exc.strerror}{name}"
    return path_text(str(exc).strip().splitlines()[0]) if str(exc).strip() else type(exc).__name__


def _print_traceback(exc: BaseException) -> None:
    sys.stderr.write("".join(traceback.format_exception(exc)))
    sys.stderr.flush()
