"""Open a video file: metadata, frames by index (uint8 RGB) and the audio of a time span.

decord decodes the frames (the project's choice: fast random access by
index); PyAV takes over for files decord cannot open or decode, such as AV1
(decord's bundled FFmpeg has no AV1 decoder) or unusual containers. Audio is
always read with PyAV, at the file's own sample rate and channel layout,
because the model was trained on audio at the file's own rate and decord's
AudioReader resamples and mixes down by default. Both backends honour
rotation metadata the way ``ffmpeg`` does. Every failure becomes a
``MediaError`` whose message a user understands.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import av
import decord
import numpy as np

decord.logging.set_level(decord.logging.QUIET)

_ID_CHUNK = 1 << 20


class MediaError(Exception):
    """A file that cannot be used as a video; the message says why, for the user."""


@dataclass(frozen=True)
class VideoInfo:
    """What is known about a video before its frames are read."""

    path: Path
    fps: float
    frame_count: int
    duration_s: float
    width: int
    height: int
    has_audio: bool
    sample_rate: int | None
    channels: int | None
    backend: str  # "decord" or "pyav"


def video_id(path: str | os.PathLike[str]) -> str:
    """A stable content id: sha256 of the size and the first and last MiB (fast on any size)."""
    size = os.path.getsize(path)
    digest = hashlib.sha256(str(size).encode())
    with open(path, "rb") as stream:
        digest.update(stream.read(_ID_CHUNK))
        if size > _ID_CHUNK:
            stream.seek(max(size - _ID_CHUNK, _ID_CHUNK))
            digest.update(stream.read(_ID_CHUNK))
    return digest.hexdigest()[:16]


def _rotate(frame: np.ndarray, degrees: int) -> np.ndarray:
    """Apply display rotation (counter-clockwise degrees, as FFmpeg reports it)."""
    turns = (degrees // 90) % 4
    return np.ascontiguousarray(np.rot90(frame, turns)) if turns else frame


class _AudioTrack:
    """Sequential reader of one audio stream; keeps only the samples still needed."""

    def __init__(self, path: Path, origin_s: float) -> None:
        self._path = path
        self._origin_s = origin_s
        self._container = av.open(str(path))
        self._stream = self._container.streams.audio[0]
        self.sample_rate = int(self._stream.rate)
        self.channels = int(self._stream.channels)
        self._frames: Iterator[av.AudioFrame] | None = None
        self._chunks: list[np.ndarray] = []
        self._buffered = 0  # samples held in _chunks
        self._buffer_start: int | None = None  # timeline sample index of the first held sample
        self._exhausted = False

    def _restart(self) -> None:
        """Decode from the top of the track with a fresh decoder.

        Never by seeking: FFmpeg's AAC decoder fills noise-substituted bands
        from a generator seeded at the start of decoding, so only decoding from
        the top gives the samples the official loader (which reads the whole
        file) sees. Audio decodes at hundreds of times real time.
        """
        if self._frames is not None:
            self._container.close()
            self._container = av.open(str(self._path))
            self._stream = self._container.streams.audio[0]
        self._resampler = av.AudioResampler(
            format="fltp", layout=self._stream.layout, rate=self.sample_rate
        )
        self._frames = self._container.decode(self._stream)
        self._chunks, self._buffered = [], 0
        self._buffer_start = None
        self._exhausted = False

    def _decode_next(self) -> None:
        assert self._frames is not None
        try:
            frame = next(self._frames)
        except StopIteration:
            self._exhausted = True
            return
        except av.FFmpegError as error:
            raise MediaError(f"{self._path}: audio track cannot be decoded: {error}") from error
        if self._buffer_start is None:
            seconds = float(frame.pts * frame.time_base) if frame.pts is not None else 0.0
            self._buffer_start = round((seconds - self._origin_s) * self.sample_rate)
        for out in self._resampler.resample(frame):
            samples = out.to_ndarray().astype(np.float32, copy=False)
            self._chunks.append(samples)
            self._buffered += samples.shape[1]

    def read(self, start_s: float, end_s: float) -> np.ndarray:
        """Samples of [start_s, end_s) on the video's timeline, (channels, samples) float32."""
        start = max(round(start_s * self.sample_rate), 0)
        end = max(round(end_s * self.sample_rate), start)
        if self._frames is None or (self._buffer_start is not None and start < self._buffer_start):
            self._restart()
        while not self._exhausted and (
            self._buffer_start is None or self._buffer_start + self._buffered < end
        ):
            self._decode_next()
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

    def close(self) -> None:
        self._container.close()


