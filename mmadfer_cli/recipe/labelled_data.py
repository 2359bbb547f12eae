"""Labelled clips for training and evaluation, in two formats.

1. The official annotation list (DFEW/MAFW files of the MMA-DFER repository):
   one clip per line, ``FRAME_FOLDER NUM_FRAMES LABEL``, the folder holding
   the clip's face frames as image files (sorted by name), LABEL a 0-based
   class index (a class name is accepted too). The WAV is found by the
   official conventions (DFEW: ``.../clip_224x224/00025`` ->
   ``.../raw_wav/25.wav``; MAFW: ``.../clips_faces/00025`` ->
   ``.../clips_wav/00025.wav``) or by ``audio_template``; a clip without a WAV
   gets the all-zero filterbank, as the official MAFW loader does.
2. A CSV with a header ``video,label`` or ``video,start_s,end_s,label``: the
   videos go through the tool's own media and face stages.

Any bad line is reported with its line number; all bad lines are listed at once.
"""

from __future__ import annotations

import csv
import wave
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from mmadfer_cli.plural import counted

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp")
MAX_REPORTED_ERRORS = 20


class DataError(ValueError):
    """A labelled-data file that cannot be used; the message names file and lines."""


@dataclass(frozen=True)
class FrameFolderClip:
    """One line of an official annotation list."""

    line: int
    folder: Path
    num_frames: int
    label: int
    wav: Path | None  # None: no audio, the zero filterbank is used


@dataclass(frozen=True)
class VideoSpanClip:
    """One row of a video CSV; no span means the whole video."""

    line: int
    video: Path
    start_s: float | None
    end_s: float | None
    label: int


LabelledClip = FrameFolderClip | VideoSpanClip


def parse_label(text: str, class_names: Sequence[str]) -> int:
    """A class index from a 0-based index or a class name (case-insensitive)."""
    value = text.strip()
    if value.lstrip("-").isdigit():
        index = int(value)
        if 0 <= index < len(class_names):
            return index
        raise ValueError(f"label {index} is outside 0..{len(class_names) - 1}")
    lowered = [name.lower() for name in class_names]
    if value.lower() in lowered:
        return lowered.index(value.lower())
    raise ValueError(f"unknown label {value!r} (classes: {', '.join(class_names)})")


def official_wav_path(folder: str) -> Path | None:
    """The WAV the official loader reads for a frame folder, or None if no convention applies."""
    path = Path(folder)
    name, parent = path.name, str(path.parent)
    if "clip_224x224" in str(path):
        stem = str(int(name)) if name.isdigit() else name
        return Path(parent.replace("clip_224x224", "raw_wav")) / f"{stem}.wav"
    if "mfaw" in str(path) or "clips_faces" in str(path):
        return Path(parent.replace("clips_faces", "clips_wav")) / f"{name}.wav"
    return None


def template_wav_path(template: str, written: str, folder: Path) -> Path:
    """Fill an audio path template; fields: {path}, {folder}, {parent}, {name}, {id}."""
    name = folder.name
    return Path(
        template.format(
            path=written,
            folder=str(folder),
            parent=str(folder.parent),
            name=name,
            id=str(int(name)) if name.isdigit() else name,
        )
    )


def _raise_collected(path: Path, errors: list[str]) -> None:
    if errors:
        shown = errors[:MAX_REPORTED_ERRORS]
        more = len(errors) - len(shown)
        tail = f"\n  ... and {more} more" if more else ""
        raise DataError(
            f"{path}: {counted(len(errors), 'bad line')}:\n  " + "\n  ".join(shown) + tail
        )


def read_annotation_list(
    path: Path,
    class_names: Sequence[str],
    audio_template: str | None = None,
    root: Path | None = None,
) -> list[FrameFolderClip]:
    """Clips of an official annotation list; relative folders are taken from ``root``
    (default: the list's own directory)."""
    path = Path(path)
    base = Path(root) if root is not None else path.parent
    clips: list[FrameFolderClip] = []
    errors: list[str] = []
    for number, raw in enumerate(path.read_text().splitlines(), start=1):
        if not raw.strip():
            continue
        parts = raw.strip().rsplit(maxsplit=2)
        try:
            if len(parts) != 3:
                raise ValueError("expected 'FRAME_FOLDER NUM_FRAMES LABEL'")
            written, frames_text, label_text = parts
            if not frames_text.isdigit() or int(frames_text) < 1:
                raise ValueError(f"frame count {frames_text!r} is not a positive integer")
            label = parse_label(label_text, class_names)
            folder = base / written
            if not folder.is_dir():
                raise ValueError(f"frame folder {folder} does not exist")
            wav = (
                template_wav_path(audio_template, written, folder)
                if audio_template
                else official_wav_path(str(folder))
            )
            if wav is not None and not wav.is_file():
                wav = None
            clips.append(FrameFolderClip(number, folder, int(frames_text), label, wav))
        except (ValueError, KeyError, IndexError) as error:
            errors.append(f"line {number}: {error}")
    _raise_collected(path, errors)
    if not clips:
        raise DataError(f"{path}: no clips")
    return clips


