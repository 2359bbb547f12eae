"""The sound of a video: spans of one audio track at the file's own rate and layout.

Read with PyAV and never resampled or mixed down, because the model was trained
on audio at the file's own rate; ``media.Video.audio`` is the way in.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import av
import numpy as np


class AudioTrack:
    """Sequential reader of one audio stream; keeps only the samples still needed.

    Packets that cannot be decoded are skipped: their time becomes silence on
    the timeline and is remembered (``damage``), so that ``Video.audio`` refuses a
    read that overlaps it while the rest of the track reads normally. The
    decoder is our own, made afresh after damage: garbage can change its
    channel layout for good (AAC read 27 channels from a scrambled packet on).
    """

    def __init__(self, path: Path, origin_s: float) -> None:
        self._path = path
        self._origin_s = origin_s
        self._container = av.open(str(path))
        self._stream = self._container.streams.audio[0]
        codec = self._stream.codec_context
        self.sample_rate = int(codec.sample_rate)
        self.channels = int(codec.channels)
        self._codec = (codec.name, codec.extradata, codec.layout)
        self._packets: Iterator[av.Packet] | None = None
        self._chunks: list[np.ndarray] = []
        self._buffered = 0  # samples held in _chunks
        self._buffer_start: int | None = None  # timeline sample index of the first held sample
        self._exhausted = False
        self._skipped = False  # a packet was skipped since the last decoded frame
        self.damaged: list[tuple[float, float]] = []  # timeline seconds that could not be decoded

    def _restart(self) -> None:
        """Decode from the top of the track with a fresh decoder.

        Never by seeking: FFmpeg's AAC decoder fills noise-substituted bands
        from a generator seeded at the start of decoding, so only decoding from
        the top gives the samples the official loader (which reads the whole
        file) sees. Audio decodes at hundreds of times real time.
        """
        if self._packets is not None:
            self._container.close()
            self._container = av.open(str(self._path))
            self._stream = self._container.streams.audio[0]
        self._resampler = av.AudioResampler(
            format="fltp", layout=self._codec[2], rate=self.sample_rate
        )
        self._new_decoder()
        self._packets = self._container.demux(self._stream)
        self._chunks, self._buffered = [], 0
        self._buffer_start = None
        self._exhausted = False
        self._skipped = False

    def _new_decoder(self) -> None:
        name, extradata, layout = self._codec
        self._decoder = av.CodecContext.create(name, "r")
        self._decoder.extradata = extradata
        self._decoder.sample_rate = self.sample_rate
        self._decoder.layout = layout

    def _seconds(self, pts: int | None) -> float | None:
        return None if pts is None else float(pts * self._stream.time_base) - self._origin_s

    def _decode_next(self, skip_to: int) -> None:
        """Decode one packet; its frames that end before sample ``skip_to`` are only counted."""
        assert self._packets is not None
        try:
            packet = next(self._packets)
        except StopIteration:
            self._exhausted = True
            return
        except av.FFmpegError:  # the container cannot be read further
            self._exhausted = True
            rest = (self._buffer_end_s(), float("inf"))
            if rest not in self.damaged:
                self.damaged.append(rest)
            return
        try:
            frames = self._decoder.decode(packet if packet.size else None)
        except av.FFmpegError:
            frames = None
        if frames is None or any(
            f.layout.nb_channels != self.channels or f.sample_rate != self.sample_rate
            for f in frames
        ):
            self._damage(packet)
            return
        for frame in frames:
            self._add(frame, skip_to)

    def _damage(self, packet: av.Packet) -> None:
        """Remember a packet's time as undecodable and start a fresh decoder after it."""
        start = self._seconds(packet.pts)
        if start is None:
            start = self._buffer_end_s()
        length = (
            float(packet.duration * self._stream.time_base)
            if packet.duration
            else 1024 / self.sample_rate  # one AAC frame
        )
        if (start, start + length) not in self.damaged:  # decoding again after a restart
            self.damaged.append((start, start + length))
        self._skipped = True
        self._new_decoder()

    def _buffer_end_s(self) -> float:
        if self._buffer_start is None:
            return 0.0
        return (self._buffer_start + self._buffered) / self.sample_rate

    def _add(self, frame: av.AudioFrame, skip_to: int) -> None:
        """Hold a decoded frame's samples, or only count them when the frame ends before
        ``skip_to`` with nothing held: a chunk deep in a long video decodes everything before it
        (see ``_restart``), and converting those frames cost as much as decoding them."""
        if self._buffer_start is None:
            self._buffer_start = round((self._seconds(frame.pts) or 0.0) * self.sample_rate)
        elif self._skipped and (seconds := self._seconds(frame.pts)) is not None:
            # Skipped packets leave a hole: place this frame at its own time, silence between.
            gap = round(seconds * self.sample_rate) - (self._buffer_start + self._buffered)
            if gap > 0:
                self._chunks.append(np.zeros((self.channels, gap), np.float32))
                self._buffered += gap
        self._skipped = False
        if not self._buffered and self._buffer_start + frame.samples <= skip_to:
            self._buffer_start += frame.samples  # the same rate out: as many samples as in
            return
        for out in self._resampler.resample(frame):
            samples = out.to_ndarray().astype(np.float32, copy=False)
            self._chunks.append(samples)
            self._buffered += samples.shape[1]

    def read(self, start_s: float, end_s: float) -> np.ndarray:
        """Samples of [start_s, end_s) on the video's timeline, (channels, samples) float32."""
        start = max(round(start_s * self.sample_rate), 0)
        end = max(round(end_s * self.sample_rate), start)
        if self._packets is None or (self._buffer_start is not None and start < self._buffer_start):
            self._restart()
        while not self._exhausted and (
            self._buffer_start is None or self._buffer_start + self._buffered < end
        ):
            self._decode_next(start)
            if self._buffer_start is not None and self._buffer_start + self._buffered <= start:
                # Decoded only to reach ``start`` (a chunk deep in a long video): not kept.
                self._buffer_start += self._buffered
                self._chunks, self._buffered = [], 0
        if self._buffer_start is None:  # the track has no samples at all
            return np.zeros((self.channels, 0), dtype=np.float32)
        held = (
            np.concatenate(self._chunks, axis=1)
            if self._chunks
            else np.zeros((self.channels, 0), np.float32)
        )
        if start < self._buffer_start:  # the track starts after the video: silence before it
            pad = np.zeros((self.channels, self._buffer_start - start), dtype=np.float32)
            held = np.concatenate([pad, held], axis=1)
            self._buffer_start = start
        # Keep only what a later, non-decreasing request can still need.
        held = held[:, start - self._buffer_start :]
        self._chunks, self._buffered, self._buffer_start = [held], held.shape[1], start
        return held[:, : end - start].copy()

    def damage(self, start_s: float, end_s: float) -> tuple[float, float] | None:
        """The part of [start_s, end_s) that could not be decoded (first to last damaged
        second), as far as the track has been read; None when all of it decoded."""
        bad = [(a, b) for a, b in self.damaged if a < end_s and b > start_s]
        if not bad:
            return None
        return max(bad[0][0], start_s), min(bad[-1][1], end_s)

    def close(self) -> None:
        self._container.close()
