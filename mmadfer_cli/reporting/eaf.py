"""ELAN annotation files (.eaf), written with pympi-ling: one tier per person, linked to the video.

Each person's tier holds one annotation per segment with the label (from a
controlled vocabulary of the model's classes, so a coder can correct labels
from a list in ELAN). Two dependent tiers follow it: ``person N confidence``
(the label's probability, ``0.82``) and ``person N probabilities`` (every
class with its probability, most likely first: ``happiness 0.70, sadness 0.20,
neutral 0.10``), so a coder sees the runner-up of a close call and can search
for it with ELAN's regular expressions without going back to the table. A ``no face``
tier marks segments where nobody was seen and an ``error`` tier the stretches
that could not be read, so gaps in the person tiers are explained. Times are
milliseconds; overlapping segments (``--stride`` below ``--window``) are cut
at the next segment's start, because ELAN tiers cannot overlap themselves.
"""

from __future__ import annotations

import codecs
import mimetypes
import ntpath
import os
import posixpath
from pathlib import Path, PurePath, PureWindowsPath
from urllib.parse import quote

import pandas as pd
from pympi.Elan import Eaf

from mmadfer_cli import __version__
from mmadfer_cli.table.read import (
    PROB_PREFIX,
    class_names,
    person_column,
    person_label,
    segment_spans,
)

EMOTION_TYPE, CONFIDENCE_TYPE, NOTE_TYPE = "mmadfer-emotion", "mmadfer-confidence", "mmadfer-note"
PROBABILITIES_TYPE = "mmadfer-probabilities"
VOCABULARY = "mmadfer-emotions"
NO_FACE_TIER, ERROR_TIER = "no face", "error"
_LANGUAGE = ("eng", "http://cdb.iso.org/lg/CDB-00130975-001", "English (eng)")


def confidence_tier(person_tier: str) -> str:
    """The dependent tier holding the confidence of ``person_tier``'s labels."""
    return f"{person_tier} confidence"


def probabilities_tier(person_tier: str) -> str:
    """The dependent tier holding every class's probability of ``person_tier``'s segments."""
    return f"{person_tier} probabilities"


def probabilities_text(row: pd.Series, classes: list[str]) -> str:
    """``happiness 0.70, sadness 0.20, neutral 0.10``: the classes, most likely first."""
    probs = sorted(((float(row[PROB_PREFIX + c]), c) for c in classes), key=lambda pc: -pc[0])
    return ", ".join(f"{c} {p:.2f}" for p, c in probs)


def _ms(seconds: float) -> int:
    return round(seconds * 1000)


def media_file(video: str, media_root: Path | None = None) -> Path:
    """The file a ``video`` value names. A name that is not valid UTF-8 is written in the table
    with ``\\xNN`` escapes (``discover.path_text``); those are undone when the plain reading
    names no file."""
    path = (media_root / video) if media_root is not None else Path(video)
    if "\\" in video and not path.exists():
        try:
            raw = os.fsdecode(codecs.escape_decode(video.encode("utf-8"))[0])
        except ValueError:  # a backslash that is not an escape: the name as written
            return path
        escaped = (media_root / raw) if media_root is not None else Path(raw)
        if escaped.exists():
            return escaped
    return path


def media_urls(media: PurePath, eaf_dir: PurePath) -> tuple[str, str | None]:
    """The file URL of ``media`` and its URL relative to ``eaf_dir`` (both absolute paths), as
    ELAN writes them. On Windows a file on another drive (or share) has no relative path: then
    only the absolute URL, which ELAN uses first anyway."""
    flavour = ntpath if isinstance(media, PureWindowsPath) else posixpath
    try:
        relative = type(media)(flavour.relpath(media, eaf_dir)).as_posix()
    except ValueError:  # "path is on mount 'D:', start on mount 'C:'"
        return media.as_uri(), None
    try:
        relative.encode("utf-8")
    except UnicodeEncodeError:  # bytes that XML cannot hold: percent-encoded, as in a URL
        relative = quote(os.fsencode(relative), safe="/.-_~")
    return media.as_uri(), relative if relative.startswith(".") else f"./{relative}"


def _media(eaf: Eaf, video: str, eaf_dir: Path, media_root: Path | None) -> None:
    """Link the video: an absolute file URL and, where there is one, one relative to the .eaf."""
    path = Path(os.path.abspath(media_file(video, media_root)))
    absolute, relative = media_urls(path, Path(os.path.abspath(eaf_dir)))
    mime = mimetypes.guess_type(path.name)[0] or "video/*"
    eaf.add_linked_file(absolute, relpath=relative, mimetype=mime)


