"""A video's emotion timeline as a matplotlib figure: one band per person, a strip for the video.

Each person's band stacks the class probabilities of every segment (so the
widest colour is the label, and a close call is visible as two wide colours);
time the person is not on screen stays white. A video longer than
``PER_MINUTE_ABOVE_S`` is drawn a minute per bar (the mean of the person's
segments in that minute), since 3-second segments would be thinner than a
pixel. Bars have no edges, so long videos keep their colours. The strip on top
marks the stretches without any face and those that could not be read, with
patterns no class has. The time axis reads ``m:ss`` or ``h:mm:ss``. The figure
is built without pyplot, so it is safe in threads and shows itself in a
notebook when returned.
"""

from __future__ import annotations

import textwrap

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.collections import PolyCollection
from matplotlib.figure import Figure
from matplotlib.patches import Patch

from mmadfer_cli.media.discover import terminal_text
from mmadfer_cli.plural import counted
from mmadfer_cli.reporting.palette import (
    ERROR_COLOR,
    ERROR_HATCH,
    NO_FACE_COLOR,
    NO_FACE_HATCH,
    NOT_ON_SCREEN_COLOR,
    class_colors,
)
from mmadfer_cli.reporting.summary import dominant_label, merged_spans, row_spans
from mmadfer_cli.reporting.time_axis import set_time_axis
from mmadfer_cli.table.read import (
    PROB_PREFIX,
    check_results,
    class_names,
    person_column,
    person_label,
    segment_spans,
)

PER_MINUTE_ABOVE_S = 20 * 60  # at 11 inches and 100 dpi a 3 s segment is 3 pixels here
MINUTE_S = 60.0


def per_minute(video_s: float) -> bool:
    """Whether a video of this annotated length is drawn a minute per bar."""
    return video_s > PER_MINUTE_ABOVE_S


