"""A short talking-head-like test video made on the spot, for ``mmadfer doctor``.

The repository's ``sample_videos/`` are not part of an installed package, so
``doctor`` needs a video it can make anywhere: real faces from insightface's
bundled group photo (insightface is a dependency), a slow zoom so that tracking
moves, and an amplitude-modulated tone as the soundtrack. Encoded with PyAV
(MPEG-4 Part 2 and AAC, encoders every FFmpeg build has).
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np
from PIL import Image

FPS = 25
SIZE = (640, 442)  # the photo's aspect ratio, even sides
SAMPLE_RATE = 16000


def face_photo() -> Image.Image:
    """insightface's sample photo of six people."""
    import insightface

    return Image.open(Path(insightface.__file__).parent / "data" / "images" / "t1.jpg").convert(
        "RGB"
    )


def write_demo_video(path: Path, seconds: float = 4.0) -> Path:
    """Write the demo video to ``path`` (MP4) and return it."""
    photo = face_photo()
    width, height = photo.size
    frames = round(seconds * FPS)
    t = np.arange(round(seconds * SAMPLE_RATE)) / SAMPLE_RATE
    tone = 0.2 * np.sin(2 * np.pi * 220 * t) * (0.5 + 0.5 * np.sin(2 * np.pi * 3 * t))
    with av.open(str(path), "w") as container:
        video = container.add_stream("mpeg4", rate=FPS)
        video.width, video.height, video.pix_fmt = SIZE[0], SIZE[1], "yuv420p"
        video.bit_rate = 1_500_000
        audio = container.add_stream("aac", rate=SAMPLE_RATE)
        audio.layout = "mono"
        for i in range(frames):
            zoom = 0.1 * i / max(frames - 1, 1)  # up to 10% closer, centred
            box = (
                zoom / 2 * width,
                zoom / 2 * height,
                (1 - zoom / 2) * width,
                (1 - zoom / 2) * height,
            )
            image = photo.resize(SIZE, Image.BILINEAR, box=box)
            container.mux(video.encode(av.VideoFrame.from_image(image)))
        container.mux(video.encode())
        chunk = 1024
        for start in range(0, len(tone), chunk):
            samples = tone[start : start + chunk].astype(np.float32)[None, :]
            frame = av.AudioFrame.from_ndarray(samples, format="fltp", layout="mono")
            frame.sample_rate = SAMPLE_RATE
            frame.pts = start
            frame.time_base = Fraction(1, SAMPLE_RATE)
            container.mux(audio.encode(frame))
        container.mux(audio.encode())
    return path
