"""Faces from package photos for the re-identification tests and benchmarks.

scikit-image's astronaut and the six people of insightface's group photo: cut as the
pipeline cuts faces and aligned as the embedder aligns them (``face_crops``,
``aligned_chips``), or filmed shot by shot (``write_video``): each shot shows one face
centred in a square frame, so that two people framed alike in turn keep one overlap
track across the cut.
"""

from __future__ import annotations

from pathlib import Path

import av
import dlib
import numpy as np
from PIL import Image

from mmadfer_cli.faces.crops import crop_faces
from mmadfer_cli.faces.embedding import CHIP_PADDING, CHIP_SIZE, LANDMARKS_FILE, models_dir

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


def face_crops() -> np.ndarray:
    """(7, 224, 224, 3) uint8: the astronaut, then the group photo's six people, each cut by
    the pipeline's rule (``crop_faces``)."""
    photos = [(np.asarray(astronaut()), ASTRONAUT_FACE)]
    photos += [(np.asarray(group()), face) for face in GROUP_FACES]
    crops = [crop_faces([photo], np.array([face], dtype=np.float32)) for photo, face in photos]
    return np.concatenate(crops).transpose(0, 2, 3, 1)


def aligned_chips(crops: np.ndarray) -> list[np.ndarray]:
    """150 x 150 chips of (n, H, W, 3) face crops, aligned by dlib as ``FaceEmbedder`` aligns
    them: the chips its network sees."""
    landmarks = dlib.shape_predictor(str(models_dir() / LANDMARKS_FILE))
    chips = []
    for crop in crops:
        image = np.ascontiguousarray(crop)
        box = dlib.rectangle(0, 0, image.shape[1] - 1, image.shape[0] - 1)
        chips.append(dlib.get_face_chip(image, landmarks(image, box), CHIP_SIZE, CHIP_PADDING))
    return chips


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
