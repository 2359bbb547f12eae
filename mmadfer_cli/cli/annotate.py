"""``mmadfer annotate``: videos in, one emotion table out (per person, per segment).

Flags only: they become ``AnnotateOptions`` (whose defaults they show), the
run is ``run.runner.run``, and this module prints what it reports. Progress
and logs go to stderr; stdout carries data only (``--out -``).
"""

from __future__ import annotations

import sys
import traceback
from pathlib import Path

import typer
from rich.console import Console
from rich.markup import escape

from mmadfer_cli.cli.engine_options import ENGINE_HELP, RAY_ADDRESS_HELP
from mmadfer_cli.media.discover import terminal_text
from mmadfer_cli.media.video import seconds_span
from mmadfer_cli.model.inference import PRECISION_CHOICES
from mmadfer_cli.plural import counted
from mmadfer_cli.run.options import DEFAULTS as D
from mmadfer_cli.run.options import AnnotateOptions, UsageError
from mmadfer_cli.run.progress import ProgressEvents, skipped_summary
from mmadfer_cli.run.reid import SCOPES
from mmadfer_cli.run.runner import EXIT_TERMINATED, EXIT_USAGE, RunReport, run
from mmadfer_cli.run.signals import Terminated, terminating_on_signals
from mmadfer_cli.run.videos import VideoResult
from mmadfer_cli.table.writers import FORMATS

_err = Console(stderr=True)


class _CommandEvents(ProgressEvents):
    """The progress bar, and with ``--debug`` the traceback of each video's internal error;
    with ``--verbose`` every entry a folder scan skipped."""

    def __init__(self, quiet: bool, debug: bool, verbose: bool) -> None:
        super().__init__(quiet, _err)
        self.debug = debug
        self.verbose = verbose

    def skipped(self, entries: list[tuple[str, str]]) -> None:
        if not self.verbose:
            self.warning(f"{skipped_summary(entries)} (--verbose lists them)", label="note")
            return
        self.warning(f"{skipped_summary(entries)}:", label="note")
        for path, kind in entries:
            _err.print(f"  {escape(terminal_text(path))}: a {kind}", soft_wrap=True)

    def video_done(self, result: VideoResult) -> None:
        if result.exception is not None and self.debug:
            _print_traceback(result.exception)
        super().video_done(result)


def _summary(report: RunReport) -> None:
    """The run in two lines: what was annotated, and where the time went."""
    results, stats, skipped, wall = report.results, report.stats, report.skipped, report.wall_s
    where = terminal_text(str(report.where or "stdout"))
    videos = len(results)
    if not videos:
        _err.print(
            f"Nothing to do: {counted(skipped, 'video')}, all done by an earlier run of this "
            f"command (--overwrite starts again). Results: {escape(where)}"
        )
        return
    failed = sum(r.error is not None for r in results)
    damaged = sum(bool(r.damaged) for r in results)
    segments = sum(r.segments for r in results)
    tracks = sum(r.tracks for r in results)
    rate = segments / wall if wall > 0 else 0.0
    resumed = f", {skipped} already done" if skipped else ""
    _err.print(
        f"Annotated {videos - failed} of {counted(videos, 'video')}{resumed}: "
        f"{counted(segments, 'segment')}, {counted(tracks, 'person track')}, "
        f"{counted(stats.clips, 'face clip')}, {failed} failed"
        f"{f', {damaged} with damaged stretches' if damaged else ''}; "
        f"{wall:.1f} s ({rate:.2f} segments/s). Results: {escape(where)}"
    )
    if stats.batches:
        # Where the time went, to tune --workers and --batch-size: a model busy most of the
        # wall time wants a faster device; a model mostly idle wants more workers.
        _err.print(
            f"Time: model {stats.model_s:.1f} s in {counted(stats.batches, 'batch', 'batches')} "
            f"({stats.clips / stats.batches:.1f} clips per batch, busy "
            f"{100 * stats.model_s / wall if wall > 0 else 0:.0f}% of the wall time); "
            f"decoding, faces and audio {stats.produce_s:.1f} s summed over the workers.",
            soft_wrap=True,
        )


