"""``mmadfer report``'s output folder: summary tables, a timeline picture per video, one HTML page.

The page is a single file with the pictures embedded (base64 PNG) and no
scripts or external resources, so it opens offline, can be mailed or archived
with the data, and shows exactly the numbers of the CSV files beside it.
"""

from __future__ import annotations

import base64
import datetime as dt
import html
import io
import os
from collections.abc import Callable
from pathlib import Path

import pandas as pd

from mmadfer_cli import __version__
from mmadfer_cli.reporting.filenames import video_stems
from mmadfer_cli.reporting.summary import summarize, summarize_videos
from mmadfer_cli.reporting.timeline import plot_timeline
from mmadfer_cli.table.read import class_names, person_column, video_order
from mmadfer_cli.table.spreadsheet import neutral_frame

_CSS = """
body { font: 14px/1.45 system-ui, sans-serif; margin: 2em auto; max-width: 1200px; color: #222; }
h1 { font-size: 1.5em; } h2 { margin-top: 2em; border-bottom: 1px solid #ddd; }
h3 { font-size: 1em; margin: 1.5em 0 .3em; overflow-wrap: anywhere; }
.meta { color: #666; } .scroll { overflow-x: auto; }
table { border-collapse: collapse; font-size: 13px; }
th, td { padding: 3px 8px; border-bottom: 1px solid #eee; text-align: right; white-space: nowrap; }
th { background: #f5f5f5; } td:first-child, th:first-child { text-align: left; white-space: normal; }
td.text { white-space: normal; text-align: left; min-width: 12em; overflow-wrap: anywhere; }
tr.error td { color: #b00020; } img { max-width: 100%; border: 1px solid #eee; }
"""


def _cell(value: object, percent: bool) -> str:
    if pd.isna(value):
        return ""
    if percent:
        return f"{float(value):.0%}"
    if isinstance(value, float):
        return f"{value:.2f}"
    return html.escape(str(value))


def _html_table(df: pd.DataFrame, percent: list[str], errors: list[bool] | None = None) -> str:
    """A plain HTML table: shares as percentages, other numbers to two decimals, text escaped."""
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in df.columns)
    rows = []
    for i, values in enumerate(df.itertuples(index=False)):
        cells = "".join(
            f"<td{' class=text' if isinstance(v, str) else ''}>{_cell(v, c in percent)}</td>"
            for c, v in zip(df.columns, values, strict=True)
        )
        attr = ' class="error"' if errors is not None and errors[i] else ""
        rows.append(f"<tr{attr}>{cells}</tr>")
    body = "\n".join(rows)
    return f'<div class="scroll"><table>\n<tr>{head}</tr>\n{body}\n</table></div>'


def _png(fig: object, path: Path, dpi: int) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi)  # type: ignore[attr-defined]
    data = buffer.getvalue()
    path.write_bytes(data)
    return data


def _page(
    title: str, source: str, df: pd.DataFrame, people: str, videos: str, timelines: list[str]
) -> str:
    meta = df.attrs.get("mmadfer", {})
    model = meta.get("model", {}).get("name")
    facts = [f"Results: {html.escape(source)}"]
    if model:
        facts.append(f"model {html.escape(str(model))}")
    facts.append(f"classes: {html.escape(', '.join(class_names(df)))}")
    facts.append(f"made {dt.datetime.now().isoformat(timespec='seconds')} by mmadfer {__version__}")
    return (
        '<!doctype html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{html.escape(title)}</title><style>{_CSS}</style></head><body>\n"
        f'<h1>{html.escape(title)}</h1><p class="meta">{" · ".join(facts)}</p>\n'
        f"<h2>Videos</h2>\n{videos}\n<h2>People</h2>\n"
        '<p class="meta">One row per video and person: seconds on screen, the share of their '
        "segments with each label, and the mean probability of each class.</p>\n"
        f"{people}\n<h2>Timelines</h2>\n"
        '<p class="meta">Each person\'s class probabilities per segment (stacked; the widest '
        "colour is the label). Hatched grey: no face; red: could not be read.</p>\n"
        + "\n".join(timelines)
        + "\n</body></html>\n"
    )


def write_report(
    df: pd.DataFrame,
    out: str | os.PathLike[str],
    *,
    source: str = "",
    dpi: int = 100,
    on_video: Callable[[str], None] | None = None,
) -> Path:
    """Write ``summary.csv``, ``videos.csv``, ``timelines/<video>.png`` and ``index.html`` into
    ``out`` (created when missing); returns the page's path. ``on_video`` is called after each
    timeline (for progress)."""
    out = Path(out)
    (out / "timelines").mkdir(parents=True, exist_ok=True)
    people = summarize(df)
    videos = summarize_videos(df)
    # Made to be opened in a spreadsheet: a video named "=HYPERLINK(...)" must stay text.
    neutral_frame(people).to_csv(out / "summary.csv", index=False, float_format="%.6g")
    neutral_frame(videos).to_csv(out / "videos.csv", index=False, float_format="%.6g")

    stems = video_stems(video_order(df))
    sections = []
    for video, stem in stems.items():
        fig = plot_timeline(df, video)
        png = _png(fig, out / "timelines" / f"{stem}.png", dpi)
        encoded = base64.b64encode(png).decode("ascii")
        name = html.escape(video)
        sections.append(
            f'<section><h3 id="{html.escape(stem)}">{name}</h3>'
            f'<img src="data:image/png;base64,{encoded}" alt="emotion timeline of {name}"></section>'
        )
        if on_video is not None:
            on_video(video)

    person = person_column(df)
    share = [c for c in people.columns if c.startswith("share_")] + ["video_no_face_share"]
    people_html = _html_table(
        people.drop(columns=["video_id"]).rename(columns={person: "person"}), share
    )
    videos_html = _html_table(videos, ["no_face_share"], (videos["status"] != "ok").tolist())
    page = _page("Emotion report", source, df, people_html, videos_html, sections)
    index = out / "index.html"
    index.write_text(page, encoding="utf-8")
    return index
