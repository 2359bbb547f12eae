"""``mmadfer export eaf|srt|vtt``: a result table as ELAN files or subtitles, one file per video."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pandas as pd
import typer
from rich.markup import escape

from mmadfer_cli.cli import examples
from mmadfer_cli.cli.common import (
    RESULTS_ARGUMENT_HELP,
    cannot_write,
    err,
    load_results,
    usage_error,
    writable_folder,
)
from mmadfer_cli.media.discover import terminal_text
from mmadfer_cli.plural import counted
from mmadfer_cli.reporting.exports import export_eaf, export_subtitles
from mmadfer_cli.table.files import FileHeldError

app = typer.Typer(
    help="Export a result table for other tools: ELAN (.eaf) or subtitles (.srt, .vtt), "
    "one file per video.",
    no_args_is_help=True,
    epilog=examples.EXPORT,
)

_OUT_HELP = (
    "Folder for the files, one per video, named after it (created when missing; a short key "
    "is added only where two videos would share a name or the name has a character some "
    "system forbids)."
)


def _done(df: pd.DataFrame, written: dict[str, Path], quiet: bool) -> None:
    """Paths on stdout (data); videos without a file, and why, on stderr."""
    for path in written.values():
        typer.echo(str(path))
    for video in dict.fromkeys(df["video"]):
        if video not in written:
            name = escape(terminal_text(video))
            err.print(f"[yellow]skipped[/] {name}: it could not be read", soft_wrap=True)
    if not quiet:
        err.print(f"Wrote {counted(len(written), 'file')}.")


@app.command("eaf", epilog=examples.EXPORT_EAF)
def eaf(
    results: Path = typer.Argument(..., help=RESULTS_ARGUMENT_HELP, show_default=False),
    out: Path = typer.Option(..., "--out", "-o", help=_OUT_HELP, show_default=False),
    media_root: Path | None = typer.Option(
        None,
        "--media-root",
        help="Folder the videos' paths (the video column) are relative to, to link the media. "
        "\\[default: the current folder]",
        show_default=False,
    ),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="Print only errors. \\[default: off]"),
) -> None:
    """ELAN files (.eaf), one per video: a tier per person, linked to the video.

    Each person's tier has one annotation per segment with the label (from a controlled vocabulary of the model's classes) and two dependent tiers: its confidence, and every class's probability, most likely first ('happiness 0.70, sadness 0.20, neutral 0.10'); a 'no face' tier marks segments without anyone and an 'error' tier the stretches that could not be read. Prints the files written on stdout. Exit codes: 0 done, 2 bad input, an --out that cannot be written, or a file held open by another program.
    """
    _export(results, out, quiet, lambda df: export_eaf(df, out, media_root))


def _export(
    results: Path, out: Path, quiet: bool, write: Callable[[pd.DataFrame], dict[str, Path]]
) -> None:
    """Read the table, check ``--out`` before any work, write the files, print them."""
    df = load_results(results)
    writable_folder(out)
    try:
        written = write(df)
    except FileHeldError as exc:
        raise usage_error(str(exc)) from exc
    except OSError as exc:
        raise cannot_write(out, exc) from exc
    _done(df, written, quiet)


def _subtitles(fmt: str) -> Callable[..., None]:
    def command(
        results: Path = typer.Argument(..., help=RESULTS_ARGUMENT_HELP, show_default=False),
        out: Path = typer.Option(..., "--out", "-o", help=_OUT_HELP, show_default=False),
        quiet: bool = typer.Option(
            False, "--quiet", "-q", help="Print only errors. \\[default: off]"
        ),
    ) -> None:
        _export(results, out, quiet, lambda df: export_subtitles(df, out, fmt))

    command.__doc__ = (
        f"{'SubRip' if fmt == 'srt' else 'WebVTT'} subtitles (.{fmt}), one per video: a cue per "
        "segment with each person's label.\n\nEach cue lists the people on screen with label "
        "and confidence, a short line each (with more than four, three and '+N more'), or "
        "'(no face)'. Files are named after their videos: in the video's folder, players load "
        "them by themselves. "
        "Prints the files written on stdout. Exit codes: 0 done, 2 bad input, an --out that cannot be written, or a file held open by another program."
    )
    return command


app.command("srt", epilog=examples.EXPORT_SRT)(_subtitles("srt"))
app.command("vtt", epilog=examples.EXPORT_VTT)(_subtitles("vtt"))
