"""Open a video file: metadata, frames by index (uint8 RGB) and the audio of a time span.

decord decodes the frames (the project's choice: fast random access by
index); PyAV takes over for files decord cannot open, decode or seek in, such as
AV1 (decord's bundled FFmpeg has no AV1 decoder), AVIs without frame times
(decord seeks to wrong frames there) or unusual containers. Audio is
always read with PyAV (``media_audio``), at the file's own sample rate and
channel layout, because the model was trained on audio at the file's own rate
and decord's AudioReader resamples and mixes down by default. Both backends honour
rotation metadata the way ``ffmpeg`` does. Every failure becomes a
``MediaError`` whose message a user understands.
"""

from __future__ import annotations

import contextlib
import hashlib
import itertools
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import av
import decord
import numpy as np

from mmadfer_cli.media_audio import AudioTrack

decord.logging.set_level(decord.logging.QUIET)

_ID_CHUNK = 1 << 20
_SEEKS_LATE = {"mpeg", "mpegts"}  # MPEG program and transport streams: .mpg, .vob, .ts, .m2ts


class MediaError(Exception):
    """A file that cannot be used as a video; the message says why, for the user."""


class DamagedFramesError(MediaError):
    """Some of the requested frames cannot be decoded, even by the second decoder.

    ``frames`` holds the ones that could be (index -> pixels), ``missing`` the others.
    """

    def __init__(self, message: str, frames: dict[int, np.ndarray], missing: list[int]) -> None:
        super().__init__(message)
        self.frames = frames
        self.missing = missing


class DamagedAudioError(MediaError):
    """The sound of a requested span cannot be decoded, in whole or in part."""


