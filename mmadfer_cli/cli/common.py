"""What the result-reading commands share: stderr console, usage errors, loading a result table."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import typer
from rich.console import Console
from rich.markup import escape

from mmadfer_cli.table.read import ResultsError, read_results

err = Console(stderr=True)
EXIT_USAGE = 2

RESULTS_ARGUMENT_HELP = (
    "Result table of `mmadfer annotate`: a .parquet, .csv or .jsonl file, or a results directory."
)


def usage_error(message: str) -> typer.Exit:
    """Print ``message`` on stderr and return the exit (code 2) to raise."""
    err.print(f"[red]error:[/] {escape(message)}", soft_wrap=True)
    return typer.Exit(EXIT_USAGE)


def load_results(path: Path) -> pd.DataFrame:
    """The result table at ``path``, or exit 2 with the reason it cannot be used."""
    try:
        return read_results(path)
    except (ResultsError, OSError) as exc:
        raise usage_error(str(exc)) from exc