def annotate(
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
        D.fmt,
        "--format",
        "-f",
        help=f"Output format: {', '.join(FORMATS)}. \\[default: from the --out extension; csv for -]",
        show_default=False,
    ),
    model: str | None = typer.Option(
        D.model,
        "--model",
        "-m",
        help="Name of an imported model. \\[default: the only imported model]",
        show_default=False,
    ),
    checkpoint: Path | None = typer.Option(
        D.checkpoint,
        "--checkpoint",
        help="Use this checkpoint file instead of an imported model.",
        show_default=False,
    ),
    device: str = typer.Option(
        D.device,
        "--device",
        "-d",
        help="auto (a CUDA GPU, else a Mac's GPU, when there is one), cpu, cuda, cuda:N or mps.",
    ),
    precision: str = typer.Option(
        D.precision,
        "--precision",
        help=f"{', '.join(PRECISION_CHOICES)}: auto is bfloat16 on CUDA (float16 without "
        "bfloat16) and on CPUs with native bfloat16 (AVX512-BF16, AMX), else float32. bfloat16 "
        "casts the weights on CUDA and runs under autocast on the CPU (faster on each).",
    ),
    batch_size: int = typer.Option(
        D.batch_size, "--batch-size", "-b", min=1, help="Face clips per model call (across videos)."
    ),
    workers: int = typer.Option(
        D.workers,
        "--workers",
        "-j",
        min=0,
        help="Threads decoding videos, detecting faces and cutting clips, in parallel with the "
        "model. 0: one per CPU core, at most 8 (16 with a GPU). Never more than the chunks to "
        "run, nor than 4 per CPU core and 64 in all (each holds its own face detector and "
        "frames); a larger number is lowered with a warning.",
    ),
    engine: str = typer.Option(
        D.engine,
        "--engine",
        help=ENGINE_HELP,
    ),
    ray_address: str | None = typer.Option(
        D.ray_address,
        "--ray-address",
        help=RAY_ADDRESS_HELP,
        show_default=False,
    ),
    actors_per_gpu: int = typer.Option(
        D.actors_per_gpu,
        "--actors-per-gpu",
        min=1,
        help="With --engine ray: model service actors per GPU (2 keeps a GPU busy while one "
        "actor waits on its chunks; each holds a copy of the model).",
    ),
    chunk: float = typer.Option(
        D.chunk,
        "--chunk",
        min=0.0,
        help="Seconds of video per unit of work: the workers share a long video's chunks "
        "(rows do not depend on it). 0: one video per worker.",
    ),
    compile: bool = typer.Option(
        D.compile,
        "--compile",
        help="Compile the model (torch.compile) before the run: on an H200 581 against 522 "
        "clips/s, after 26 s of compiling (about 2 minutes on a 2-core CPU; less once PyTorch's "
        "compile cache holds it), so it pays back only on long runs (hours of video). Needs a "
        "C++ compiler on the CPU; --engine local only. \\[default: off]",
    ),
    window: float = typer.Option(D.window, "--window", min=0.1, help="Segment length in seconds."),
    stride: float | None = typer.Option(
        D.stride,
        "--stride",
        min=0.1,
        help="Seconds between segment starts. \\[default: the window: a contiguous timeline]",
        show_default=False,
    ),
    min_segment: float = typer.Option(
        D.min_segment,
        "--min-segment",
        min=0.0,
        help="Shortest last partial segment kept, in seconds.",
    ),
    detector: str = typer.Option(
        D.detector,
        "--detector",
        help="Face detector: auto or mtcnn (MTCNN, as the model's training faces were found; "
        "runs on --device), insightface (SCRFD, needs a model pack) or dlib (HOG, frontal faces).",
    ),
    face_models: Path | None = typer.Option(
        D.face_models,
        "--face-models",
        help="Folder of an unpacked insightface model pack (e.g. buffalo_l). "
        "\\[default: ~/.insightface/models/buffalo_l]",
        show_default=False,
    ),
    face_threshold: float = typer.Option(
        D.face_threshold,
        "--face-threshold",
        min=0.0,
        max=1.0,
        help="Minimum detector confidence of a face.",
    ),
    min_face_size: int = typer.Option(
        D.min_face_size,
        "--min-face-size",
        min=1,
        help="Smallest face kept (shorter box side, in pixels); MTCNN searches from this size up "
        "(20 as the official preprocessing; larger is faster on HD video).",
    ),
    max_faces: int = typer.Option(
        D.max_faces, "--max-faces", min=0, help="Keep the largest N faces per frame (0: all)."
    ),
    min_face_frames: int = typer.Option(
        D.min_face_frames,
        "--min-face-frames",
        min=1,
        max=16,
        help="A person gets a prediction in a segment when seen in at least this many of its 16 frames.",
    ),
    track_iou: float = typer.Option(
        D.track_iou, "--track-iou", min=0.0, max=1.0, help="Box overlap that continues a track."
    ),
    max_gap: float = typer.Option(
        D.max_gap,
        "--max-gap",
        min=0.0,
        help="Seconds a person may be unseen before the track ends.",
    ),
    reid: bool = typer.Option(
        D.reid,
        "--reid/--no-reid",
        help="Re-identify people: a person_id that stays the same across cuts and "
        "re-appearances, and tracks split where the person changed.",
    ),
    reid_threshold: float = typer.Option(
        D.reid_threshold,
        "--reid-threshold",
        min=0.0,
        help="Face-embedding distance under which two tracks are the same person "
        "(lower: fewer wrong merges, more ids per person).",
    ),
    reid_scope: str = typer.Option(
        D.reid_scope,
        "--reid-scope",
        help=f"{' or '.join(SCOPES)}: person ids per video, or shared by the videos of the run "
        "(the same participants in several sessions).",
    ),
    recursive: bool = typer.Option(
        D.recursive, "--recursive/--no-recursive", help="Search folders recursively."
    ),
    globs: list[str] = typer.Option(
        [],
        "--glob",
        help="Also treat files matching this pattern as videos (repeatable).",
        show_default=False,
    ),
    resume: bool = typer.Option(
        D.resume,
        "--resume/--overwrite",
        help="Resume: skip videos an earlier run with the same --out already finished (an "
        "interrupted run, or a finished output that grows by the videos it lacks). Overwrite: "
        "start again.",
    ),
    csv_for_spreadsheets: bool = typer.Option(
        D.csv_for_spreadsheets,
        "--csv-for-spreadsheets",
        help="For a CSV --out to open in Excel, LibreOffice or Google Sheets: a text cell that "
        "begins with =, +, -, @, a tab, a carriage return or a quote gets a leading quote, so "
        "that a file name is never run as a formula (numbers stay numbers). mmadfer's readers "
        "take it off a file's cells again (its .run.json records it; not on stdout). \\[default: off: the table keeps every name as it is]",
    ),
    quiet: bool = typer.Option(
        False,
        "--quiet",
        "-q",
        help="Print only errors and warnings (no progress, no summary). \\[default: off]",
    ),
    stats: Path | None = typer.Option(
        D.stats,
        "--stats",
        help="Write where the time went (each stage's busy seconds, batch sizes, chunks/s) "
        "to this JSON file.",
        show_default=False,
    ),
    verbose: bool = typer.Option(
        False,
        "--verbose",
        "-v",
        help="List each folder entry skipped because it is not a regular file (named pipes, "
        "sockets, devices, broken links) or cannot be read; without it, one line counts them. "
        "\\[default: off]",
    ),
    debug: bool = typer.Option(
        False,
        "--debug",
        help="Print the traceback of internal errors (bugs), not only their one-line reason. "
        "\\[default: off]",
    ),
) -> None:
    """Annotate every person in every segment of the videos with an emotion and class probabilities.

    Exit codes: 0 all videos done, 1 some videos failed or have damaged stretches (error rows, listed at the end), 2 usage errors (bad option, missing input, no model, another run writing the same --out, an --out that cannot be written, --compile where compiling cannot work), 3 stopped early (results could not be written: disk full, no permission; or an internal error), 130 interrupted (Ctrl-C), 143 terminated (SIGTERM, or SIGHUP where it exists, as a scheduler stops a job). After 3, 130 or 143 finished videos are kept and the lock released: rerun the same command to resume.
    """
    options = AnnotateOptions(
        inputs=tuple(inputs), out=out, fmt=fmt, model=model, checkpoint=checkpoint,
        device=device, precision=precision, batch_size=batch_size, workers=workers,
        engine=engine, ray_address=ray_address, actors_per_gpu=actors_per_gpu, chunk=chunk,
        compile=compile, window=window, stride=stride, min_segment=min_segment,
        detector=detector, face_models=face_models, face_threshold=face_threshold,
        min_face_size=min_face_size, max_faces=max_faces, min_face_frames=min_face_frames,
        track_iou=track_iou, max_gap=max_gap, reid=reid, reid_threshold=reid_threshold,
        reid_scope=reid_scope, recursive=recursive, globs=tuple(globs), resume=resume,
        stats=stats, csv_for_spreadsheets=csv_for_spreadsheets,
    )  # fmt: skip
    try:
        with terminating_on_signals():
            report = run(options, _CommandEvents(quiet, debug, verbose))
    except UsageError as exc:
        _err.print(f"[red]error:[/] {escape(terminal_text(str(exc)))}")
        raise typer.Exit(EXIT_USAGE) from exc
    except Terminated as exc:  # before the videos ran (loading the model) or after
        _err.print(f"[yellow]Terminated:[/] {exc.signal_name}; rerun the same command to resume.")
        raise typer.Exit(EXIT_TERMINATED) from None
    _report(report, quiet, debug)
    raise typer.Exit(report.exit_code)


