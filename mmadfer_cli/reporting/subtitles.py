"""Subtitles (SRT, WebVTT) that show each segment's labels in any video player.

One cue per segment: a short line per person (``person 0: happiness 0.82``), or
``(no face)``, or ``(could not be read)``; cue ends are cut at the next
segment's start so that overlapping segments do not stack on screen. A cue
holds at most ``MAX_LINES`` lines, so that a crowd does not cover the picture:
with more people, the first three by number and ``+N more`` (the ELAN export
and the table have everyone).
"""

from __future__ import annotations

import html
from typing import Literal

import pandas as pd

from mmadfer_cli.table.read import person_column, person_label, segment_spans

SubtitleFormat = Literal["srt", "vtt"]
SUBTITLE_FORMATS: tuple[str, ...] = ("srt", "vtt")
MAX_LINES = 4  # more lines than a subtitle's usual two would cover much of the picture


def _line(rows: pd.DataFrame, person: str) -> str:
    status = rows["status"].iloc[0]
    if status == "no_face":
        return "(no face)"
    if status == "error":
        return "(could not be read)"
    lines = [
        f"{person_label(r[person])}: {r['label']} {float(r['confidence']):.2f}"
        for _, r in rows.sort_values(person).iterrows()
    ]
    if len(lines) > MAX_LINES:
        lines = [*lines[: MAX_LINES - 1], f"+{len(lines) - MAX_LINES + 1} more"]
    return "\n".join(lines)


def cues(df: pd.DataFrame, video: str) -> list[tuple[float, float, str]]:
    """``(start_s, end_s, text)`` of one video's cues, in time order."""
    rows = df[(df["video"] == video) & df["start_s"].notna() & df["end_s"].notna()]
    person = person_column(df)
    segments = []
    for _, seg in rows.groupby(["start_s", "end_s"], sort=True):
        # ok rows win over a no_face/error row of the same span (there is none today)
        ok = seg[seg["status"] == "ok"]
        segments.append(
            (seg["start_s"].iloc[0], seg["end_s"].iloc[0], _line(ok if len(ok) else seg, person))
        )
    frame = pd.DataFrame(segments, columns=["start_s", "end_s", "text"])
    starts, ends = segment_spans(frame)
    return [(s, e, t) for s, e, t in zip(starts, ends, frame["text"], strict=True) if e > s]


def _timestamp(seconds: float, separator: str) -> str:
    ms = round(seconds * 1000)
    hours, ms = divmod(ms, 3_600_000)
    minutes, ms = divmod(ms, 60_000)
    secs, ms = divmod(ms, 1000)
    return f"{hours:02d}:{minutes:02d}:{secs:02d}{separator}{ms:03d}"


def render(cue_list: list[tuple[float, float, str]], fmt: SubtitleFormat) -> str:
    """The text of a subtitle file."""
    if fmt == "srt":
        blocks = [
            f"{i}\n{_timestamp(s, ',')} --> {_timestamp(e, ',')}\n{text}"
            for i, (s, e, text) in enumerate(cue_list, start=1)
        ]
        return "\n\n".join(blocks) + "\n" if blocks else ""
    blocks = [
        f"{_timestamp(s, '.')} --> {_timestamp(e, '.')}\n{html.escape(text, quote=False)}"
        for s, e, text in cue_list
    ]
    return "WEBVTT\n\n" + "\n\n".join(blocks) + ("\n" if blocks else "")
