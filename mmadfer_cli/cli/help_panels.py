"""A command's options grouped into its help's panels, from one table of the command, so that
the grouping reads at a glance and no option is left out of it."""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping, Sequence

from typer.models import OptionInfo


def in_panels(command: Callable[..., object], panels: Mapping[str, Sequence[str]]) -> None:
    """Give each option of ``command`` the panel that lists it (Typer shows the panels in the
    order of their first options in the signature); an option in no panel, or a name that is
    no option, is a programming error, raised at import."""
    panel_of = {name: panel for panel, names in panels.items() for name in names}
    options = {
        name: parameter.default
        for name, parameter in inspect.signature(command).parameters.items()
        if isinstance(parameter.default, OptionInfo)
    }
    if set(panel_of) != set(options):
        raise ValueError(f"options and panels differ: {sorted(set(panel_of) ^ set(options))}")
    for name, option in options.items():
        option.rich_help_panel = panel_of[name]
