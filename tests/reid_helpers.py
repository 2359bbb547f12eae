"""Videos of faces cut shot by shot, made from package photos (re-identification tests, benchmark).

scikit-image's astronaut and the six people of insightface's group photo: each shot
shows one face centred in a square frame, so that two people framed alike in turn
keep one overlap track across the cut.
"""

from __future__ import annotations

from pathlib import Path

import av
from PIL import Image

FPS, SIZE = 16, 192
ASTRONAUT_FACE = (175, 76, 266, 167)  # x1, y1, x2, y2 in skimage.data.astronaut()
GROUP_FACES = (  # the six faces of insightface's t1.jpg, left to right
    (67, 283, 177, 393),
    (266, 176, 357, 267),
    (452, 296, 561, 405),
    (727, 367, 837, 477),
    (883, 80, 992, 188),
    (1111, 283, 1221, 393),
)


def astronaut() -> Image.Image:
    from skimage import data

    return Image.fromarray(data.astronaut())


def group() -> Image.Image:
    import insightface

    return Image.open(Path(insightface.__file__).parent / "data/images/t1.jpg").convert("RGB")


Shot = tuple[Image.Image | None, tuple[int, int, int, int], float, float, float]
"""(photo or None for an empty frame, face box, seconds, zoom out, horizontal shift)."""


def _frame(
    photo: Image.Image | None, face: tuple[int, ...], zoom: float, shift: float
) -> Image.Image:
    """The face centred (then shifted by ``shift`` of the frame) in a square ``zoom`` times its size."""
    if photo is None:
        return Image.new("RGB", (SIZE, SIZE), (90, 90, 90))
    cx, cy = (face[0] + face[2]) / 2, (face[1] + face[3]) / 2
    half = zoom * (face[2] - face[0]) / 2
    cx -= shift * 2 * half
    box = (round(cx - half), round(cy - half), round(cx + half), round(cy + half))
    return photo.crop(box).resize((SIZE, SIZE), Image.BILINEAR)  # black beyond the photo


def write_video(path: Path, shots: list[Shot]) -> Path:
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=FPS)
        stream.width = stream.height = SIZE
        stream.pix_fmt = "yuv420p"
        for photo, face, seconds, zoom, shift in shots:
            image = _frame(photo, face, zoom, shift)
            for _ in range(round(seconds * FPS)):
                out.mux(stream.encode(av.VideoFrame.from_image(image)))
        out.mux(stream.encode())
    return path
