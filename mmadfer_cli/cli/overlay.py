"""``mmadfer overlay``: the video with each person's box, label and confidence drawn, to spot-check."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from mmadfer_cli.cli.common import (
    RESULTS_ARGUMENT_HELP,
    cannot_write,
    err,
    load_results,
    usage_error,
    writable_file,
)
from mmadfer_cli.reporting.overlay_video import OverlayError, video_rows, write_overlay
from mmadfer_cli.table.files import FileHeldError


def overlay(
    video: Path = typer.Argument(..., help="The video that was annotated.", show_default=False),
    results: Path = typer.Argument(..., help=RESULTS_ARGUMENT_HELP, show_default=False),
    out: Path = typer.Option(
        ..., "--out", "-o", help="The annotated video to write (MP4, H.264).", show_default=False
    ),
    crf: int = typer.Option(
        20, "--crf", min=0, max=51, help="H.264 quality: lower is better and larger (x264's CRF)."
    ),
    quiet: bool = typer.Option(
        False, "--quiet", "-q", help="No progress bar, errors only. \\[default: off]"
    ),
) -> None:
    """Draw each person's box, id, label and confidence on every frame of VIDEO, to spot-check.

    Boxes are interpolated between the segments' boxes; the sound is kept; the output is H.264 MP4. VIDEO is matched to its rows by content id, so a renamed copy works and a different file is refused. Prints the output's path on stdout. Exit codes: 0 done, 2 the video is not in the results, bad input, an --out that cannot be written, or --out held open by another program.
    """
    df = load_results(results)
    if out.resolve() == video.resolve():
        raise usage_error("--out must not be the input video")
    try:
        video_rows(df, video, where=str(results))  # before the progress bar: a clear refusal
    except OverlayError as exc:
        raise usage_error(str(exc)) from exc
    writable_file(out)
    progress = Progress(
        TextColumn("overlay"),
        BarColumn(bar_width=30),
        MofNCompleteColumn(),
        TextColumn("frames · ETA"),
        TimeRemainingColumn(),
        console=err,
        disable=quiet,
    )
    task = progress.add_task("overlay", total=None)

    def advance(done: int, total: int) -> None:
        progress.update(task, completed=done, total=total or None)

    try:
        with progress:
            written = write_overlay(video, df, out, crf=crf, on_frame=advance)
    except (OverlayError, FileHeldError) as exc:
        raise usage_error(str(exc)) from exc
    except OSError as exc:
        raise cannot_write(out, exc) from exc
    typer.echo(str(written))
