"""Damaged copies of a video, made byte by byte (seeded), for the robustness tests."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np


def scramble(
    source: Path, out: Path, start: float = 1 / 3, end: float = 2 / 3, seed: int = 0
) -> Path:
    """``source`` with the bytes of a stretch of the file (by default its middle third) random."""
    data = bytearray(source.read_bytes())
    first, last = int(len(data) * start), int(len(data) * end)
    data[first:last] = (
        np.random.default_rng(seed).integers(0, 256, last - first, np.uint8).tobytes()
    )
    out.write_bytes(bytes(data))
    return out


def packet_bytes(source: Path, kind: str, start_s: float, end_s: float) -> list[tuple[int, int]]:
    """(offset, size) in the file of the ``kind`` ("audio", "video") packets in [start_s, end_s)."""
    spans = []
    with av.open(str(source)) as container:
        stream = getattr(container.streams, kind)[0]
        for packet in container.demux(stream):
            if packet.size and packet.pts is not None and packet.pos is not None:
                t = float(packet.pts * stream.time_base)
                if start_s <= t < end_s:
                    spans.append((int(packet.pos), int(packet.size)))
    return spans


def scramble_packets(
    source: Path, out: Path, kind: str, start_s: float, end_s: float, seed: int = 0
) -> Path:
    """``source`` with the payload of its ``kind`` packets in [start_s, end_s) random."""
    data = bytearray(source.read_bytes())
    rng = np.random.default_rng(seed)
    for offset, size in packet_bytes(source, kind, start_s, end_s):
        data[offset : offset + size] = rng.integers(0, 256, size, np.uint8).tobytes()
    out.write_bytes(bytes(data))
    return out


def small_video(source: Path, out: Path, seconds: float, width: int, height: int) -> Path:
    """The first ``seconds`` of ``source`` at ``width`` x ``height`` (H.264, a keyframe every
    second, no B-frames, so each frame depends only on its own second) with its sound copied,
    the index at the front (as cameras and ``-movflags faststart`` write it)."""
    with (
        av.open(str(source)) as src,
        av.open(str(out), "w", options={"movflags": "faststart"}) as dst,
    ):
        video_in, audio_in = src.streams.video[0], src.streams.audio[0]
        rate = video_in.average_rate
        video = dst.add_stream("libx264", rate=rate, options={"g": str(int(rate)), "bf": "0"})
        video.width, video.height, video.pix_fmt = width, height, "yuv420p"
        audio = dst.add_stream_from_template(audio_in)
        video.codec_context.time_base = 1 / rate
        for index, frame in enumerate(src.decode(video_in)):
            if frame.time >= seconds:
                break
            small = frame.reformat(width=width, height=height, format="yuv420p")
            small.pts, small.time_base = index, 1 / rate
            dst.mux(video.encode(small))
        dst.mux(video.encode(None))
        src.seek(0)
        for packet in src.demux(audio_in):
            if packet.pts is None or float(packet.pts * audio_in.time_base) >= seconds:
                continue
            packet.stream = audio
            dst.mux(packet)
    return out


Damage = tuple[str, list[tuple[int, int]]]
"""How a copy was damaged: its kind and the byte ranges [start, end) it changed or lost."""


def damage(data: bytes, kind: str, rng: np.random.Generator) -> tuple[bytes, Damage]:
    """A damaged copy of ``data``: ``flip`` (a few bytes inverted anywhere), ``truncate`` (cut
    at a random point), ``header`` (its first bytes zeroed) or ``zeros`` (a stretch zeroed)."""
    out, n = bytearray(data), len(data)
    if kind == "flip":
        spots = sorted(int(i) for i in rng.choice(n, size=int(rng.integers(1, 20)), replace=False))
        for i in spots:
            out[i] ^= int(rng.integers(1, 256))
        return bytes(out), (kind, [(i, i + 1) for i in spots])
    if kind == "truncate":
        cut = int(rng.integers(n // 20, n))
        return bytes(out[:cut]), (kind, [(cut, n)])
    if kind == "header":
        end = int(rng.integers(8, 2048))
        out[:end] = bytes(end)
        return bytes(out), (kind, [(0, end)])
    start = int(rng.integers(0, n))
    end = min(n, start + int(rng.integers(200, n // 4)))
    out[start:end] = bytes(end - start)
    return bytes(out), (kind, [(start, end)])


def segment_bytes(source: Path, start_s: float, end_s: float) -> list[tuple[int, int]]:
    """The bytes a segment of ``source`` (made by ``small_video``) cannot do without: the
    header, its video packets (each second decodes alone) and the audio packets around it."""
    with av.open(str(source)) as container:
        first = min(p.pos for p in container.demux() if p.size and p.pos is not None)
    spans = [(0, first)]
    for kind, lo, hi in (("video", start_s, end_s), ("audio", start_s - 0.1, end_s + 0.05)):
        spans += [(pos, pos + size) for pos, size in packet_bytes(source, kind, lo, hi)]
    return spans


def overlaps(a: list[tuple[int, int]], b: list[tuple[int, int]]) -> bool:
    return any(x0 < y1 and y0 < x1 for x0, x1 in a for y0, y1 in b)
