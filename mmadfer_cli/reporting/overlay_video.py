"""An annotated copy of a video for spot checks: every person's box, id, label and confidence.

The result table has one box per person and segment (the mean of the
detections); on each frame a person's box is interpolated between the middles
of consecutive segments they were seen in, and held at the edges of a run, so
the box glides with the face instead of jumping every few seconds. The label
is the one of the segment the frame falls in. Frames are decoded and encoded
with PyAV (H.264, the input's frame times), the audio is copied unchanged
when MP4 can hold it and re-encoded as AAC otherwise.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np
import pandas as pd
from PIL import Image, ImageColor, ImageDraw, ImageFont

from mmadfer_cli.media.video import MediaError, _rotate, video_id
from mmadfer_cli.reporting.palette import class_colors
from mmadfer_cli.table.files import replace
from mmadfer_cli.table.read import (
    BOX_COLUMNS,
    check_results,
    class_names,
    person_column,
    person_label,
)

_COPY_AUDIO = frozenset({"aac", "mp3", "alac", "ac3", "eac3", "opus", "flac"})
_AAC_LAYOUTS = {1: "mono", 2: "stereo", 3: "3.0", 4: "4.0", 5: "5.0", 6: "5.1", 8: "7.1"}


class OverlayError(Exception):
    """The video and the results do not belong together, or the video cannot be read (exit 2)."""


@dataclass(frozen=True)
class _Run:
    """Consecutive segments of one person: interpolation stays within a run."""

    starts: np.ndarray  # segment starts (s)
    ends: np.ndarray
    middles: np.ndarray
    boxes: np.ndarray  # (n, 4) x, y, w, h
    labels: list[str]
    confidences: np.ndarray


@dataclass(frozen=True)
class PersonBox:
    """What to draw for one person on one frame."""

    person: str
    box: tuple[float, float, float, float]  # x, y, w, h
    label: str
    confidence: float


def _runs(rows: pd.DataFrame, gap_s: float = 1e-3) -> list[_Run]:
    rows = rows.sort_values("start_s")
    starts, ends = rows["start_s"].to_numpy(float), rows["end_s"].to_numpy(float)
    breaks = np.flatnonzero(starts[1:] > ends[:-1] + gap_s) + 1
    runs = []
    for idx in np.split(np.arange(len(rows)), breaks):
        part = rows.iloc[idx]
        runs.append(
            _Run(
                starts=starts[idx],
                ends=ends[idx],
                middles=(starts[idx] + ends[idx]) / 2,
                boxes=part[list(BOX_COLUMNS)].to_numpy(float),
                labels=part["label"].astype(str).tolist(),
                confidences=part["confidence"].to_numpy(float),
            )
        )
    return runs


class FrameBoxes:
    """Each person's box, label and confidence at any time of one video."""

    def __init__(self, rows: pd.DataFrame) -> None:
        person = person_column(rows)
        ok = rows[(rows["status"] == "ok")].dropna(subset=["start_s", "end_s", *BOX_COLUMNS])
        self.people = {
            person_label(pid): _runs(ok[ok[person] == pid])
            for pid in sorted(ok[person].dropna().unique().tolist())
        }
        quiet = rows[rows["status"] != "ok"].dropna(subset=["start_s", "end_s"])
        self._quiet = list(zip(quiet["start_s"], quiet["end_s"], quiet["status"], strict=True))

    def at(self, t: float) -> list[PersonBox]:
        """The people on screen at ``t`` seconds from the video's first frame."""
        found = []
        for name, runs in self.people.items():
            for run in runs:
                if not run.starts[0] <= t < run.ends[-1]:
                    continue
                i = int(np.searchsorted(run.starts, t, side="right")) - 1
                box = [float(np.interp(t, run.middles, run.boxes[:, k])) for k in range(4)]
                found.append(PersonBox(name, tuple(box), run.labels[i], run.confidences[i]))  # type: ignore[arg-type]
                break
        return found

    def status_at(self, t: float) -> str | None:
        """``no_face`` or ``error`` when ``t`` falls in such a segment."""
        return next((s for a, b, s in self._quiet if a <= t < b), None)


