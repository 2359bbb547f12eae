"""``mmadfer report``'s output folder: summary tables, a timeline picture per video, HTML pages.

``index.html`` lists the videos and people; with more than one video each
video gets its own page in ``videos/`` (its tables and timeline), so a report of
hundreds of hours is an index that opens at once plus pages of one picture
each, not one page of hundreds of pictures. A single video's report is one
page. Pages carry their style and pictures inside (base64 PNG) and have no
scripts or external resources, so they open offline, and their links are
relative, so the folder can be moved, archived or mailed as a whole.
"""

from __future__ import annotations

import base64
import datetime as dt
import html
import io
import os
from collections.abc import Callable
from pathlib import Path
from urllib.parse import quote

import pandas as pd

from mmadfer_cli import __version__
from mmadfer_cli.reporting.filenames import video_stems
from mmadfer_cli.reporting.html_tables import collapsible, html_table
from mmadfer_cli.reporting.summary import summarize, summarize_videos
from mmadfer_cli.reporting.time_axis import clock_text
from mmadfer_cli.reporting.timeline import (
    PER_MINUTE_ABOVE_S,
    per_minute,
    timeline_figure,
    video_end,
)
from mmadfer_cli.table.read import check_results, class_names, person_column, video_order
from mmadfer_cli.table.spreadsheet import neutral_frame

PAGES = "videos"  # the folder of the per-video pages, beside index.html
_OPEN_ROWS = 40  # a longer table starts folded

_CSS = """
body { font: 14px/1.45 system-ui, sans-serif; margin: 2em auto; padding: 0 1em; max-width: 1200px;
  color: #222; }
h1 { font-size: 1.5em; overflow-wrap: anywhere; }
h2 { margin-top: 2em; border-bottom: 1px solid #ddd; }
.meta, nav { color: #555; } nav a { margin-right: 1.5em; }
summary { cursor: pointer; margin: .5em 0; }
.scroll { overflow: auto; max-width: 100%; max-height: 85vh; border: 1px solid #eee; }
table { border-collapse: collapse; font-size: 13px; }
th, td { padding: 3px 8px; border-bottom: 1px solid #eee; text-align: right; white-space: nowrap; }
th { background: #f3f3f3; position: sticky; top: 0; } thead tr + tr th { top: 1.75em; }
th.group { text-align: center; border-bottom: 1px solid #ccc; }
td.text, th.text { text-align: left; } td.text:first-child { min-width: 10em; }
td.text { white-space: normal; max-width: 28em; overflow-wrap: break-word; }
tr.error td { color: #b00020; } img { max-width: 100%; border: 1px solid #eee; }
"""

_TIMELINE_NOTE = (
    "Each person's class probabilities per segment, stacked: the widest colour is the label and a "
    "close call shows as two wide colours. White: the person is not on screen; grey diagonal "
    "hatching: no face in the picture; black cross-hatching: could not be read. Videos longer "
    f"than {PER_MINUTE_ABOVE_S // 60} minutes show one bar per minute: the mean of each class's "
    "probability over the person's segments in that minute (the tables and CSV files count every "
    "segment)."
)
_VIDEOS_NOTE = (
    "Annotated: the time the video's segments cover, which is the file's length when all of it "
    "could be read (videos.csv: annotated_s, in seconds); no face and unreadable are parts of it."
)
_PEOPLE_NOTE = (
    "One row per video and person: time on screen, the share of their segments with each label "
    "and the mean probability of each class (summary.csv has the exact numbers)."
)


def _png(fig: object, path: Path, dpi: int) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi)  # type: ignore[attr-defined]
    data = buffer.getvalue()
    path.write_bytes(data)
    return data


def _document(title: str, body: str) -> str:
    return (
        '<!doctype html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{html.escape(title)}</title><style>{_CSS}</style></head><body>\n"
        f"{body}\n</body></html>\n"
    )


def _facts(df: pd.DataFrame, source: str) -> str:
    meta = df.attrs.get("mmadfer", {})
    model = meta.get("model", {}).get("name")
    facts = [f"Results: {html.escape(source)}"]
    if model:
        facts.append(f"model {html.escape(str(model))}")
    facts.append(f"classes: {html.escape(', '.join(class_names(df)))}")
    facts.append(f"made {dt.datetime.now().isoformat(timespec='seconds')} by mmadfer {__version__}")
    return f'<p class="meta">{" · ".join(facts)}</p>'