class Video:
    """An open video: ``info``, ``frame_times``, ``frames(indices)`` and ``audio(start, end)``.

    Reading is cheapest with non-decreasing frame indices and audio spans
    (a video is read front to back); going back works but re-decodes.
    """

    def __init__(self, path: Path, probe: _Probe) -> None:
        self.path = path
        self._probe = probe
        self._decord: decord.VideoReader | None = None
        self._pyav: _PyAVFrames | None = None
        self._audio: _AudioTrack | None = None
        try:
            self._decord = decord.VideoReader(str(path), num_threads=1)
            count = len(self._decord)
            last = self._decord[count - 1].asnumpy()  # proves the whole file decodes to the end
            self._park_decoder()
            # decord gives float32 seconds (0.04 -> 0.03999999910593033); container time bases
            # are far coarser than a microsecond, so rounding restores the exact times.
            spans = np.round(self._decord.get_frame_timestamp(range(count)).astype(np.float64), 6)
            times = spans[:, 0]
            duration = float(spans[-1, 1])
            height, width = last.shape[:2]
            fps = float(self._decord.get_avg_fps())
            backend = "decord"
        except Exception:  # decord raises assorted error types for files it cannot handle
            self._decord = None
            self._pyav = _PyAVFrames(path, probe)
            times, duration = self._pyav.times, self._pyav.duration
            width, height, fps = self._pyav.width, self._pyav.height, self._pyav.fps
            backend = "pyav"
        self.frame_times = times - times[0]
        self.info = VideoInfo(
            path=path,
            fps=fps,
            frame_count=len(times),
            duration_s=max(duration - float(times[0]), float(self.frame_times[-1])),
            width=int(width),
            height=int(height),
            has_audio=probe.has_audio,
            sample_rate=probe.sample_rate,
            channels=probe.channels,
            backend=backend,
        )

    def frames(self, indices: Sequence[int]) -> np.ndarray:
        """Frames at ``indices`` (repeats allowed), uint8 RGB (len, height, width, 3)."""
        wanted = np.asarray(indices, dtype=np.int64)
        if wanted.size and (wanted.min() < 0 or wanted.max() >= self.info.frame_count):
            raise IndexError(f"frame index out of range 0..{self.info.frame_count - 1}")
        unique, inverse = np.unique(wanted, return_inverse=True)
        if self._decord is not None:
            try:
                batch = self._decord.get_batch(unique.tolist()).asnumpy()
            except Exception as error:
                raise MediaError(f"frames cannot be decoded: {error}") from error
            finally:
                self._park_decoder()
        else:
            assert self._pyav is not None
            batch = self._pyav.read(unique.tolist())
        return batch[inverse]

    def _park_decoder(self) -> None:
        """Stop decord's decoding thread from running ahead.

        After a read, decord 0.6 keeps decoding and buffering the following frames
        until the end of the file (about 2.5 GB for two minutes of 640 x 480; its
        issues 157, 197, 208), so memory would grow with video length. Seeking
        back to the first frame parks the thread until the next read.
        """
        assert self._decord is not None
        self._decord.seek(0)

    def audio(self, start_s: float, end_s: float) -> np.ndarray | None:
        """Audio of [start_s, end_s) as float32 (channels, samples) in [-1, 1]; None without a track."""
        if not self.info.has_audio:
            return None
        if self._audio is None:
            self._audio = _AudioTrack(self.path, self._probe.origin_s)
        return self._audio.read(start_s, end_s)

    def close(self) -> None:
        if self._pyav is not None:
            self._pyav.close()
        if self._audio is not None:
            self._audio.close()
        self._decord = None

    def __enter__(self) -> Video:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@dataclass(frozen=True)
class _Probe:
    """Container facts read once with PyAV."""

    rotation: int
    origin_s: float  # the video stream's start time: time 0 of frames and audio
    has_audio: bool
    sample_rate: int | None
    channels: int | None


