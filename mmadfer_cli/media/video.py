"""Open a video file: metadata, frames by index (uint8 RGB) and the audio of a time span.

PyAV reads every file: it has wheels for every platform the tool runs on and
decodes what FFmpeg decodes, AV1 included. The video's packets are indexed once
at opening; frames are then found by their timestamps while decoding forward
from a keyframe, so a damaged stretch costs only its own frames and a file cut
short still gives every frame before the cut. Frames honour rotation metadata
the way ``ffmpeg`` does; the sound is read by ``media.audio``. Every failure
becomes a ``MediaError`` whose message a user understands.
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
import numpy as np
from av.video.reformatter import VideoReformatter

from mmadfer_cli.media.audio import AudioTrack
from mmadfer_cli.media.discover import not_regular

_ID_CHUNK = 1 << 20


class MediaError(Exception):
    """A file that cannot be used as a video; the message says why, for the user."""


class DamagedFramesError(MediaError):
    """Some of the requested frames cannot be decoded.

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


def video_id(path: str | os.PathLike[str]) -> str:
    """A stable content id: sha256 of the size and the first and last MiB (fast on any size).
    Raises ``MediaError`` for what is not a regular file, before opening it (a pipe would block)."""
    _require_regular(Path(path))
    size = os.path.getsize(path)
    digest = hashlib.sha256(str(size).encode())
    with open(path, "rb") as stream:
        digest.update(stream.read(_ID_CHUNK))
        if size > _ID_CHUNK:
            stream.seek(max(size - _ID_CHUNK, _ID_CHUNK))
            digest.update(stream.read(_ID_CHUNK))
    return digest.hexdigest()[:16]


def _require_regular(path: Path) -> None:
    kind = not_regular(path)
    if kind is not None:
        raise MediaError(f"{path}: a {kind}, not a video file")