def _timeline(video: str, png: bytes, end_s: float) -> str:
    name = html.escape(video)
    scale = "one bar per minute" if per_minute(end_s) else "one bar per segment"
    encoded = base64.b64encode(png).decode("ascii")
    return (
        f'<h2>Timeline</h2><p class="meta">{clock_text(end_s)} long, {scale}. '
        f"{_TIMELINE_NOTE}</p>\n"
        f'<img src="data:image/png;base64,{encoded}" alt="emotion timeline of {name}">'
    )


def _people_section(people: pd.DataFrame, links: dict[str, str] | None = None) -> str:
    rows = len(people)
    table = html_table(people, links)
    return f'<h2>People</h2>\n<p class="meta">{_PEOPLE_NOTE}</p>\n' + collapsible(
        f"{rows} row{'s' if rows != 1 else ''}", table, rows <= _OPEN_ROWS
    )


def _videos_section(videos: pd.DataFrame, links: dict[str, str] | None = None) -> str:
    table = html_table(videos, links, (videos["status"] != "ok").tolist())
    heading = "Video" if len(videos) == 1 else "Videos"
    return f'<h2>{heading}</h2>\n<p class="meta">{_VIDEOS_NOTE}</p>\n{table}'


def _link(href: str, text: str) -> str:
    return f'<a href="{html.escape(href)}">{html.escape(text)}</a>'


def _video_page(
    video: str, neighbours: tuple[str | None, str | None], hrefs: dict[str, str], parts: list[str]
) -> str:
    """A video's page: links to the index and the videos before and after it, then ``parts``."""
    links = [_link("../index.html", "all videos")]
    for word, other in zip(("previous", "next"), neighbours, strict=True):
        if other is not None:  # pages are siblings: the href from the index, less its folder
            links.append(_link(hrefs[other].removeprefix(f"{PAGES}/"), f"{word}: {other}"))
    body = f"<nav>{''.join(links)}</nav>\n<h1>{html.escape(video)}</h1>" + "\n".join(parts)
    return _document(f"{video}: emotion report", body)


def write_report(
    df: pd.DataFrame,
    out: str | os.PathLike[str],
    *,
    source: str = "",
    dpi: int = 100,
    on_video: Callable[[str], None] | None = None,
) -> Path:
    """Write ``summary.csv``, ``videos.csv``, ``timelines/<video>.png``, ``index.html`` and, for
    more than one video, ``videos/<video>.html`` into ``out`` (created when missing); returns the
    index page's path. ``on_video`` is called after each timeline (for progress)."""
    check_results(df)
    out = Path(out)
    (out / "timelines").mkdir(parents=True, exist_ok=True)
    classes, person = class_names(df), person_column(df)
    people = summarize(df)
    videos = summarize_videos(df)
    # Made to be opened in a spreadsheet: a video named "=HYPERLINK(...)" must stay text.
    neutral_frame(people).to_csv(out / "summary.csv", index=False, float_format="%.6g")
    neutral_frame(videos).to_csv(out / "videos.csv", index=False, float_format="%.6g")
    shown_people = people.drop(columns=["video_id"]).rename(columns={person: "person"})
    shown_videos = videos.drop(columns=["video_id"])

    stems = video_stems(video_order(df))
    order = list(stems)
    single = len(order) == 1
    hrefs = {v: f"{PAGES}/{quote(stem)}.html" for v, stem in stems.items()}
    if not single:
        (out / PAGES).mkdir(exist_ok=True)
    timeline = ""
    for k, (video, rows) in enumerate(df.groupby("video", sort=False)):
        video = str(video)
        fig = timeline_figure(rows, classes, person)
        png = _png(fig, out / "timelines" / f"{stems[video]}.png", dpi)
        timeline = _timeline(video, png, video_end(rows))
        if not single:
            neighbours = (order[k - 1] if k else None, order[k + 1] if k + 1 < len(order) else None)
            mine = shown_people[shown_people["video"] == video].drop(columns=["video"])
            parts = [
                _facts(df, source),
                _videos_section(shown_videos[shown_videos["video"] == video]),
                _people_section(mine),
                timeline,
            ]
            page = _video_page(video, neighbours, hrefs, parts)
            (out / PAGES / f"{stems[video]}.html").write_text(page, encoding="utf-8")
        if on_video is not None:
            on_video(video)

    links = None if single else hrefs
    pages_note = (
        ""
        if single
        else '<p class="meta">Each video\'s timeline is on its own page: follow its name '
        f"(pages in {PAGES}/).</p>\n"
    )
    body = (
        f"<h1>Emotion report</h1>{_facts(df, source)}\n{pages_note}"
        + _videos_section(shown_videos, links)
        + "\n"
        + _people_section(shown_people, links)
        + (f"\n{timeline}" if single else "")
    )
    index = out / "index.html"
    index.write_text(_document("Emotion report", body), encoding="utf-8")
    return index
