"""What the result-reading commands share: stderr console, usage errors, loading a result table."""

from __future__ import annotations

import tempfile
from pathlib import Path

import pandas as pd
import typer
from rich.console import Console
from rich.markup import escape

from mmadfer_cli.media.discover import terminal_text
from mmadfer_cli.run.errors import os_reason
from mmadfer_cli.table.read import ResultsError, read_results

err = Console(stderr=True)
EXIT_USAGE = 2

RESULTS_ARGUMENT_HELP = (
    "Result table of `mmadfer annotate`: a .parquet, .csv or .jsonl file, or a results directory."
)


def usage_error(message: str) -> typer.Exit:
    """Print ``message`` on stderr (a name's control characters escaped) and return the exit
    (code 2) to raise."""
    err.print(f"[red]error:[/] {escape(terminal_text(message))}", soft_wrap=True)
    return typer.Exit(EXIT_USAGE)


def load_results(path: Path) -> pd.DataFrame:
    """The result table at ``path``, or exit 2 with the reason it cannot be used."""
    try:
        return read_results(path)
    except (ResultsError, OSError) as exc:
        raise usage_error(str(exc)) from exc


def cannot_write(out: Path, exc: OSError) -> typer.Exit:
    """The one-line refusal ``annotate`` gives for an ``--out`` that cannot be written."""
    return usage_error(f"cannot write to --out {out}: {os_reason(exc)}")


def writable_folder(out: Path) -> None:
    """Create the folder ``out`` and prove a file can be made in it, or exit 2 in one line:
    checked before any work, so that a refusal leaves nothing half-written."""
    if out.exists() and not out.is_dir():
        raise usage_error(f"--out {out} exists and is not a folder")
    try:
        out.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=out):
            pass
    except OSError as exc:
        raise cannot_write(out, exc) from exc


def writable_file(out: Path) -> None:
    """Make sure the file ``out`` can be written (its folder created, a file made there), or
    exit 2 in one line, before any work."""
    if out.is_dir():
        raise usage_error(f"--out {out} is a folder; name the file to write")
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=out.parent):
            pass
    except OSError as exc:
        raise cannot_write(out, exc) from exc
