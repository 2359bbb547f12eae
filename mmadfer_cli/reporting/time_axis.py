"""Times as people read them: ``1:02:03`` rather than 3723 seconds, on axes and in tables."""

from __future__ import annotations

import math

from matplotlib.axes import Axes
from matplotlib.ticker import FuncFormatter, MultipleLocator

# Tick steps a reader counts in: seconds, minutes, hours.
_STEPS = (1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200)


def clock_text(seconds: float, hours: bool | None = None) -> str:
    """``m:ss`` below an hour, ``h:mm:ss`` from one (or always with ``hours=True``); whole
    seconds, rounded."""
    total = round(seconds)
    h, rest = divmod(total, 3600)
    m, s = divmod(rest, 60)
    if hours or (hours is None and h):
        return f"{h}:{m:02d}:{s:02d}"
    return f"{m}:{s:02d}"


def tick_step(span_s: float, most: int = 10) -> float:
    """The smallest reader-friendly step that puts at most ``most`` ticks on ``span_s``."""
    for step in _STEPS:
        if span_s / step <= most:
            return float(step)
    return float(_STEPS[-1] * math.ceil(span_s / (_STEPS[-1] * most)))


def set_time_axis(ax: Axes, span_s: float) -> str:
    """Ticks at round times and ``m:ss`` or ``h:mm:ss`` labels on ``ax``'s x axis; returns the
    format's name for the axis label."""
    hours = span_s >= 3600
    ax.xaxis.set_major_locator(MultipleLocator(tick_step(span_s)))
    ax.xaxis.set_major_formatter(FuncFormatter(lambda x, _: clock_text(x, hours)))
    return "h:mm:ss" if hours else "m:ss"