def _probe(path: Path) -> _Probe:
    if not path.exists():
        raise MediaError(f"{path}: file not found")
    if path.is_dir():
        raise MediaError(f"{path}: is a folder, not a video file")
    if path.stat().st_size == 0:
        raise MediaError(f"{path}: empty file (0 bytes), not a video")
    try:
        container = av.open(str(path))
    except av.FFmpegError as error:
        raise MediaError(
            f"{path}: not a video, or truncated before its index (FFmpeg: {error.strerror})"
        ) from error
    with container:
        if not container.streams.video:
            kind = "audio-only file" if container.streams.audio else "no streams"
            raise MediaError(f"{path}: no video stream ({kind})")
        stream = container.streams.video[0]
        origin = float(stream.start_time * stream.time_base) if stream.start_time else 0.0
        rotation = 0
        try:
            for packet in container.demux(stream):
                for frame in packet.decode():
                    rotation = int(getattr(frame, "rotation", 0) or 0)
                    break
                else:
                    continue
                break
        except av.FFmpegError:
            pass  # decoding problems are reported by the frame readers
        audio = container.streams.audio[0] if container.streams.audio else None
        return _Probe(
            rotation=rotation,
            origin_s=origin,
            has_audio=audio is not None,
            sample_rate=int(audio.rate) if audio is not None else None,
            channels=int(audio.channels) if audio is not None else None,
        )


class _PyAVFrames:
    """Frame access with PyAV: an index of packet times, then sequential decoding."""

    def __init__(self, path: Path, probe: _Probe) -> None:
        self._path = path
        self._rotation = probe.rotation
        try:
            with av.open(str(path)) as container:
                stream = container.streams.video[0]
                declared = int(stream.frames or 0)
                rate = stream.average_rate or stream.guessed_rate or stream.base_rate
                pts = []
                durations = []
                for packet in container.demux(stream):
                    if packet.size == 0:
                        continue
                    pts.append(packet.pts)
                    durations.append(packet.duration or 0)
                tb = float(stream.time_base)
        except av.FFmpegError as error:
            raise MediaError(f"{path}: video stream cannot be read ({error.strerror})") from error
        if not pts:
            raise MediaError(f"{path}: the video stream has no frames")
        self.fps = float(rate) if rate else 0.0
        if any(p is None for p in pts) or self.fps <= 0:
            if self.fps <= 0:
                self.fps = 25.0
            self.times = np.arange(len(pts)) / self.fps
            self.duration = len(pts) / self.fps
        else:
            order = np.argsort(np.asarray(pts, dtype=np.int64), kind="stable")
            self.times = np.asarray(pts, dtype=np.float64)[order] * tb
            last = durations[order[-1]] * tb or 1.0 / self.fps
            self.duration = float(self.times[-1] + last)
        if declared and len(pts) < declared:
            raise MediaError(
                f"{path}: truncated: the file ends after {len(pts)} of {declared} frames"
            )
        self._container: av.container.InputContainer | None = None
        self._decoded: Iterator[av.VideoFrame] | None = None
        self._next = 0
        first = self._frame_at(0)
        self.height, self.width = first.shape[:2]

    def _restart(self) -> None:
        self.close()
        self._container = av.open(str(self._path))
        stream = self._container.streams.video[0]
        stream.thread_type = "AUTO"
        self._decoded = self._container.decode(stream)
        self._next = 0

    def _frame_at(self, index: int) -> np.ndarray:
        if self._decoded is None or index < self._next:
            self._restart()
        assert self._decoded is not None
        try:
            while True:
                frame = next(self._decoded)
                self._next += 1
                if self._next - 1 == index:
                    return _rotate(frame.to_ndarray(format="rgb24"), self._rotation)
        except StopIteration:
            raise MediaError(
                f"{self._path}: truncated: frame {index} of {len(self.times)} cannot be decoded"
            ) from None
        except av.FFmpegError as error:
            raise MediaError(
                f"{self._path}: truncated or corrupt at frame {self._next} ({error.strerror})"
            ) from error

    def read(self, indices: Sequence[int]) -> np.ndarray:
        """Frames at sorted unique ``indices``."""
        return np.stack([self._frame_at(i) for i in indices])

    def close(self) -> None:
        if self._container is not None:
            self._container.close()
        self._container = None
        self._decoded = None


def open_video(path: str | os.PathLike[str]) -> Video:
    """Open a video for reading; raises ``MediaError`` with a user-readable reason."""
    path = Path(path)
    probe = _probe(path)
    return Video(path, probe)


def probe(path: str | os.PathLike[str]) -> VideoInfo:
    """A video's metadata (opens and closes it)."""
    with open_video(path) as video:
        return video.info
