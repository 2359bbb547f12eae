"""Faces: the insightface and dlib backends, detector choice, filters, tracking and crops."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from skimage import data

from mmadfer_cli.faces import DetectorUnavailableError, create_detector, keep_faces
from mmadfer_cli.faces.crops import crop_faces, face_region
from mmadfer_cli.faces.tracking import FaceTracker, fill_gaps, iou
from mmadfer_cli.media.video import open_video
from tests.conftest import SAMPLE_VIDEOS

onnx = pytest.importorskip("onnx")
from onnx import TensorProto, helper  # noqa: E402

STRIDES = (8, 16, 32)


def make_scrfd_stub(path: Path, planted: list[tuple[float, ...]], size: int = 640) -> None:
    """An ONNX model with SCRFD's input and nine outputs (scores, boxes, keypoints at strides
    8, 16, 32, two anchors) that reports the ``planted`` (x1, y1, x2, y2, score) boxes, given in
    detector-input pixels, on the stride-16 anchor nearest to each box centre."""
    nodes, outputs = [], []
    arrays = {}
    for stride in STRIDES:
        grid = size // stride
        n = grid * grid * 2
        scores = np.full((n, 1), 0.01, np.float32)
        boxes = np.zeros((n, 4), np.float32)
        if stride == 16:
            for x1, y1, x2, y2, score in planted:
                gx, gy = round((x1 + x2) / 2 / stride), round((y1 + y2) / 2 / stride)
                row = (gy * grid + gx) * 2
                ax, ay = gx * stride, gy * stride
                scores[row] = score
                boxes[row] = np.array([ax - x1, ay - y1, x2 - ax, y2 - ay]) / stride
        arrays["score", stride] = scores
        arrays["bbox", stride] = boxes
        arrays["kps", stride] = np.zeros((n, 10), np.float32)
    for kind in ("score", "bbox", "kps"):
        for stride in STRIDES:
            value = arrays[kind, stride]
            name = f"{kind}_{stride}"
            tensor = helper.make_tensor(
                f"{name}_value", TensorProto.FLOAT, value.shape, value.ravel()
            )
            nodes.append(helper.make_node("Constant", [], [name], value=tensor))
            outputs.append(helper.make_tensor_value_info(name, TensorProto.FLOAT, value.shape))
    image = helper.make_tensor_value_info("input.1", TensorProto.FLOAT, [1, 3, size, size])
    graph = helper.make_graph(nodes, "scrfd_stub", [image], outputs)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, str(path))


PLANTED = [(100, 120, 200, 250, 0.9), (400, 100, 460, 170, 0.8)]


@pytest.fixture
def scrfd_pack(tmp_path: Path) -> Path:
    pack = tmp_path / "pack"
    pack.mkdir()
    make_scrfd_stub(pack / "det_stub.onnx", PLANTED)
    return pack


def test_insightface_backend_decodes_planted_boxes(scrfd_pack: Path) -> None:
    detector = create_detector("insightface", face_models=scrfd_pack, download=False)
    assert detector.name == "insightface"
    (same,) = detector.detect(np.zeros((1, 480, 640, 3), np.uint8))  # fits 640 x 640 as it is
    (double,) = detector.detect(np.zeros((1, 960, 1280, 3), np.uint8))  # shrunk by 2 to fit
    assert same == pytest.approx(np.array(PLANTED, np.float32), abs=1e-3)
    expected = np.array(PLANTED, np.float32) * [2, 2, 2, 2, 1]
    assert double == pytest.approx(expected, abs=1e-3)


def test_auto_is_mtcnn_even_with_a_pack(scrfd_pack: Path) -> None:
    assert create_detector("auto", face_models=scrfd_pack).name == "mtcnn"


def test_insightface_without_a_pack_says_how_to_get_one(tmp_path: Path) -> None:
    with pytest.raises(DetectorUnavailableError, match="--face-models"):
        create_detector("insightface", face_models=tmp_path, download=False)
    with pytest.raises(ValueError, match="unknown detector"):
        create_detector("haar")


def sample_frames(name: str, indices: list[int]) -> np.ndarray:
    with open_video(SAMPLE_VIDEOS / name) as video:
        return video.frames(indices)


def test_dlib_finds_the_real_faces() -> None:
    detector = create_detector("dlib")
    group = [
        keep_faces(b, 848, 586)
        for b in detector.detect(sample_frames("group_conversation.mp4", [0, 90]))
    ]
    assert [len(b) for b in group] == [6, 6]
    (single,) = detector.detect(sample_frames("single_speaker.mp4", [0]))
    assert len(keep_faces(single, 640, 480)) == 1
    assert 0.5 < single[0, 4] <= 1.0


def test_dlib_finds_large_faces_in_hd_frames() -> None:
    # The single speaker's frames at 1920 x 1080: a large, soft face, as in HD interviews.
    frames = sample_frames("single_speaker.mp4", list(range(0, 200, 12)))
    hd = np.stack(
        [np.asarray(Image.fromarray(f).resize((1920, 1080), Image.BICUBIC)) for f in frames]
    )
    found = create_detector("dlib").detect(hd)
    seen = sum(len(keep_faces(b, 1920, 1080)) == 1 for b in found)
    assert seen >= 0.7 * len(hd), f"face found in {seen} of {len(hd)} HD frames"


def test_dlib_finds_no_face_in_faceless_images() -> None:
    detector = create_detector("dlib")
    gradient = np.broadcast_to(
        np.linspace(0, 255, 640, dtype=np.uint8)[None, :, None], (480, 640, 3)
    )
    found = detector.detect(np.stack([data.coffee()[:400, :600], gradient[:400, :600]]))
    assert [len(keep_faces(b, 600, 400)) for b in found] == [0, 0]


def test_keep_faces_filters() -> None:
    boxes = np.array(
        [
            [-10, 0, 90, 100, 0.9],
            [0, 0, 10, 10, 0.9],
            [200, 0, 260, 60, 0.4],
            [300, 0, 350, 50, 0.8],
        ],
        np.float32,
    )
    kept = keep_faces(boxes, 320, 240, threshold=0.5, min_face_px=20)
    # Sizes are judged inside the frame; the boxes stay as detected, for the official crop rule.
    assert kept[:, :4].tolist() == [[-10, 0, 90, 100], [300, 0, 350, 50]]
    assert keep_faces(boxes, 320, 240, threshold=0.0, min_face_px=0, max_faces=1)[
        0, 4
    ] == pytest.approx(0.9)


def test_tracker_keeps_ids_through_motion_and_ends_after_a_gap() -> None:
    tracker = FaceTracker(iou_threshold=0.3, max_gap_s=1.0)
    a = np.array([[0, 0, 50, 50, 1.0]])
    b = np.array([[200, 0, 250, 50, 1.0]])
    ids = []
    for step in range(10):  # two faces moving right, 10 px per 0.2 s
        shift = np.array([[10 * step, 0, 10 * step, 0, 0]])
        ids.append(tracker.update(0.2 * step, np.concatenate([b + shift, a + shift])).tolist())
    assert ids == [[0, 1]] * 10
    assert tracker.update(5.0, b).tolist() == [2]  # unseen for more than 1 s: a new person


def test_fill_gaps_interpolates_inside_and_holds_at_the_ends() -> None:
    boxes = np.zeros((5, 4), np.float32)
    boxes[1] = [0, 0, 10, 10]
    boxes[3] = [20, 0, 30, 10]
    filled = fill_gaps(boxes, np.array([False, True, False, True, False]))
    assert filled[:, 0].tolist() == [0, 0, 10, 20, 20]


def test_face_region_follows_the_official_square_and_clip_rule() -> None:
    assert face_region(np.array([100, 100, 140, 180]), 640, 480) == (80, 100, 160, 180)
    assert face_region(np.array([100, 100, 141, 180]), 640, 480) == (81, 100, 160, 180)  # diff // 2
    # At the frame's edges the square is clipped, not shifted: a narrower region, stretched later.
    assert face_region(np.array([0, 10, 40, 90]), 640, 480) == (0, 10, 60, 90)
    assert face_region(np.array([600, 400, 640, 480]), 640, 480) == (580, 400, 640, 480)
    assert face_region(np.array([0, 0, 640, 300]), 640, 480) == (0, 0, 640, 470)
    # The corner is clamped before squaring, as the official code does; then the square is clipped.
    assert face_region(np.array([-8, -4, 40, 60]), 640, 480) == (0, 0, 50, 60)


def test_crops_match_pil_bilinear_resize() -> None:
    frame = np.ascontiguousarray(data.astronaut())
    box = np.array([175, 76, 265, 166], np.float32)  # the astronaut's face, 90 px: enlarged
    big = np.array([20, 20, 500, 500], np.float32)  # 480 px: shrunk, antialiased
    crops = crop_faces([frame, frame], np.stack([box, big]))
    assert crops.dtype == torch.uint8 and crops.shape == (2, 3, 224, 224)
    for crop, b in zip(crops, (box, big), strict=True):
        x0, y0, x1, y1 = face_region(b, 512, 512)
        pil = Image.fromarray(frame[y0:y1, x0:x1]).resize((224, 224), Image.BILINEAR)
        diff = np.abs(crop.permute(1, 2, 0).numpy().astype(int) - np.asarray(pil).astype(int))
        assert diff.max() <= 2 and diff.mean() < 0.5


def test_crops_are_not_plain_nearest_or_unfiltered() -> None:
    frame = np.ascontiguousarray(data.astronaut())
    crop = crop_faces([frame], np.array([[0, 0, 512, 512]], np.float32))[0].float()[None]
    plain = F.interpolate(
        torch.from_numpy(frame).permute(2, 0, 1)[None].float(), size=224, mode="bilinear"
    )
    assert (crop - plain).abs().mean() > 0.5  # antialiasing changes a shrink


def test_iou() -> None:
    a = np.array([[0, 0, 10, 10]], np.float32)
    assert iou(a, np.array([[5, 0, 15, 10], [20, 20, 30, 30]], np.float32)).tolist() == [
        [pytest.approx(1 / 3), 0.0]
    ]