def _parse_seconds(text: str, field: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f"{field} {text!r} is not a number of seconds") from None
    if not np.isfinite(value) or value < 0:
        raise ValueError(f"{field} {text!r} must be a non-negative number of seconds")
    return value


def read_video_csv(
    path: Path, class_names: Sequence[str], root: Path | None = None
) -> list[VideoSpanClip]:
    """Rows of a ``video,label`` or ``video,start_s,end_s,label`` CSV (header required);
    relative video paths are taken from ``root`` (default: the CSV's directory)."""
    path = Path(path)
    base = Path(root) if root is not None else path.parent
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    if not rows:
        raise DataError(f"{path}: empty file")
    header = [h.strip().lower() for h in rows[0]]
    if header not in (["video", "label"], ["video", "start_s", "end_s", "label"]):
        raise DataError(
            f"{path}: line 1: header must be 'video,label' or 'video,start_s,end_s,label', got {rows[0]}"
        )
    spans = len(header) == 4
    clips: list[VideoSpanClip] = []
    errors: list[str] = []
    for number, row in enumerate(rows[1:], start=2):
        if not any(cell.strip() for cell in row):
            continue
        try:
            if len(row) != len(header):
                raise ValueError(f"expected {len(header)} fields, got {len(row)}")
            video = base / row[0].strip()
            label = parse_label(row[-1], class_names)
            start = end = None
            if spans:
                start = _parse_seconds(row[1], "start_s")
                end = _parse_seconds(row[2], "end_s")
                if end <= start:
                    raise ValueError(f"end_s {end} is not after start_s {start}")
            if not video.is_file():
                raise ValueError(f"video {video} does not exist")
            clips.append(VideoSpanClip(number, video, start, end, label))
        except ValueError as error:
            errors.append(f"line {number}: {error}")
    _raise_collected(path, errors)
    if not clips:
        raise DataError(f"{path}: no clips")
    return clips


def read_labelled(
    path: Path,
    class_names: Sequence[str],
    audio_template: str | None = None,
    root: Path | None = None,
) -> list[LabelledClip]:
    """Clips of a labelled-data file: ``.csv`` is the video CSV, anything else an official list."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no such file")
    if path.suffix.lower() == ".csv":
        return list(read_video_csv(path, class_names, root))
    return list(read_annotation_list(path, class_names, audio_template, root))


def read_wav(path: Path) -> tuple[torch.Tensor, int]:
    """A PCM WAV as float (channels, samples) in [-1, 1] and its sample rate."""
    with wave.open(str(path), "rb") as f:
        width, channels, rate = f.getsampwidth(), f.getnchannels(), f.getframerate()
        raw = f.readframes(f.getnframes())
    if width == 1:
        data = (np.frombuffer(raw, dtype=np.uint8).astype(np.float32) - 128.0) / 128.0
    elif width == 2:
        data = np.frombuffer(raw, dtype="<i2").astype(np.float32) / 32768.0
    elif width == 3:
        b = np.frombuffer(raw, dtype=np.uint8).reshape(-1, 3).astype(np.int32)
        ints = b[:, 0] | (b[:, 1] << 8) | (b[:, 2] << 16)
        data = np.where(ints >= 1 << 23, ints - (1 << 24), ints).astype(np.float32) / float(1 << 23)
    elif width == 4:
        data = np.frombuffer(raw, dtype="<i4").astype(np.float32) / float(1 << 31)
    else:
        raise DataError(f"{path}: unsupported WAV sample width {width}")
    return torch.from_numpy(data.reshape(-1, channels).T.copy()), rate


def frame_files(folder: Path) -> list[Path]:
    """The image files of a frame folder, sorted by name as the official loader does."""
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