def _font(size: int) -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1 has one bitmap size
        return ImageFont.load_default()


class Painter:
    """Draws boxes and captions on RGB frames, sized for the frame."""

    def __init__(self, width: int, height: int, colors: dict[str, str]) -> None:
        self.colors, self.width, self.height = colors, width, height
        self.line = max(3, round(min(width, height) / 200))
        self.font = _font(max(12, round(height / 32)))

    def _caption(
        self, draw: ImageDraw.ImageDraw, xy: tuple[float, float], text: str, fill: str
    ) -> None:
        left, top, right, bottom = draw.textbbox(xy, text, font=self.font)
        pad = self.line
        draw.rectangle((left - pad, top - pad, right + pad, bottom + pad), fill=fill)
        r, g, b = ImageColor.getrgb(fill)[:3]
        dark = 0.299 * r + 0.587 * g + 0.114 * b < 140
        draw.text(xy, text, font=self.font, fill="white" if dark else "black")

    def draw(self, frame: np.ndarray, people: list[PersonBox], status: str | None) -> np.ndarray:
        image = Image.fromarray(frame)
        draw = ImageDraw.Draw(image)
        for p in people:
            x, y, w, h = p.box
            color = self.colors.get(p.label, "#ffffff")
            draw.rectangle((x, y, x + w, y + h), outline=color, width=self.line)
            text = f"{p.person}  {p.label} {p.confidence:.2f}"
            top = y - self.font.getbbox(text)[3] - 3 * self.line
            if top < 0:  # no room above the box: the caption goes inside it
                top = y + 2 * self.line
            # keep the caption inside the frame (a face at the right edge)
            left = min(x + 2 * self.line, self.width - self.font.getlength(text) - 2 * self.line)
            self._caption(draw, (max(left, 2 * self.line), top), text, color)
        if status is not None:
            text = "no face" if status == "no_face" else "could not be read"
            self._caption(draw, (2 * self.line, 2 * self.line), text, "#dddddd")
        return np.asarray(image)


def _even(n: int) -> int:
    return n - n % 2


def video_rows(
    df: pd.DataFrame, video: str | os.PathLike[str], where: str = "the results"
) -> pd.DataFrame:
    """The rows of ``df`` that belong to this video file, found by content id (not by name)."""
    check_results(df, where, needs=BOX_COLUMNS)
    try:
        vid = video_id(video)
    except OSError as exc:
        raise OverlayError(f"{video}: cannot be read ({exc.strerror or exc})") from exc
    rows = df[df["video_id"] == vid]
    if rows.empty:
        known = df.drop_duplicates("video_id")[["video", "video_id"]].head(5)
        listed = ", ".join(f"{v} ({i})" for v, i in known.itertuples(index=False))
        raise OverlayError(
            f"{video} (content id {vid}) is not in {where}, which holds: {listed}. "
            "Give the file that was annotated (a re-encoded or edited copy has another id)."
        )
    if not (rows["status"] != "error").any():
        reason = "; ".join(dict.fromkeys(rows["error"].dropna().astype(str)))
        raise OverlayError(f"no segments of {video} in {where}: it failed ({reason})")
    return rows


def _first_frame(path: Path) -> tuple[int, int, int]:
    """Width, height (after rotation) and rotation of the first frame: the output's size must be
    known before any packet is written."""
    with av.open(str(path)) as container:
        for frame in container.decode(video=0):
            rotation = int(getattr(frame, "rotation", 0) or 0)
            height, width = _rotate(
                np.zeros((frame.height, frame.width, 1), np.uint8), rotation
            ).shape[:2]
            return width, height, rotation
    raise OverlayError(f"{path}: the video stream has no frames")


