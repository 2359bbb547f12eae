"""The values of the commands' choice options, for Typer.

Each enum is made from the library's own tuple (``FORMATS``, ``DETECTORS``, ...), so that
``--help`` lists the values and a wrong one is refused before any work (exit 2, with the list),
while the options, their checks and the API keep plain strings (``plain``). ``--device`` takes
a GPU's index (``cuda:N``), which no enum can list: its forms are shown and checked instead.
"""

from __future__ import annotations

from collections.abc import Sequence
from enum import Enum
from typing import Any

import typer

from mmadfer_cli.faces import DETECTORS
from mmadfer_cli.model.devices import DEVICES, is_device_name
from mmadfer_cli.model.inference import PRECISION_CHOICES
from mmadfer_cli.run.clips import SOUNDTRACKS
from mmadfer_cli.run.options import ENGINES
from mmadfer_cli.run.reid import SCOPES
from mmadfer_cli.table.writers import FORMATS


def _choice(name: str, values: Sequence[str]) -> type[Enum]:
    """A ``str`` enum whose members are ``values`` themselves."""
    return Enum(name, [(value, value) for value in values], type=str)


Format = _choice("Format", FORMATS)
Precision = _choice("Precision", PRECISION_CHOICES)
Engine = _choice("Engine", ENGINES)
Detector = _choice("Detector", DETECTORS)
ReidScope = _choice("ReidScope", SCOPES)
Soundtrack = _choice("Soundtrack", SOUNDTRACKS)
Metric = _choice("Metric", ("war", "uar"))

DEVICE_METAVAR = f"<{'|'.join(DEVICES)}>"  # as Typer shows an enum's values


def plain(value: Enum | str | None) -> str | None:
    """The string a chosen member stands for (a default given as a string stays as it is)."""
    return value.value if isinstance(value, Enum) else value


def device_name(value: str) -> str:
    """``--device``'s check at parsing: one of the ``DEVICES`` forms, else exit 2 listing them
    (whether that device is present is checked when the command starts, with its reason)."""
    if not is_device_name(value):
        raise typer.BadParameter(f"{value!r} is not one of {', '.join(map(repr, DEVICES))}.")
    return value


def device_completions(incomplete: str) -> list[str]:
    """What tab completion offers for ``--device``: the named devices (a GPU's index is typed)."""
    return [name for name in DEVICES if name != "cuda:N" and name.startswith(incomplete)]


def device_option(default: str, help: str) -> Any:
    """The ``--device`` (``-d``) option of a command: its forms shown, checked at parsing and
    completed."""
    return typer.Option(default, "--device", "-d", help=help, metavar=DEVICE_METAVAR,
                        callback=device_name, autocompletion=device_completions)  # fmt: skip
