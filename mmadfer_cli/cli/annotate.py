"""``mmadfer annotate``: videos in, one emotion table out (per person, per segment).

Flags only: they become ``AnnotateOptions`` (whose defaults they show), the
run is ``run.runner.run``, and ``run_report`` prints what it reports. Progress
and logs go to stderr; stdout carries data only (``--out -``). The flags' help
comes in panels, one per question a user has.
"""

from __future__ import annotations

from pathlib import Path

import typer
from rich.markup import escape

from mmadfer_cli.cli.choices import (
    Detector,
    Engine,
    Format,
    Precision,
    ReidScope,
    Soundtrack,
    device_option,
    plain,
)
from mmadfer_cli.cli.engine_options import ENGINE_HELP, RAY_ADDRESS_HELP
from mmadfer_cli.cli.help_panels import in_panels
from mmadfer_cli.cli.run_report import CommandEvents, err, print_report
from mmadfer_cli.media.discover import terminal_text
from mmadfer_cli.run.options import DEFAULTS as D
from mmadfer_cli.run.options import AnnotateOptions, UsageError
from mmadfer_cli.run.runner import EXIT_TERMINATED, EXIT_USAGE, run
from mmadfer_cli.run.signals import Terminated, terminating_on_signals

PANELS = {
    "Input and output": ("out", "fmt", "recursive", "globs", "resume", "csv_for_spreadsheets"),
    "Model and device": ("model", "checkpoint", "device", "precision", "batch_size", "compile"),
    "Segments": ("window", "stride", "min_segment", "soundtrack"),
    "Faces": ("detector", "face_models", "face_threshold", "min_face_size", "max_faces",
              "min_face_frames", "track_iou", "max_gap"),
    "People": ("reid", "reid_threshold", "reid_scope"),
    "Engine": ("workers", "engine", "ray_address", "actors_per_gpu", "chunk"),
    "Run control": ("quiet", "stats", "verbose", "debug"),
}  # fmt: skip
"""The help's panels, in the order a user meets the questions, and the options of each."""


def annotate(
    inputs: list[Path] = typer.Argument(
        ...,
        help="Video files and folders (folders are searched for videos).",
        show_default=False,
    ),
    out: str = typer.Option(
        ...,
        "--out",
        "-o",
        help="Result file (.parquet, .csv, .jsonl), a directory (one Parquet file per video), "
        "or - for CSV on stdout.",
        show_default=False,
    ),
    fmt: Format | None = typer.Option(
        D.fmt,
        "--format",
        "-f",
        help="Output format. \\[default: from the --out extension; csv for -]",
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
    device: str = device_option(
        D.device,
        "auto: a CUDA GPU, else a Mac's GPU, when there is one, else the CPU. cuda:N: the GPU of "
        "index N.",
    ),
    precision: Precision = typer.Option(
        D.precision,
        "--precision",
        help="auto is bfloat16 on CUDA (float16 without "
        "bfloat16) and on CPUs with native bfloat16 (AVX512-BF16, AMX), else float32. bfloat16 "
        "casts the weights on CUDA and runs under autocast on the CPU (faster on each).",
    ),
    batch_size: int = typer.Option(
        D.batch_size,
        "--batch-size",
        "-b",
        min=1,
        help="Face clips per model call (across videos).",
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
    soundtrack: Soundtrack = typer.Option(
        D.soundtrack,
        "--soundtrack",
        help="What the model hears with each face. video: the segment's own sound. silent: "
        "every face gets the input of a video without an audio track, so that a speaker's "
        "voice does not colour the listeners' labels (has_audio is false). The model was "
        "trained audio-visual: lower accuracy; see README 'Scientific use and limits'.",
    ),
    detector: Detector = typer.Option(
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
        D.max_faces,
        "--max-faces",
        min=0,
        help="Keep the largest N faces per frame (0: all).",
    ),
    min_face_frames: int = typer.Option(
        D.min_face_frames,
        "--min-face-frames",
        min=1,
        max=16,
        help="A person gets a prediction in a segment when seen in at least this many of its "
        "16 frames.",
    ),
    track_iou: float = typer.Option(
        D.track_iou,
        "--track-iou",
        min=0.0,
        max=1.0,
        help="Box overlap that continues a track.",
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
    reid_scope: ReidScope = typer.Option(
        D.reid_scope,
        "--reid-scope",
        help="video: person ids per video. run: shared by the videos of the run (the same "
        "participants in several sessions), matched in input order; cannot resume.",
    ),
    workers: int = typer.Option(
        D.workers,
        "--workers",
        "-j",
        min=0,
        help="Threads decoding videos, detecting faces and cutting clips. On the CPU they take "
        "turns with the model at the cores, each with cores/workers PyTorch threads. 0: one per "
        "two CPU cores, at most 8 (with a GPU one per core, at most 16; 8 on a Mac's GPU). Never "
        "more than the chunks to run, nor than 4 per CPU core and 64 in all (each holds its own "
        "face detector and frames); a larger number is lowered with a warning.",
    ),
    engine: Engine = typer.Option(D.engine, "--engine", help=ENGINE_HELP),
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
    recursive: bool = typer.Option(
        D.recursive,
        "--recursive/--no-recursive",
        help="Search folders recursively.",
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
        inputs=tuple(inputs), out=out, fmt=plain(fmt), model=model, checkpoint=checkpoint,
        device=device, precision=plain(precision), batch_size=batch_size, workers=workers,
        engine=plain(engine), ray_address=ray_address, actors_per_gpu=actors_per_gpu,
        chunk=chunk, compile=compile, window=window, stride=stride, min_segment=min_segment,
        soundtrack=plain(soundtrack), detector=plain(detector), face_models=face_models,
        face_threshold=face_threshold, min_face_size=min_face_size, max_faces=max_faces,
        min_face_frames=min_face_frames, track_iou=track_iou, max_gap=max_gap, reid=reid,
        reid_threshold=reid_threshold, reid_scope=plain(reid_scope), recursive=recursive,
        globs=tuple(globs), resume=resume, stats=stats,
        csv_for_spreadsheets=csv_for_spreadsheets,
    )  # fmt: skip
    try:
        with terminating_on_signals():
            report = run(options, CommandEvents(quiet, debug, verbose))
    except UsageError as exc:
        err.print(f"[red]error:[/] {escape(terminal_text(str(exc)))}")
        raise typer.Exit(EXIT_USAGE) from exc
    except Terminated as exc:  # before the videos ran (loading the model) or after
        err.print(f"[yellow]Terminated:[/] {exc.signal_name}; rerun the same command to resume.")
        raise typer.Exit(EXIT_TERMINATED) from None
    print_report(report, quiet, debug)
    raise typer.Exit(report.exit_code)


in_panels(annotate, PANELS)