def _rotate(frame: np.ndarray, degrees: int) -> np.ndarray:
    """Apply display rotation (counter-clockwise degrees, as FFmpeg reports it)."""
    turns = (degrees // 90) % 4
    return np.ascontiguousarray(np.rot90(frame, turns)) if turns else frame


class Video:
    """An open video: ``info``, ``frame_times``, ``frames(indices)`` and ``audio(start, end)``.

    Reading is cheapest with non-decreasing frame indices and audio spans
    (a video is read front to back); going back works but re-decodes.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._frames = _Frames(path)
        self._audio: AudioTrack | None = None
        index = self._frames
        self.frame_times = np.round(index.times - index.times[0], 6)  # 7.999999999999999 -> 8.0
        self._readable_s = round(index.readable_s, 6)  # where what the file holds ends
        duration_s = max(self._readable_s, float(self.frame_times[-1]))
        # A file cut short holds fewer frames than its header promises: the missing ones
        # get times at the frame rate, so their segments are planned and reported.
        missing = index.declared - len(index.times)
        if missing > 0:
            extra = self._readable_s + np.arange(missing) / index.fps
            self.frame_times = np.concatenate([self.frame_times, np.round(extra, 6)])
            duration_s = float(self.frame_times[-1]) + 1 / index.fps
        self.info = VideoInfo(
            path=path,
            fps=index.fps,
            frame_count=len(self.frame_times),
            duration_s=duration_s,
            width=index.width,
            height=index.height,
            has_audio=index.sample_rate is not None,
            sample_rate=index.sample_rate,
            channels=index.channels,
        )

    def frames(self, indices: Sequence[int]) -> np.ndarray:
        """Frames at ``indices`` (repeats allowed), uint8 RGB (len, height, width, 3).

        Frames that cannot be decoded raise ``DamagedFramesError`` carrying the others.
        """
        wanted = np.asarray(indices, dtype=np.int64)
        if wanted.size and (wanted.min() < 0 or wanted.max() >= self.info.frame_count):
            raise IndexError(f"frame index out of range 0..{self.info.frame_count - 1}")
        unique, inverse = np.unique(wanted, return_inverse=True)
        batch = np.empty((len(unique), self.info.height, self.info.width, 3), np.uint8)
        held = unique[unique < len(self._frames.times)]  # sorted: positions stay the same
        decoded = self._frames.read(self.frame_times[held], batch) if len(held) else set()
        if len(decoded) < len(unique):
            frames = {int(unique[k]): batch[k] for k in sorted(decoded)}
            missing = [int(i) for k, i in enumerate(unique) if k not in decoded]
            first, last = (float(t) for t in self.frame_times[[missing[0], missing[-1]]])
            if first >= self._readable_s:
                why = f"the file is cut short: it ends at {self._readable_s:.2f} s"
            else:
                why = "the file is damaged there"
            raise DamagedFramesError(
                f"the frames at {seconds_span(first, last)} cannot be decoded ({why})",
                frames,
                missing,
            )
        in_order = len(unique) == len(wanted) and bool(np.all(unique == wanted))
        return batch if in_order else batch[inverse]

    def audio(self, start_s: float, end_s: float) -> np.ndarray | None:
        """Audio of [start_s, end_s) as float32 (channels, samples) in [-1, 1]; None without a
        track. A span that overlaps sound that cannot be decoded raises ``DamagedAudioError``."""
        if not self.info.has_audio:
            return None
        if self._audio is None:
            self._audio = AudioTrack(self.path, self._frames.origin_s)
        samples = self._audio.read(start_s, end_s)
        damage = self._audio.damage(start_s, end_s)
        if damage is not None:
            raise DamagedAudioError(
                f"the sound at {seconds_span(*damage)} cannot be decoded "
                "(the file is damaged there)"
            )
        return samples

    def close(self) -> None:
        self._frames.close()
        if self._audio is not None:
            self._audio.close()

    def __enter__(self) -> Video:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class _Frames:
    """A video stream's index, read once at opening, and frame access by decoding forward.

    Reads start at the keyframe before the first wanted frame (or go on from the
    last read when that is nearer) and match frames by their timestamps, so
    packets that cannot be decoded cost only their own frames, and a file cut
    short still gives every frame before the cut.
    """

    def __init__(self, path: Path) -> None:
        self._path = path
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
            audio = container.streams.audio[0] if container.streams.audio else None
            self.sample_rate = int(audio.rate) if audio is not None else None
            self.channels = int(audio.channels) if audio is not None else None
            try:
                packets = self._scan(container)
            except av.FFmpegError as error:
                raise MediaError(
                    f"{path}: video stream cannot be read ({error.strerror})"
                ) from error
        if not packets:
            raise MediaError(f"{path}: the video stream has no frames")
        if self._rotation % 180:
            self.width, self.height = self.height, self.width
        tb = float(self._time_base)
        stamps = [stamp for stamp, _, _ in packets]
        if None in stamps:  # no times: the frames are counted at the frame rate
            self.times = np.arange(len(packets)) / self.fps
            last = packets[-1][1]
        else:
            known = np.array(stamps, np.int64)
            order = np.argsort(known, kind="stable")
            self.times = known[order] * tb
            last = packets[order[-1]][1]
            if not self._stamped:  # the header counts an AVI's empty chunks too
                self.declared -= max(int(known.max()) + 1 - len(packets), 0)
        if self._stamped and None not in stamps:  # frames are matched by their pts
            self._pts: np.ndarray | None = known[order]
            self._keys = np.sort(known[[key for _, _, key in packets]])
        else:  # by their count in display order
            self._pts = None
            self._keys = np.zeros(0, np.int64)
        # Where what the file holds ends, on the timeline (from the first frame).
        self.readable_s = float(self.times[-1] - self.times[0] + (last * tb or 1.0 / self.fps))
        # One converter for all frames: a frame's own (``to_ndarray``) is set up anew each time.
        self._rgb = VideoReformatter()
        self._container: av.container.InputContainer | None = None
        self._frames: Iterator[av.VideoFrame] | None = None
        self._last: int | None = None  # pts (or count) of the last frame decoded
        self._wanted: set[int] = set()  # pts of the frames the current read wants
        self._end = 0  # the largest of them

    def _scan(self, container: av.container.InputContainer) -> list[tuple[int | None, int, bool]]:
        """Read the stream's facts and its packets' (time stamp, duration, keyframe), decoding
        only until the first frame (its rotation)."""
        stream = container.streams.video[0]
        rate = stream.average_rate or stream.guessed_rate or stream.base_rate
        self.fps = float(rate) if rate else 25.0
        self.origin_s = float(stream.start_time * stream.time_base) if stream.start_time else 0.0
        self.width, self.height = stream.codec_context.width, stream.codec_context.height
        self._time_base = stream.time_base
        # AVI stores no presentation times: its packets' are guessed from decoding order,
        # wrong with B-frames (decoded frames came out stamped 1, 4, 3, 5, 2). Their dts number
        # the file's chunks, one frame's place on the timeline each, empty ones too (the
        # previous frame again, which the demuxer skips; FFmpeg writes one where it repeats a
        # frame to keep a constant rate): the frames, in display order, take those places.
        self._stamped = container.format.name != "avi"
        self.declared = int(stream.frames or 0)  # as the header says (0: not said)
        rotation: int | None = None
        packets: list[tuple[int | None, int, bool]] = []
        with contextlib.suppress(av.FFmpegError):  # damaged or cut short: what was read
            for packet in container.demux(stream):
                if rotation is None:
                    try:
                        shown = packet.decode()
                    except av.FFmpegError:  # decoding problems are reported by ``read``
                        rotation = 0
                    else:
                        if shown:
                            rotation = int(getattr(shown[0], "rotation", 0) or 0)
                if packet.size and packet.is_discard:  # hidden by an edit list (a trim)
                    self.declared -= 1
                elif packet.size:
                    stamp = packet.pts if self._stamped else packet.dts
                    packets.append((stamp, packet.duration or 0, packet.is_keyframe))
        self._rotation = rotation or 0
        return packets

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

    def _decode(
        self, container: av.container.InputContainer, stream: av.VideoStream
    ) -> Iterator[av.VideoFrame]:
        """Decoded frames, skipping packets that cannot be decoded; ends where reading fails.

        Where frames are matched by their pts, a packet whose frame the read does not want is
        decoded only if other frames refer to it (FFmpeg's ``skip_frame``): in the 60-s test
        video, 720 of 1,501 frames, a third of its decoding time. Packets after the read's last
        frame are decoded whole: the decoder takes some before it gives that frame (B-frames
        come out of order), and the next read may want them."""
        packets = container.demux(stream)
        context = stream.codec_context
        while True:
            try:
                packet = next(packets)
            except (StopIteration, av.FFmpegError):
                return
            known = self._pts is not None and packet.pts is not None
            skip = known and packet.pts < self._end and packet.pts not in self._wanted
            context.skip_frame = "NONREF" if skip else "DEFAULT"
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
        nearest = np.clip(np.searchsorted(self.times, times - tol), 0, len(self.times) - 1)
        found = {
            int(j): k
            for k, (t, j) in enumerate(zip(times, nearest, strict=True))
            if abs(self.times[j] - t) <= tol
        }  # index in display order -> position in ``out``
        if not found:
            return set()
        if self._pts is None:  # frames counted from the top
            wanted = found
            if self._frames is None or self._last is None or min(wanted) <= self._last:
                self._start(None)
                self._last = -1
        else:
            wanted = {int(self._pts[j]): k for j, k in found.items()}
            self._wanted, self._end = set(wanted), max(wanted)
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
                rgb = self._rgb.reformat(frame, format="rgb24").to_ndarray()
                pixels = _rotate(rgb, self._rotation)
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
    if not path.exists():
        raise MediaError(f"{path}: file not found")
    _require_regular(path)
    if path.stat().st_size == 0:
        raise MediaError(f"{path}: empty file (0 bytes), not a video")
    return Video(path)


def probe(path: str | os.PathLike[str]) -> VideoInfo:
    """A video's metadata (opens and closes it)."""
    with open_video(path) as video:
        return video.info
