"""Per-person and per-video summaries of a result table: what a researcher counts first.

Times are measured as the union of segment spans, so overlapping segments
(``--stride`` shorter than ``--window``) are not counted twice. A person's
dominant emotion is the label of most of their segments; a tie goes to the
label with the higher mean probability.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import pandas as pd

from mmadfer_cli.table.read import PROB_PREFIX, check_results, class_names, person_column


def merged_spans(spans: Iterable[tuple[float, float]]) -> list[tuple[float, float]]:
    """The union of ``(start, end)`` spans as disjoint spans in time order."""
    merged: list[tuple[float, float]] = []
    for start, end in sorted(spans):
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
        else:
            merged.append((start, end))
    return merged


def covered_seconds(spans: Iterable[tuple[float, float]]) -> float:
    """Length of the union of ``(start, end)`` spans."""
    return float(sum(end - start for start, end in merged_spans(spans)))


def row_spans(df: pd.DataFrame) -> list[tuple[float, float]]:
    """``(start_s, end_s)`` of the rows that have a span."""
    rows = df.dropna(subset=["start_s", "end_s"])
    return list(zip(rows["start_s"].astype(float), rows["end_s"].astype(float), strict=True))


def _only(spans: list[tuple[float, float]], minus: list[tuple[float, float]]) -> float:
    """Seconds covered by ``spans`` and not by ``minus``."""
    return covered_seconds(spans + minus) - covered_seconds(minus)


def dominant_label(ok: pd.DataFrame, classes: list[str]) -> str | None:
    """The most frequent label of these rows; ties go to the higher mean probability."""
    if ok.empty:
        return None
    counts = ok["label"].value_counts()
    tied = [label for label in counts.index if counts[label] == counts.iloc[0]]
    if len(tied) == 1:
        return str(tied[0])
    means = {label: ok[PROB_PREFIX + label].astype(float).mean() for label in tied}
    return str(max(tied, key=lambda label: (means[label], -classes.index(label))))


def _video_times(rows: pd.DataFrame) -> dict[str, float]:
    ok = row_spans(rows[rows["status"] == "ok"])
    no_face = row_spans(rows[rows["status"] == "no_face"])
    errors = row_spans(rows[rows["status"] == "error"])
    annotated = covered_seconds(ok + no_face + errors)
    if annotated == 0:  # a video that failed as a whole: its length is unknown
        return dict.fromkeys(("annotated_s", "no_face_s", "no_face_share", "error_s"), np.nan)
    no_face_s = _only(no_face, ok)
    return {
        "annotated_s": annotated,
        "no_face_s": no_face_s,
        "no_face_share": no_face_s / annotated,
        "error_s": _only(errors, ok + no_face),
    }


def summarize(df: pd.DataFrame) -> pd.DataFrame:
    """One row per video and person: seconds seen, share of segments per label, mean class
    probabilities, dominant emotion, and the share of the video without any face.

    Columns: ``video``, ``video_id``, the person column (``person_id`` or
    ``track_id``), ``first_s``, ``last_s``, ``seconds_seen``, ``segments``,
    ``dominant_emotion``, ``mean_confidence``, ``share_<class>``,
    ``mean_prob_<class>``, ``video_no_face_share``.
    """
    check_results(df)
    classes, person = class_names(df), person_column(df)
    records = []
    for video, rows in df.groupby("video", sort=False):
        times = _video_times(rows)
        ok = rows[rows["status"] == "ok"]
        for pid, mine in ok.groupby(person, sort=True):
            labels = mine["label"].value_counts()
            records.append(
                {
                    "video": video,
                    "video_id": mine["video_id"].iloc[0],
                    person: pid,
                    "first_s": float(mine["start_s"].min()),
                    "last_s": float(mine["end_s"].max()),
                    "seconds_seen": covered_seconds(row_spans(mine)),
                    "segments": len(mine),
                    "dominant_emotion": dominant_label(mine, classes),
                    "mean_confidence": float(mine["confidence"].astype(float).mean()),
                    **{f"share_{c}": labels.get(c, 0) / len(mine) for c in classes},
                    **{
                        f"mean_prob_{c}": float(mine[PROB_PREFIX + c].astype(float).mean())
                        for c in classes
                    },
                    "video_no_face_share": times["no_face_share"],
                }
            )
    columns = [
        "video",
        "video_id",
        person,
        "first_s",
        "last_s",
        "seconds_seen",
        "segments",
        "dominant_emotion",
        "mean_confidence",
        *(f"share_{c}" for c in classes),
        *(f"mean_prob_{c}" for c in classes),
        "video_no_face_share",
    ]
    out = pd.DataFrame.from_records(records, columns=columns)
    out[person] = out[person].astype(df[person].dtype)
    return out


def summarize_videos(df: pd.DataFrame) -> pd.DataFrame:
    """One row per video, failed ones included: status (``ok``, ``partial`` when some
    stretches failed, ``error``), the errors, people, and times: ``annotated_s`` is the time
    the video's segments cover (its segments, no-face and unreadable stretches together: the
    file's length when all of it was read; empty for a video that could not be read at all),
    ``no_face_s`` and ``error_s`` the parts of it without a face and unreadable."""
    check_results(df)
    classes, person = class_names(df), person_column(df)
    records = []
    for video, rows in df.groupby("video", sort=False):
        ok = rows[rows["status"] == "ok"]
        failed = rows[rows["status"] == "error"]
        messages = list(dict.fromkeys(failed["error"].dropna().astype(str)))
        status = "ok" if failed.empty else ("error" if len(failed) == len(rows) else "partial")
        audio = rows["has_audio"].dropna() if "has_audio" in rows else pd.Series(dtype=bool)
        records.append(
            {
                "video": video,
                "video_id": rows["video_id"].dropna().iloc[0]
                if rows["video_id"].notna().any()
                else None,
                "status": status,
                "error": "; ".join(messages) or None,
                "segments": int(rows.loc[rows["status"] != "error", "segment"].nunique()),
                "persons": int(ok[person].nunique()),
                **_video_times(rows),
                "has_audio": bool(audio.any()) if len(audio) else None,
                "dominant_emotion": dominant_label(ok, classes),
            }
        )
    return pd.DataFrame.from_records(records)
