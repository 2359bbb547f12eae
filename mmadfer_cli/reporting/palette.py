"""The colours and patterns of the classes, shared by the timelines, the pages and the overlay.

DFEW's seven classes take the Okabe-Ito palette (Okabe and Ito, *Color Universal Design*,
2008), made to stay apart under the common colour-vision deficiencies, with a mid grey for
neutral: dark enough not to read as the white of "not on screen". MAFW's contempt takes the
palette's eighth colour (yellow); its other three further classes and class names of other
models take colours of Paul Tol's "muted" scheme; eleven solid colours
cannot all stay apart for every reader, so the legend and the tables carry the names and numbers
too. "No face" and "could not be read" are hatched patterns, never a solid fill, so neither can
pass for a class.
"""

from __future__ import annotations

EMOTION_COLORS = {
    "happiness": "#E69F00",  # Okabe-Ito orange
    "sadness": "#0072B2",  # blue
    "neutral": "#7A7A7A",  # grey: no hue, far from white
    "anger": "#D55E00",  # vermillion
    "surprise": "#56B4E9",  # sky blue
    "disgust": "#009E73",  # bluish green
    "fear": "#CC79A7",  # reddish purple
    "contempt": "#F0E442",  # Okabe-Ito yellow
    "anxiety": "#882255",  # Tol muted wine
    "helplessness": "#999933",  # olive
    "disappointment": "#332288",  # indigo
}
_SPARE = ("#44AA99", "#DDCC77", "#AA4499", "#117733", "#88CCEE", "#CC6677")

NOT_ON_SCREEN_COLOR = "#FFFFFF"
NO_FACE_COLOR, NO_FACE_HATCH = "#8C8C8C", "////"  # grey diagonal lines on white
ERROR_COLOR, ERROR_HATCH = "#000000", "xxx"  # black cross-hatch on white


def class_colors(classes: list[str]) -> dict[str, str]:
    """A colour per class: the fixed emotion colours, spare ones for other class names."""
    spare = iter(_SPARE * (1 + len(classes) // len(_SPARE)))
    return {c: EMOTION_COLORS.get(c) or next(spare) for c in classes}