def band_bars(
    mine: pd.DataFrame, classes: list[str], bin_s: float | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Left and right edges and class probabilities (bars x classes) of one person's bars: a
    bar per segment, or per ``bin_s`` window with the mean of the segments starting in it."""
    mine = mine.sort_values("start_s")
    left, right = segment_spans(mine)
    probs = mine[[PROB_PREFIX + c for c in classes]].to_numpy(float)
    if bin_s is None or not len(left):
        return left, right, probs
    bins, which = np.unique(np.floor(left / bin_s).astype(np.int64), return_inverse=True)
    sums = np.zeros((len(bins), len(classes)))
    np.add.at(sums, which, probs)
    means = sums / np.bincount(which)[:, None]
    return bins * bin_s, np.minimum((bins + 1) * bin_s, right.max()), means


def _stack(
    ax: Axes, left: np.ndarray, right: np.ndarray, probs: np.ndarray, colors: list[str]
) -> None:
    """Stacked bars as one rectangle collection per class: no edges and no antialiasing, so
    neighbouring bars meet without a seam and bars thinner than a pixel keep their colour."""
    bottom = np.zeros(len(left))
    for j, color in enumerate(colors):
        top = bottom + probs[:, j]
        corners = [(left, bottom), (right, bottom), (right, top), (left, top)]
        verts = np.stack([np.column_stack(c) for c in corners], axis=1)
        ax.add_collection(
            PolyCollection(
                verts, facecolors=color, edgecolors="none", linewidths=0, antialiaseds=False
            )
        )
        bottom = top


def _mark(ax: Axes, rows: pd.DataFrame, color: str, hatch: str, behind: bool = False) -> None:
    """Hatch the merged spans of ``rows`` (no-face or unreadable stretches) across ``ax``; the
    outline keeps a stretch thinner than a pixel visible. In a person's band the marks are
    fainter and ``behind`` the bars, which cover them where a minute's bar holds such a stretch."""
    spans = merged_spans(row_spans(rows))
    if spans:
        ax.broken_barh([(s, e - s) for s, e in spans], (0, 1), facecolors="none", edgecolors=color,
                       hatch=hatch, linewidth=0.6, alpha=0.5 if behind else 1.0,
                       zorder=0.5 if behind else 1.0)  # fmt: skip


def _short(text: str, width: int = 90) -> str:
    return text if len(text) <= width else "…" + text[-(width - 1) :]


def legend_handles(classes: list[str]) -> list[Patch]:
    """The legend: each class's colour, then what white, hatched grey and black mean."""
    colors = class_colors(classes)
    return [Patch(color=colors[c], label=c) for c in classes] + [
        Patch(facecolor=NOT_ON_SCREEN_COLOR, edgecolor="#BBBBBB", label="not on screen"),
        Patch(facecolor="none", edgecolor=NO_FACE_COLOR, hatch=NO_FACE_HATCH, label="no face"),
        Patch(
            facecolor="none", edgecolor=ERROR_COLOR, hatch=ERROR_HATCH, label="could not be read"
        ),
    ]


def video_end(rows: pd.DataFrame) -> float:
    """Where a video's timeline ends: its last segment's end (1 s for a video without any)."""
    return float(np.nanmax(rows["end_s"].to_numpy(float))) if rows["end_s"].notna().any() else 1.0


def plot_timeline(df: pd.DataFrame, video: str, *, width: float = 11.0) -> Figure:
    """The timeline of one video of a result table (``video`` as in the ``video`` column)."""
    check_results(df)
    rows = df[df["video"] == video]
    if rows.empty:
        raise ValueError(f"{video!r} is not in the table")
    return timeline_figure(rows, class_names(df), person_column(df), width=width)


def timeline_figure(
    rows: pd.DataFrame, classes: list[str], person: str, *, width: float = 11.0
) -> Figure:
    """The timeline of one video's rows (a report plots each video of a table grouped once)."""
    video = str(rows["video"].iloc[0])
    colors = class_colors(classes)
    ok = rows[rows["status"] == "ok"]
    no_face = rows[rows["status"] == "no_face"]
    failed = rows[rows["status"] == "error"]
    persons = sorted(ok[person].dropna().unique().tolist())
    end = video_end(rows)
    bin_s = MINUTE_S if per_minute(end) else None

    fig = Figure(figsize=(width, 1.6 + 0.8 * max(len(persons), 1)), layout="constrained")
    ratios = [0.35] + [1.0] * max(len(persons), 1)
    axes = fig.subplots(len(ratios), 1, sharex=True, gridspec_kw={"height_ratios": ratios})
    strip, bands = axes[0], axes[1:]

    strip.set_yticks([])
    strip.set_ylabel("faces", rotation=0, ha="right", va="center")
    _mark(strip, no_face, NO_FACE_COLOR, NO_FACE_HATCH)
    _mark(strip, failed, ERROR_COLOR, ERROR_HATCH)
    whole_failure = failed[failed["start_s"].isna()]
    if not whole_failure.empty:
        message = "; ".join(dict.fromkeys(whole_failure["error"].dropna().astype(str)))
        strip.broken_barh(
            [(0, end)], (0, 1), facecolors="none", edgecolors=ERROR_COLOR, hatch=ERROR_HATCH
        )
        bands[0].set_xticks([])
        bands[0].text(0.5, 0.5, textwrap.fill(f"could not be read: {message}", 100), color=ERROR_COLOR,
                      ha="center", va="center", transform=bands[0].transAxes)  # fmt: skip
    elif not persons:
        bands[0].text(0.5, 0.5, "no face long enough in any segment", color="#555555",
                      ha="center", va="center", transform=bands[0].transAxes)  # fmt: skip

    for ax, pid in zip(bands, persons, strict=False):
        mine = ok[ok[person] == pid]
        _stack(ax, *band_bars(mine, classes, bin_s), [colors[c] for c in classes])
        _mark(ax, no_face, NO_FACE_COLOR, NO_FACE_HATCH, behind=True)
        _mark(ax, failed, ERROR_COLOR, ERROR_HATCH, behind=True)
        label = dominant_label(mine, classes)
        share = (mine["label"] == label).mean()
        ax.set_ylabel(
            f"{person_label(pid)}\n{label} {share:.0%}", rotation=0, ha="right", va="center"
        )
    for ax in bands:
        ax.set_ylim(0, 1)
        ax.set_yticks([0, 1] if persons else [])
        ax.tick_params(axis="y", labelsize="small")
    for ax in axes:
        ax.set_xlim(0, end)
        ax.set_facecolor(NOT_ON_SCREEN_COLOR)
        for side in ("top", "right"):
            ax.spines[side].set_visible(False)
    clock = set_time_axis(bands[-1], end)
    per = "; one bar per minute: the mean of its segments" if bin_s else ""
    bands[-1].set_xlabel(f"time ({clock}){per}")

    handles = legend_handles(classes)
    fig.legend(handles=handles, loc="outside lower center", ncols=min(len(handles), 7),
               frameon=False, fontsize="small")  # fmt: skip
    no_face_share = (
        f", no face {no_face['end_s'].sub(no_face['start_s']).sum() / end:.0%}"
        if not no_face.empty
        else ""
    )
    fig.suptitle(
        _short(f"{terminal_text(video)}: {counted(len(persons), 'person', 'people')}{no_face_share}"), fontsize="medium", x=0.01,
        ha="left"
    )  # fmt: skip
    return fig