def seconds_span(start_s: float, end_s: float) -> str:
    """A stretch of time in words: ``12.04-15.00 s``."""
    return f"{start_s:.2f}-{end_s:.2f} s"


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
        self._unreadable = False  # neither decoder can read the frames any more
        self._audio: AudioTrack | None = None
        try:
            if probe.container in _SEEKS_LATE:
                # decord's seeks land a keyframe late there: MPEG-2 frame k was frame k + 12,
                # HEVC grey; PyAV's landing is checked (``_PyAVFrames._start``).
                raise MediaError("decord seeks to wrong frames in this container")
            if probe.edited:
                # decord shows the frames an edit list hides, and its indices to them change
                # with seeking: frame 50 of a video trimmed at 1.3 s was the source's 50, frame
                # 20 its 53; the sound, which starts at the trim, 1.3 s off.
                raise MediaError("decord ignores edit lists")
            self._decord = decord.VideoReader(str(path), num_threads=1)
            count = len(self._decord)
            first = self._decord[0].asnumpy()  # decord decodes this codec (AV1: it does not)
            self._park_decoder()
            # decord gives float32 seconds (0.04 -> 0.03999999910593033); container time bases
            # are far coarser than a microsecond, so rounding restores the exact times.
            spans = np.round(self._decord.get_frame_timestamp(range(count)).astype(np.float64), 6)
            fps = float(self._decord.get_avg_fps())
            if not _plausible_times(spans[:, 0]):
                # decord has no frame times for some files (H.264 or MPEG-2 in AVI: every
                # frame at -3e17 s), and without them it seeks to wrong frames (frame 199 of
                # an H.264 AVI gave frame 100): PyAV reads such files.
                raise MediaError("decord has no frame times")
            times = spans[:, 0]
            duration = float(spans[-1, 1])
            height, width = first.shape[:2]
            backend = "decord"
        except Exception:  # decord raises assorted error types for files it cannot handle
            self._decord = None
            self._pyav = _PyAVFrames(path, probe)
            times, duration = self._pyav.times, self._pyav.duration
            width, height, fps = self._pyav.width, self._pyav.height, self._pyav.fps
            backend = "pyav"
        self.frame_times = np.round(times - times[0], 6)  # PyAV: 7.999999999999999 -> 8.0
        # A file cut short holds fewer frames than its header promises: the missing ones
        # get times at the frame rate, so their segments are planned and reported. Counted
        # by time as well: an AVI's header also counts empty chunks (a repeated frame, or
        # the one FFmpeg's MPEG-4 encoder leaves at the end), which a complete file lacks
        # no time for.
        self._readable = len(times)  # frames the decoders know of
        self._readable_s = round(duration - float(times[0]), 6)  # where what the file holds ends
        duration_s = max(self._readable_s, float(self.frame_times[-1]))
        declared = probe.declared_frames - (self._pyav.hidden if self._pyav is not None else 0)
        missing = declared - len(times)
        if fps > 0:
            missing = min(missing, declared - round(self._readable_s * fps))
        if missing > 0 and fps > 0:
            extra = self._readable_s + np.arange(missing) / fps
            self.frame_times = np.concatenate([self.frame_times, np.round(extra, 6)])
            duration_s = float(self.frame_times[-1]) + 1 / fps
        self.info = VideoInfo(
            path=path,
            fps=fps,
            frame_count=len(self.frame_times),
            duration_s=duration_s,
            width=int(width),
            height=int(height),
            has_audio=probe.has_audio,
            sample_rate=probe.sample_rate,
            channels=probe.channels,
            backend=backend,
        )

    def frames(self, indices: Sequence[int]) -> np.ndarray:
        """Frames at ``indices`` (repeats allowed), uint8 RGB (len, height, width, 3).

        A stretch decord cannot decode is read again with PyAV, which skips what
        is damaged; frames that still cannot be decoded raise ``DamagedFramesError``
        carrying the others.
        """
        wanted = np.asarray(indices, dtype=np.int64)
        if wanted.size and (wanted.min() < 0 or wanted.max() >= self.info.frame_count):
            raise IndexError(f"frame index out of range 0..{self.info.frame_count - 1}")
        unique, inverse = np.unique(wanted, return_inverse=True)
        batch = np.empty((len(unique), self.info.height, self.info.width, 3), np.uint8)
        decoded = self._read(unique.tolist(), batch)
        if len(decoded) < len(unique):
            frames = {int(unique[k]): batch[k] for k in sorted(decoded)}
            missing = [int(i) for k, i in enumerate(unique) if k not in decoded]
            first, last = (float(t) for t in self.frame_times[[missing[0], missing[-1]]])
            readable_s = self._pyav.readable_s if self._pyav is not None else self._readable_s
            if first >= min(readable_s, self._readable_s):
                why = f"the file is cut short: it ends at {readable_s:.2f} s"
            else:
                why = "the file is damaged there"
            raise DamagedFramesError(
                f"the frames at {seconds_span(first, last)} cannot be decoded ({why})",
                frames,
                missing,
            )
        in_order = len(unique) == len(wanted) and bool(np.all(unique == wanted))
        return batch if in_order else batch[inverse]

    def _read(self, indices: list[int], out: np.ndarray) -> set[int]:
        """Decode sorted unique frame ``indices`` into ``out``; the positions that decoded."""
        indices = [i for i in indices if i < self._readable]  # sorted: positions stay the same
        if not indices:
            return set()
        if self._decord is not None:
            try:
                for position, index in enumerate(indices):  # one at a time: no 4K batch copies
                    out[position] = self._decord.get_batch([index]).asnumpy()[0]
                return set(range(len(indices)))
            except Exception:  # decord raises assorted errors on damaged data: PyAV from now on
                self._decord = None
            finally:
                if self._decord is not None:
                    self._park_decoder()
        if self._pyav is None:
            if self._unreadable:
                return set()
            try:
                self._pyav = _PyAVFrames(self.path, self._probe)
            except MediaError:
                self._unreadable = True  # PyAV cannot read the stream either
                return set()
        return self._pyav.read(self.frame_times[indices], out)

    @property
    def reads_as_opened(self) -> bool:
        """Whether frames still come from the decoder chosen at opening (damage makes decord
        hand the rest of the video to PyAV, whose pixels differ slightly)."""
        return self._decord is not None or self.info.backend == "pyav"

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
        """Audio of [start_s, end_s) as float32 (channels, samples) in [-1, 1]; None without a
        track. A span that overlaps sound that cannot be decoded raises ``DamagedAudioError``."""
        if not self.info.has_audio:
            return None
        if self._audio is None:
            self._audio = AudioTrack(self.path, self._probe.origin_s)
        samples = self._audio.read(start_s, end_s)
        damage = self._audio.damage(start_s, end_s)
        if damage is not None:
            raise DamagedAudioError(
                f"the sound at {seconds_span(*damage)} cannot be decoded "
                "(the file is damaged there)"
            )
        return samples

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
    container: str  # FFmpeg's name of the container format
    edited: bool  # an edit list hides frames before the start
    origin_s: float  # the video stream's start time: time 0 of frames and audio
    declared_frames: int  # as the container's header says (0: not said)
    has_audio: bool
    sample_rate: int | None
    channels: int | None


