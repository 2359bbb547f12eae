"""``mmadfer models``: import checkpoints into the model cache, list, inspect and remove them."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from mmadfer_cli.cli import examples
from mmadfer_cli.model.checkpoints import CheckpointError
from mmadfer_cli.model.registry import (
    HOME_ENV,
    ModelRecord,
    RegistryError,
    get_model,
    import_model,
    list_models,
    models_dir,
    remove_model,
)

app = typer.Typer(
    help=f"Manage imported models (stored under ${HOME_ENV}, default: the user cache directory).",
    no_args_is_help=True,
    epilog=examples.MODELS,
)
_out = Console()
_err = Console(stderr=True)

_JSON = typer.Option(False, "--json", help="Print JSON instead of a table. \\[default: off]")


@app.command("import", epilog=examples.MODELS_IMPORT)
def import_(
    file: Path = typer.Argument(
        ..., help="An official MMA-DFER .pth (DFEW or MAFW fold) or an mmadfer .safetensors."
    ),
    name: str | None = typer.Option(
        None,
        "--name",
        "-n",
        help="Name to use with --model. \\[default: the file name without extension]",
    ),
) -> None:
    """Check a checkpoint (without running any code in it) and convert it into the model cache."""
    try:
        with _err.status(f"Importing {file} ..."):
            record = import_model(file, name)
    except CheckpointError as e:
        _err.print(f"[red]error:[/] {e}")
        raise typer.Exit(1) from e
    except RegistryError as e:
        _err.print(f"[red]error:[/] {e}")
        raise typer.Exit(2) from e
    _err.print(
        f"Imported [bold]{record.name}[/] ({len(record.class_names)} classes, "
        f"sha256 {record.sha256[:12]}) into {record.path.parent}"
    )
    typer.echo(record.name)


@app.command("list", epilog=examples.MODELS_LIST)
def list_(as_json: bool = _JSON) -> None:
    """Show the imported models."""
    records = list_models()
    if as_json:
        typer.echo(json.dumps([_as_dict(r) for r in records], indent=2))
        return
    if not records:
        _err.print(f"No models imported in {models_dir()}; use `mmadfer models import FILE`.")
        return
    table = Table("name", "classes", "sha256", "source", "imported")
    for r in records:
        table.add_row(r.name, str(len(r.class_names)), r.sha256[:12], r.source, r.imported_at or "")
    _out.print(table)


@app.command("info", epilog=examples.MODELS_INFO)
def info(
    name: str = typer.Argument(..., help="An imported model's name."), as_json: bool = _JSON
) -> None:
    """Show one model's record: source file, checksum, class names, location."""
    record = _get(name)
    data = _as_dict(record)
    if as_json:
        typer.echo(json.dumps(data, indent=2))
        return
    for key, value in data.items():
        shown = ", ".join(value) if isinstance(value, list) else value
        typer.echo(f"{key}: {shown}")


@app.command("remove", epilog=examples.MODELS_REMOVE)
def remove(name: str = typer.Argument(..., help="An imported model's name.")) -> None:
    """Delete a model from the cache."""
    _get(name)
    record = remove_model(name)
    _err.print(f"Removed {record.name}")


def _get(name: str) -> ModelRecord:
    try:
        return get_model(name)
    except RegistryError as e:
        _err.print(f"[red]error:[/] {e}")
        raise typer.Exit(2) from e


def _as_dict(record: ModelRecord) -> dict[str, object]:
    data = dataclasses.asdict(record)
    data["path"] = str(record.path)
    data["class_names"] = list(record.class_names)
    return data