def write_overlay(
    video: str | os.PathLike[str],
    df: pd.DataFrame,
    out: str | os.PathLike[str],
    *,
    crf: int = 20,
    on_frame: Callable[[int, int], None] | None = None,
) -> Path:
    """Encode ``out`` (MP4, H.264): ``video``'s frames with the boxes of its rows in ``df`` (a
    result table; the video's rows are found by content id) drawn, its audio kept.
    ``on_frame(done, total)`` reports progress (``total`` is 0 when unknown)."""
    rows = video_rows(df, video)
    video, out = Path(video), Path(out)
    tmp = out.with_name(f".{out.stem}.tmp-{os.getpid()}.mp4")
    try:
        width, height, rotation = _first_frame(video)
        painter = Painter(width, height, class_colors(class_names(rows)))
        with av.open(str(video)) as src, av.open(str(tmp), "w", format="mp4") as dst:
            _transcode(src, dst, FrameBoxes(rows), painter, rotation, crf, on_frame)
        replace(tmp, out)
    except (av.FFmpegError, MediaError) as exc:
        raise OverlayError(f"{video}: cannot be read or encoded ({exc})") from exc
    finally:
        tmp.unlink(missing_ok=True)
    return out


def _transcode(
    src: av.container.InputContainer,
    dst: av.container.OutputContainer,
    boxes: FrameBoxes,
    painter: Painter,
    rotation: int,
    crf: int,
    on_frame: Callable[[int, int], None] | None,
) -> None:
    vin = src.streams.video[0]
    vin.thread_type = "AUTO"
    rate = vin.average_rate or vin.guessed_rate or 25
    vout = dst.add_stream("libx264", rate=rate)
    vout.width, vout.height = _even(painter.width), _even(painter.height)
    vout.pix_fmt = "yuv420p"
    vout.time_base = vin.time_base
    vout.options = {"crf": str(crf), "preset": "veryfast"}
    ain = src.streams.audio[0] if src.streams.audio else None
    aout, reencode = None, False
    if ain is not None:
        reencode = ain.codec_context.name not in _COPY_AUDIO
        if reencode:
            # AAC refuses unnamed layouts ("2 channels"): the standard one for the channel count,
            # else stereo (the encoder mixes down).
            layout = _AAC_LAYOUTS.get(ain.channels, "stereo")
            aout = dst.add_stream("aac", rate=ain.rate, layout=layout, format="fltp")
        else:
            aout = dst.add_stream_from_template(ain)
    total = int(vin.frames or 0) or round((src.duration or 0) / av.time_base * float(rate))
    done, origin = 0, None
    for packet in src.demux([s for s in (vin, ain) if s is not None]):
        if packet.stream is ain:
            if reencode:
                for frame in packet.decode():
                    frame.pts = None  # the encoder numbers its own samples
                    for out_packet in aout.encode(frame):  # type: ignore[union-attr]
                        dst.mux(out_packet)
            elif packet.dts is not None:  # not the demuxer's empty flush packet
                packet.stream = aout
                dst.mux(packet)
            continue
        for frame in packet.decode():
            t = float(frame.time) if frame.time is not None else done / float(rate)  # seconds
            origin = t if origin is None else origin
            pixels = _rotate(frame.to_ndarray(format="rgb24"), rotation)
            drawn = painter.draw(pixels, boxes.at(t - origin), boxes.status_at(t - origin))
            drawn = np.ascontiguousarray(drawn[: vout.height, : vout.width])
            new = av.VideoFrame.from_ndarray(drawn, format="rgb24")
            new.time_base = vin.time_base
            new.pts = frame.pts if frame.pts is not None else round(t / float(vin.time_base))
            for out_packet in vout.encode(new):
                dst.mux(out_packet)
            done += 1
            if on_frame is not None:
                on_frame(done, total)
    for out_packet in vout.encode():
        dst.mux(out_packet)
    if reencode:
        for out_packet in aout.encode():  # type: ignore[union-attr]
            dst.mux(out_packet)
