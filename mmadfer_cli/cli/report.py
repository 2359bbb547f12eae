"""``mmadfer report``: a result table in, summary tables, timeline pictures and HTML pages out."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.markup import escape

from mmadfer_cli.cli.common import (
    RESULTS_ARGUMENT_HELP,
    cannot_write,
    err,
    load_results,
    writable_folder,
)
from mmadfer_cli.media.discover import terminal_text
from mmadfer_cli.reporting.html_report import write_report


def report(
    results: Path = typer.Argument(..., help=RESULTS_ARGUMENT_HELP, show_default=False),
    out: Path = typer.Option(
        ...,
        "--out",
        "-o",
        help="Folder to write summary.csv, videos.csv, timelines/<video>.png, index.html and "
        "videos/<video>.html into (created when missing; files of the same names are replaced).",
        show_default=False,
    ),
    dpi: int = typer.Option(
        100, "--dpi", min=30, max=600, help="Resolution of the timeline pictures."
    ),
    quiet: bool = typer.Option(
        False, "--quiet", "-q", help="Print only errors (no progress). \\[default: off]"
    ),
) -> None:
    """Summarise a result table: per-person tables, a timeline per video, offline HTML pages.

    summary.csv has one row per video and person: seconds seen, the share of segments per label, mean class probabilities, the dominant emotion and the share of the video without a face; videos.csv one row per video, failed ones included, with annotated_s (the time its segments cover: the file's length when all of it was read); timelines/<video>.png each person's class probabilities over time (videos over 20 minutes a bar per minute). index.html lists the videos and people; with more than one video each has its page, videos/<video>.html, with its tables and timeline (a single video's report is index.html alone). Pages hold their pictures and style, load nothing from the network and link relatively: move or mail the folder as a whole. The CSV files are made for spreadsheets: a text cell that begins with =, +, -, @, a tab, a carriage return or a quote (a formula to a spreadsheet) gets a leading quote. Prints index.html's path on stdout. Exit codes: 0 done, 2 the input is not a result table or --out cannot be written.
    """
    df = load_results(results)
    writable_folder(out)
    total = df["video"].nunique()
    done = 0

    def progress(video: str) -> None:
        nonlocal done
        done += 1
        if not quiet:
            line = f"timeline {done}/{total}: {escape(terminal_text(video))}"
            err.print(line, soft_wrap=True, highlight=False)

    try:
        index = write_report(df, out, source=str(results), dpi=dpi, on_video=progress)
    except OSError as exc:  # the disk filled, or the folder changed under the run
        raise cannot_write(out, exc) from exc
    typer.echo(str(index))
