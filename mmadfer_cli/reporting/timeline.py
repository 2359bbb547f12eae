"""A video's emotion timeline as a matplotlib figure: one band per person, a strip for the video.

Each person's band stacks the class probabilities of every segment (so the
widest colour is the label, and a close call is visible as two wide colours);
time the person is not on screen stays white. The strip on top marks the
stretches without any face (grey, hatched) and those that could not be read
(red). The figure is built without pyplot, so it is safe in threads and shows
itself in a notebook when returned.
"""

from __future__ import annotations

import textwrap

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.patches import Patch

from mmadfer_cli.media.discover import terminal_text
from mmadfer_cli.plural import counted
from mmadfer_cli.reporting.summary import dominant_label
from mmadfer_cli.table.read import (
    PROB_PREFIX,
    check_results,
    class_names,
    person_column,
    person_label,
    segment_spans,
)

# Fixed colours for the DFEW and MAFW classes, so every picture and overlay reads the same.
EMOTION_COLORS = {
    "happiness": "#f2b701",
    "sadness": "#3969ac",
    "neutral": "#b5b5b5",
    "anger": "#e73f74",
    "surprise": "#11a579",
    "disgust": "#7f3c8d",
    "fear": "#222222",
    "contempt": "#a5aa00",
    "anxiety": "#f97b72",
    "helplessness": "#80ba5a",
    "disappointment": "#4b4b8f",
}
_SPARE = ("#e68310", "#008695", "#cf1c90", "#80ba5a", "#8c564b", "#17becf")
NO_FACE_COLOR, ERROR_COLOR = "#9a9a9a", "#d62728"


def class_colors(classes: list[str]) -> dict[str, str]:
    """A colour per class: the fixed emotion colours, spare ones for other class names."""
    spare = iter(_SPARE * (1 + len(classes) // len(_SPARE)))
    return {c: EMOTION_COLORS.get(c) or next(spare) for c in classes}


def _shade(ax, rows: pd.DataFrame, color: str, hatch: str | None, alpha: float) -> None:
    edge = color if hatch and alpha < 0.5 else "white"
    for start, end in rows[["start_s", "end_s"]].dropna().itertuples(index=False):
        ax.axvspan(start, end, facecolor="none" if alpha < 0.5 and hatch else color, alpha=alpha,
                   hatch=hatch, edgecolor=edge, lw=0)  # fmt: skip


def _short(text: str, width: int = 90) -> str:
    return text if len(text) <= width else "…" + text[-(width - 1) :]


def plot_timeline(df: pd.DataFrame, video: str, *, width: float = 11.0) -> Figure:
    """The timeline of one video of a result table (``video`` as in the ``video`` column)."""
    check_results(df)
    rows = df[df["video"] == video]
    if rows.empty:
        raise ValueError(f"{video!r} is not in the table")
    classes, person = class_names(df), person_column(df)
    colors = class_colors(classes)
    ok = rows[rows["status"] == "ok"].sort_values("start_s")
    no_face = rows[rows["status"] == "no_face"]
    failed = rows[rows["status"] == "error"]
    persons = sorted(ok[person].dropna().unique().tolist())
    end = float(np.nanmax(rows["end_s"].to_numpy(float))) if rows["end_s"].notna().any() else 1.0

    fig = Figure(figsize=(width, 1.5 + 0.8 * max(len(persons), 1)), layout="constrained")
    ratios = [0.35] + [1.0] * max(len(persons), 1)
    axes = fig.subplots(len(ratios), 1, sharex=True, gridspec_kw={"height_ratios": ratios})
    strip, bands = axes[0], axes[1:]

    strip.set_yticks([])
    strip.set_ylabel("faces", rotation=0, ha="right", va="center")
    _shade(strip, no_face, NO_FACE_COLOR, "///", 0.6)
    _shade(strip, failed, ERROR_COLOR, None, 0.8)
    whole_failure = failed[failed["start_s"].isna()]
    if not whole_failure.empty:
        message = "; ".join(dict.fromkeys(whole_failure["error"].dropna().astype(str)))
        strip.axvspan(0, end, facecolor=ERROR_COLOR, alpha=0.8, lw=0)
        bands[0].set_xticks([])
        bands[0].text(0.5, 0.5, textwrap.fill(f"could not be read: {message}", 100), color=ERROR_COLOR,
                      ha="center", va="center", transform=bands[0].transAxes)  # fmt: skip
    elif not persons:
        bands[0].text(0.5, 0.5, "no face long enough in any segment", color="#555555",
                      ha="center", va="center", transform=bands[0].transAxes)  # fmt: skip

    for ax, pid in zip(bands, persons, strict=False):
        mine = ok[ok[person] == pid]
        left, right = segment_spans(mine)
        widths = right - left
        bottom = np.zeros(len(mine))
        for c in classes:
            height = mine[PROB_PREFIX + c].to_numpy(float)
            # thin white edges keep the segments apart where neighbours look alike
            ax.bar(left, height, widths, bottom, align="edge", color=colors[c],
                   edgecolor="white", linewidth=0.4)  # fmt: skip
            bottom += height
        _shade(ax, no_face, NO_FACE_COLOR, "///", 0.35)
        _shade(ax, failed, ERROR_COLOR, None, 0.25)
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
        for side in ("top", "right"):
            ax.spines[side].set_visible(False)
    bands[-1].set_xlabel("time (s)")

    handles = [Patch(color=colors[c], label=c) for c in classes]
    handles += [
        Patch(facecolor=NO_FACE_COLOR, alpha=0.6, hatch="///", edgecolor="white", label="no face"),
        Patch(facecolor=ERROR_COLOR, alpha=0.8, label="error"),
    ]
    fig.legend(handles=handles, loc="outside lower center", ncols=min(len(handles), 8),
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
