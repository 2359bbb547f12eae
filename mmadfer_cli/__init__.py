"""mmadfer: per-person audio-visual emotion timelines for video collections, with MMA-DFER."""

__version__ = "0.1.0.dev0"
