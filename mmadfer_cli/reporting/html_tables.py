"""The report's tables as HTML: headers in words, times as ``h:mm:ss``, shares as percentages.

The CSV files keep the column names and exact seconds; the page is for reading.
Per-class columns sit under one header per group (share of segments, mean
probability), so a model with eleven classes gives eleven short headers, not
twenty-two long ones. A table wider than the page scrolls in its own box.
"""

from __future__ import annotations

import html
from collections.abc import Sequence

import pandas as pd

from mmadfer_cli.reporting.time_axis import clock_text

# Headers in words, where the column's name is not already one.
_HEADERS = {
    "first_s": "first seen",
    "last_s": "last seen",
    "seconds_seen": "on screen",
    "dominant_emotion": "dominant",
    "video_no_face_share": "video without a face",
    "persons": "people",
    "annotated_s": "annotated",
    "no_face_s": "no face",
    "no_face_share": "no face (share)",
    "error_s": "unreadable",
    "has_audio": "sound",
}
# Per-class columns: prefix, and the header above the classes.
_GROUPS = {"share_": "share of segments labelled", "mean_prob_": "mean probability"}


def _kind(column: str) -> str:
    """How a column's values are shown: seconds as clock times, shares as percentages."""
    if column.endswith("_s") or column == "seconds_seen":
        return "time"
    if column.endswith("share") or column.startswith("share_"):
        return "share"
    if column.startswith("mean_"):
        return "number"
    counts = {"segments": "count", "persons": "count", "person": "count", "has_audio": "flag"}
    return counts.get(column, "text")


def _spec(column: str) -> tuple[str, str]:
    """(group, header) of a summary column."""
    for prefix, group in _GROUPS.items():
        if column.startswith(prefix):
            return group, column.removeprefix(prefix)
    return "", _HEADERS.get(column, column.replace("_", " "))


def cell_text(value: object, kind: str) -> str:
    """A value as the page shows it (escaped)."""
    if value is None or (not isinstance(value, str) and pd.isna(value)):
        return ""
    if kind == "time":
        return clock_text(float(value))  # type: ignore[arg-type]
    if kind == "share":
        return f"{float(value):.0%}"  # type: ignore[arg-type]
    if kind == "number":
        return f"{float(value):.2f}"  # type: ignore[arg-type]
    if kind == "flag":
        return "yes" if value else "no"
    return html.escape(str(value))


def _th(header: str, column: str = "", extra: str = "") -> str:
    """A header cell, aligned as its column's values are."""
    align = ' class="text"' if column and _kind(column) == "text" else ""
    return f"<th{align}{extra}>{html.escape(header)}</th>"


def _head(columns: Sequence[str]) -> str:
    """One header row, or two where columns come in groups (the group above its classes)."""
    specs = [_spec(c) for c in columns]
    if not any(group for group, _ in specs):
        return (
            "<tr>" + "".join(_th(h, c) for c, (_, h) in zip(columns, specs, strict=True)) + "</tr>"
        )
    top, below, i = [], [], 0
    while i < len(specs):
        group, header = specs[i]
        if not group:
            top.append(_th(header, columns[i], ' rowspan="2"'))
            i += 1
            continue
        width = next((j for j in range(i, len(specs)) if specs[j][0] != group), len(specs)) - i
        top.append(_th(group, extra=f' colspan="{width}" class="group"'))
        below += [_th(h) for _, h in specs[i : i + width]]
        i += width
    return f"<tr>{''.join(top)}</tr>\n<tr>{''.join(below)}</tr>"


def html_table(
    df: pd.DataFrame,
    links: dict[str, str] | None = None,
    errors: Sequence[bool] | None = None,
) -> str:
    """A table of summary rows in a box that scrolls sideways when wider than the page.
    ``links`` maps a video to the page that shows it (its ``video`` cells link there);
    ``errors`` marks rows to show as failed."""
    kinds = [_kind(c) for c in df.columns]
    rows = []
    for i, values in enumerate(df.itertuples(index=False)):
        cells = []
        for column, kind, value in zip(df.columns, kinds, values, strict=True):
            text = cell_text(value, kind)
            if column == "video" and links and value in links:
                text = f'<a href="{html.escape(links[value])}">{text}</a>'
            cells.append(f'<td class="text">{text}</td>' if kind == "text" else f"<td>{text}</td>")
        attr = ' class="error"' if errors is not None and errors[i] else ""
        rows.append(f"<tr{attr}>{''.join(cells)}</tr>")
    body = "\n".join(rows)
    table = f"<table>\n<thead>{_head(df.columns)}</thead>\n<tbody>\n{body}\n</tbody></table>"
    return f'<div class="scroll">{table}</div>'


def collapsible(summary: str, content: str, open_: bool) -> str:
    """``content`` under a heading line that folds it away (HTML's own ``<details>``, no script)."""
    return f"<details{' open' if open_ else ''}><summary>{summary}</summary>\n{content}\n</details>"
