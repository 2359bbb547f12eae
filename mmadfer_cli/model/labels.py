"""Class names of the published MMA-DFER checkpoints, in the order of their classifier rows."""

from __future__ import annotations

DFEW_CLASSES: tuple[str, ...] = (
    "happiness",
    "sadness",
    "neutral",
    "anger",
    "surprise",
    "disgust",
    "fear",
)

# The official MAFW annotation files: the seven DFEW classes, then four compound ones.
MAFW_CLASSES: tuple[str, ...] = (
    *DFEW_CLASSES,
    "contempt",
    "anxiety",
    "helplessness",
    "disappointment",
)


def class_names_for(num_classes: int) -> tuple[str, ...]:
    """Class names for a classifier with ``num_classes`` rows (DFEW: 7, MAFW: 11).

    Other sizes come from checkpoints trained on other data; their rows get
    neutral names (``class_0``, ...) rather than a guess.
    """
    if num_classes == len(DFEW_CLASSES):
        return DFEW_CLASSES
    if num_classes == len(MAFW_CLASSES):
        return MAFW_CLASSES
    return tuple(f"class_{i}" for i in range(num_classes))