def _vocabulary(eaf: Eaf, classes: list[str]) -> None:
    eaf.add_language(*_LANGUAGE)
    eaf.add_controlled_vocabulary(VOCABULARY)
    eaf.add_cv_description(VOCABULARY, _LANGUAGE[0], "emotion classes of the mmadfer model")
    for name in classes:
        eaf.add_cv_entry(VOCABULARY, f"cve_{name}", [(name, _LANGUAGE[0], None)])
    eaf.add_linguistic_type(
        EMOTION_TYPE,
        param_dict={
            "LINGUISTIC_TYPE_ID": EMOTION_TYPE,
            "TIME_ALIGNABLE": "true",
            "GRAPHIC_REFERENCES": "false",
            "CONTROLLED_VOCABULARY_REF": VOCABULARY,
        },
    )
    eaf.add_linguistic_type(CONFIDENCE_TYPE, "Symbolic_Association", timealignable=False)
    eaf.add_linguistic_type(PROBABILITIES_TYPE, "Symbolic_Association", timealignable=False)
    eaf.add_linguistic_type(NOTE_TYPE)


def _add_spans(eaf: Eaf, tier: str, rows: pd.DataFrame, text: pd.Series) -> list[int]:
    """One annotation per row with a span; the start times (ms) of those written."""
    rows = rows.dropna(subset=["start_s", "end_s"]).sort_values("start_s")
    starts, ends = segment_spans(rows)
    written = []
    for start, end, value in zip(starts, ends, text.loc[rows.index], strict=True):
        if _ms(end) > _ms(start):
            eaf.add_annotation(tier, _ms(start), _ms(end), str(value))
            written.append(_ms(start))
    return written


def video_eaf(df: pd.DataFrame, video: str, eaf_dir: Path, media_root: Path | None = None) -> Eaf:
    """The ELAN document of one video of a result table."""
    rows = df[df["video"] == video]
    classes, person = class_names(df), person_column(df)
    eaf = Eaf(author=f"mmadfer {__version__}")
    eaf.remove_tier("default")
    _vocabulary(eaf, classes)
    _media(eaf, video, eaf_dir, media_root)
    if rows["video_id"].notna().any():
        eaf.add_property("mmadfer_video_id", str(rows["video_id"].dropna().iloc[0]))

    ok = rows[rows["status"] == "ok"]
    for pid in sorted(ok[person].dropna().unique().tolist()):
        tier = person_label(pid)
        mine = ok[ok[person] == pid].sort_values("start_s")
        eaf.add_tier(tier, ling=EMOTION_TYPE, part=tier)
        eaf.add_tier(confidence_tier(tier), ling=CONFIDENCE_TYPE, parent=tier, part=tier)
        eaf.add_tier(probabilities_tier(tier), ling=PROBABILITIES_TYPE, parent=tier, part=tier)
        starts = _add_spans(eaf, tier, mine, mine["label"])
        by_start = mine.set_index(mine["start_s"].map(_ms))
        for start in starts:
            row = by_start.loc[start]
            # A point inside the parent annotation (pympi matches the first one covering it).
            eaf.add_ref_annotation(
                confidence_tier(tier), tier, start + 1, f"{float(row['confidence']):.2f}"
            )
            eaf.add_ref_annotation(
                probabilities_tier(tier), tier, start + 1, probabilities_text(row, classes)
            )
    no_face = rows[(rows["status"] == "no_face") & rows["start_s"].notna()]
    if not no_face.empty:
        eaf.add_tier(NO_FACE_TIER, ling=NOTE_TYPE)
        _add_spans(eaf, NO_FACE_TIER, no_face, pd.Series(NO_FACE_TIER, index=no_face.index))
    failed = rows[(rows["status"] == "error") & rows["start_s"].notna()]
    if not failed.empty:
        eaf.add_tier(ERROR_TIER, ling=NOTE_TYPE)
        _add_spans(eaf, ERROR_TIER, failed, failed["error"].fillna("could not be read"))
    # ELAN numbers its new annotations after this one (pympi leaves it at 0).
    eaf.properties = [p for p in eaf.properties if p[0] != "lastUsedAnnotation"]
    eaf.add_property("lastUsedAnnotation", eaf.maxaid)
    return eaf