def _plausible_times(times: np.ndarray) -> bool:
    """Whether frame times are real: finite, not before the stream's start by more than a
    second (edit lists shift a little), in order, and spread over time."""
    return bool(
        np.isfinite(times).all()
        and times.min() > -1.0
        and (np.diff(times) >= 0).all()
        and (len(times) == 1 or times[-1] > times[0])
    )


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
        edited = False  # an edit list hides frames before the start (a trimmed phone video)
        try:
            for packet in container.demux(stream):
                edited = edited or packet.is_discard
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
            container=container.format.name,
            edited=edited,
            origin_s=origin,
            declared_frames=int(stream.frames or 0),
            has_audio=audio is not None,
            sample_rate=int(audio.rate) if audio is not None else None,
            channels=int(audio.channels) if audio is not None else None,
        )


class _PyAVFrames:
    """Frame access with PyAV: an index of packet times, then decoding forward.

    Reads start at the keyframe before the first wanted frame (or go on from the
    last read when that is nearer) and match frames by their timestamps, so
    packets that cannot be decoded cost only their own frames, and a file cut
    short still gives every frame before the cut.
    """

    def __init__(self, path: Path, probe: _Probe) -> None:
        self._path = path
        self._rotation = probe.rotation
        packets: list[tuple[int | None, int, bool]] = []  # pts, duration, keyframe
        # Frames the header counts that show nothing of their own: hidden by an edit list,
        # or an AVI's empty chunks (the previous frame again; FFmpeg writes one where a
        # stream's first frame is delayed), which the demuxer skips.
        self.hidden = 0
        chunks = 0  # an AVI's chunks up to the last read, empty ones too: its packets' dts + 1
        try:
            with av.open(str(path)) as container:
                stream = container.streams.video[0]
                rate = stream.average_rate or stream.guessed_rate or stream.base_rate
                # AVI stores no presentation times: its packets' are guessed from decoding
                # order, wrong with B-frames (decoded frames came out stamped 1, 4, 3, 5, 2).
                stamped = container.format.name != "avi"
                self._time_base = stream.time_base
                self.width, self.height = stream.codec_context.width, stream.codec_context.height
                with contextlib.suppress(av.FFmpegError):  # damaged or cut short: what was read
                    for packet in container.demux(stream):
                        if packet.size and packet.is_discard:
                            self.hidden += 1
                        elif packet.size:
                            packets.append((packet.pts, packet.duration or 0, packet.is_keyframe))
                            chunks = max(chunks, (packet.dts or 0) + 1)
        except av.FFmpegError as error:
            raise MediaError(f"{path}: video stream cannot be read ({error.strerror})") from error
        if not packets:
            raise MediaError(f"{path}: the video stream has no frames")
        if probe.rotation % 180:
            self.width, self.height = self.height, self.width
        self.fps = float(rate) if rate else 25.0
        tb = float(self._time_base)
        if not stamped:
            self.hidden += max(chunks - len(packets), 0)
        if not stamped or any(p is None for p, _, _ in packets):  # frames are counted instead
            self._pts: np.ndarray | None = None
            self._keys = np.zeros(0, np.int64)
            self.times = np.arange(len(packets)) / self.fps
            last = packets[-1][1]
        else:
            stamps = np.array([p for p, _, _ in packets], np.int64)
            order = np.argsort(stamps, kind="stable")
            self._pts = stamps[order]
            self._keys = np.sort(stamps[[key for _, _, key in packets]])
            self.times = self._pts * tb
            last = packets[order[-1]][1]
        # Where what the file holds ends, on the timeline (from the first frame).
        self.readable_s = float(self.times[-1] - self.times[0] + (last * tb or 1.0 / self.fps))
        self.duration = float(self.times[0] + self.readable_s)
        self._container: av.container.InputContainer | None = None
        self._frames: Iterator[av.VideoFrame] | None = None
        self._last: int | None = None  # pts (or count) of the last frame decoded

    def _start(self, pts: int | None) -> None:
        """Decode from the keyframe at or before ``pts`` (from the top when None).

        MPEG program and transport streams seek to the keyframe after the one asked for, or
        past the end: a start that lands after ``pts`` tries the keyframe before, then the top.
        """
        target = pts
        while True:
            if target is None and self._container is not None:
                self._container.close()  # from the top: opened afresh, no seeking
                self._container = None
            if self._container is None:
                self._container = av.open(str(self._path))
            stream = self._container.streams.video[0]
            if target is not None:
                self._container.seek(int(target), stream=stream, backward=True)
            frames = self._decode(self._container, stream)
            first = next(frames, None)
            if target is None:
                break
            if first is not None and (first.pts is None or first.pts <= pts):
                break
            earlier = self._keys[self._keys < target]
            target = int(earlier[-1]) if len(earlier) else None
        self._frames = itertools.chain([first] if first is not None else [], frames)
        self._last = None

    @staticmethod
    def _decode(
        container: av.container.InputContainer, stream: av.VideoStream
    ) -> Iterator[av.VideoFrame]:
        """Decoded frames, skipping packets that cannot be decoded; ends where reading fails."""
        packets = container.demux(stream)
        while True:
            try:
                packet = next(packets)
            except (StopIteration, av.FFmpegError):
                return
            try:
                frames = packet.decode()
            except av.FFmpegError:
                continue
            yield from frames

    def read(self, times: np.ndarray, out: np.ndarray) -> set[int]:
        """Decode the frames at sorted ``times`` (seconds from the first frame) into ``out``;
        the positions decoded."""
        tol = 0.5 / self.fps
        times = times + self.times[0]
        if self._pts is None:  # frames counted from the top
            wanted = {round(t * self.fps): k for k, t in enumerate(times)}
            if self._frames is None or self._last is None or min(wanted) <= self._last:
                self._start(None)
                self._last = -1
        else:
            nearest = np.clip(np.searchsorted(self.times, times - tol), 0, len(self.times) - 1)
            wanted = {
                int(self._pts[j]): k
                for k, (t, j) in enumerate(zip(times, nearest, strict=True))
                if j < len(self._pts) and abs(self.times[j] - t) <= tol
            }
            if not wanted:
                return set()
            first = min(wanted)
            before = self._keys[self._keys <= first]
            key = int(before[-1]) if len(before) else None
            stale = self._last is None or first <= self._last
            if self._frames is None or stale or (key is not None and key > self._last):
                self._start(key if key is not None else first)
        assert self._frames is not None
        done: set[int] = set()
        end = max(wanted)
        for frame in self._frames:
            if self._pts is None:
                self._last = (self._last if self._last is not None else -1) + 1
                stamp = self._last
            elif frame.pts is None:
                continue
            else:
                stamp = self._last = int(frame.pts)
            position = wanted.get(stamp)
            if position is not None:
                pixels = _rotate(frame.to_ndarray(format="rgb24"), self._rotation)
                if pixels.shape == out.shape[1:]:  # a frame of another size counts as damaged
                    out[position] = pixels
                    done.add(position)
            if stamp >= end:
                break
        return done

    def close(self) -> None:
        if self._container is not None:
            self._container.close()
        self._container = None
        self._frames = None


def open_video(path: str | os.PathLike[str]) -> Video:
    """Open a video for reading; raises ``MediaError`` with a user-readable reason."""
    path = Path(path)
    probe = _probe(path)
    return Video(path, probe)


def probe(path: str | os.PathLike[str]) -> VideoInfo:
    """A video's metadata (opens and closes it)."""
    with open_video(path) as video:
        return video.info
