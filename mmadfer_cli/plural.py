"""Counted nouns in messages: "1 video", "2 videos", never "1 videos" nor "video(s)".

Every message that states a count takes its words from here, so that a one-item run reads as
English; irregular plurals ("person", "people"; "batch", "batches") are given where used.
"""

from __future__ import annotations


def agree(count: float, singular: str, plural: str | None = None) -> str:
    """``singular`` for exactly one, else ``plural`` (default: ``singular`` + "s"): the word, or
    the verb ("is", "are"), that goes with ``count``."""
    if count == 1:
        return singular
    return plural if plural is not None else singular + "s"


def counted(count: float, singular: str, plural: str | None = None) -> str:
    """``count`` and the noun that agrees with it: ``counted(1, "video")`` is "1 video",
    ``counted(3, "person", "people")`` is "3 people"; a float count is shown as ``:g``."""
    shown = f"{count:g}" if isinstance(count, float) else str(count)
    return f"{shown} {agree(count, singular, plural)}"
