"""The ``mmadfer`` command: a thin Typer layer over the library.

Data goes to stdout, progress and logs to stderr. Exit codes: 0 success,
1 some inputs failed (in whole or in a damaged stretch), 2 usage errors, 3 the run
stopped early (results could not be written, or an internal error), 130 interrupted,
143 terminated (SIGTERM, SIGHUP).
"""

from __future__ import annotations

import typer

from mmadfer_cli import __version__
from mmadfer_cli.cli import annotate, doctor, examples, export, models, overlay, recipe, report

app = typer.Typer(
    name="mmadfer",
    help="Annotate emotions in video collections with MMA-DFER (audio-visual, per person, per segment).",
    no_args_is_help=True,
    rich_markup_mode="rich",
    epilog=examples.ROOT,
    context_settings={"help_option_names": ["-h", "--help"]},
)
app.add_typer(models.app, name="models")
app.add_typer(export.app, name="export")
app.command("annotate", epilog=examples.ANNOTATE)(annotate.annotate)
app.command("doctor", epilog=examples.DOCTOR)(doctor.doctor)
app.command("evaluate", epilog=examples.EVALUATE)(recipe.evaluate)
app.command("train", epilog=examples.TRAIN)(recipe.train)
app.command("report", epilog=examples.REPORT)(report.report)
app.command("overlay", epilog=examples.OVERLAY)(overlay.overlay)


def _version_callback(value: bool) -> None:
    if value:
        typer.echo(f"mmadfer {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(
        False,
        "--version",
        "-V",
        help="Print the version and exit.",
        callback=_version_callback,
        is_eager=True,
    ),
) -> None:
    """Annotate emotions in video collections with MMA-DFER (audio-visual, per person, per segment)."""


def main() -> None:
    """Console-script entry point."""
    app()