def _report(report: RunReport, quiet: bool, debug: bool) -> None:
    """The end of a run on stderr: how it stopped, the summary, then what failed or is damaged."""
    stop = report.stop
    if stop is not None and stop.kind in ("interrupted", "terminated"):
        _err.print(f"[yellow]{stop.kind.capitalize()}:[/] {escape(terminal_text(stop.message))}")
    elif stop is not None and stop.kind in ("write", "internal"):
        if debug and stop.exception is not None:
            _print_traceback(stop.exception)
        hint = "" if debug else " Rerun with --debug for the traceback (and please report it)."
        hint = hint if stop.kind == "internal" else ""
        _err.print(f"[red]error:[/] {escape(terminal_text(stop.message))}{hint}", soft_wrap=True)
    elif stop is None and not quiet:
        _summary(report)
    if report.ray is not None and not quiet:
        _err.print(
            f"Ray: {counted(report.ray.services, 'service actor')}; object store peak "
            f"{report.ray.object_store_peak / 2**20:.0f} MiB."
        )
    if report.damage:
        _err.print(
            f"[yellow]Damaged stretches in {counted(len(report.damage), 'video')}[/] "
            "(their segments there are error rows, the others are annotated):"
        )
        for name, stretches in report.damage:
            _err.print(f"  {escape(terminal_text(_damage_line(name, stretches)))}", soft_wrap=True)
    if report.failures:
        _err.print(f"[red]{counted(len(report.failures), 'video')} failed:[/]")
        for name, reason in report.failures:
            # Media errors already start with the path; do not print it twice.
            line = reason if reason.startswith(name) else f"{name}: {reason}"
            _err.print(f"  {escape(terminal_text(line))}", soft_wrap=True)  # paths stay whole
        if not debug and any(r.startswith("internal error") for _, r in report.failures):
            _err.print(
                "Rerun with --debug for the tracebacks of internal errors (and please report them)."
            )


def _damage_line(name: str, stretches: list[tuple[float, float, str]]) -> str:
    """One line for a partly damaged video: how many segments, where, and the first reason."""
    start, end = stretches[0][0], stretches[-1][1]
    first = "" if len(stretches) == 1 else "first: "
    return (
        f"{name}: {counted(len(stretches), 'segment')} in {seconds_span(start, end)} could not "
        f"be read; {first}{stretches[0][2]}"
    )


def _print_traceback(exc: BaseException) -> None:
    lines = "".join(traceback.format_exception(exc)).splitlines()
    sys.stderr.write("".join(terminal_text(line) + "\n" for line in lines))
    sys.stderr.flush()
