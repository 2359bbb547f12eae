"""MTCNN: the official preprocessing's faces (reference boxes), batching, devices, weights."""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import pickle
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from skimage import data

from mmadfer_cli.faces import DetectorUnavailableError, create_detector, mtcnn_kernels
from mmadfer_cli.faces import mtcnn_weights as weights
from mmadfer_cli.faces.mtcnn import MtcnnDetector, _inputs, _integral, pyramid_scales
from mmadfer_cli.faces.mtcnn_nets import _max_pool_2x2, _prelu
from mmadfer_cli.faces.nms import grouped_nms
from mmadfer_cli.faces.tracking import iou
from tests.conftest import REPO


@pytest.fixture(scope="module")
def detector() -> MtcnnDetector:
    return MtcnnDetector("cpu")


def _reference_frames(reference_dir: Path) -> tuple[dict, list[str], list[np.ndarray]]:
    ref = json.loads((reference_dir / "mtcnn_sample_videos.json").read_text())
    for video, digest in ref["videos_sha256"].items():
        if hashlib.sha256((REPO / video).read_bytes()).hexdigest() != digest:
            pytest.skip(f"{video} is not the video the reference boxes were made on")
    keys, frames = [], []
    for key in ref["frames"]:  # "video:PATH:INDEX"
        # The reference read them with decord 0.6; the tool's reader gives the same pixels on
        # these videos, bit for bit (benchmarks/reader_frames.py).
        _, path, index = key.split(":")
        frames.append(_frames(Path(path).name, [int(index)])[0])
        keys.append(key)
    return ref, keys, frames


def test_boxes_match_the_official_preprocessing(
    reference_dir: Path, detector: MtcnnDetector
) -> None:
    ref, keys, frames = _reference_frames(reference_dir)
    found = detector.detect(frames)
    matched_ref = matched_ours = total_ref = total_ours = 0
    corner_errors = []
    for key, ours in zip(keys, found, strict=True):
        theirs = np.array(ref["frames"][key]["cpu"], np.float32).reshape(-1, 5)
        total_ref, total_ours = total_ref + len(theirs), total_ours + len(ours)
        if len(theirs) == 0 or len(ours) == 0:
            continue
        overlap = iou(theirs[:, :4], ours[:, :4])
        matched_ref += int((overlap.max(axis=1) >= 0.9).sum())
        matched_ours += int((overlap.max(axis=0) >= 0.9).sum())
        for i, j in enumerate(overlap.argmax(axis=1)):
            if overlap[i, j] >= 0.9:
                corner_errors.append(np.abs(theirs[i, :4] - ours[j, :4]).max())
    assert total_ref == 162
    assert matched_ref >= 0.97 * total_ref, f"{matched_ref} of {total_ref} reference faces"
    assert matched_ours >= 0.97 * total_ours, f"{matched_ours} of {total_ours} detections"
    assert np.median(corner_errors) <= 0.5


def _frames(name: str, indices: list[int]) -> np.ndarray:
    from mmadfer_cli.media.video import open_video

    with open_video(REPO / "sample_videos" / name) as video:
        return video.frames(indices)


def _same(a: list[np.ndarray], b: list[np.ndarray], tol: float) -> None:
    assert [len(x) for x in a] == [len(x) for x in b]
    for x, y in zip(a, b, strict=True):
        np.testing.assert_allclose(x, y, atol=tol)


def test_batched_equals_one_frame_at_a_time(detector: MtcnnDetector) -> None:
    frames = _frames("group_conversation.mp4", [0, 60, 150])
    batched = detector.detect(frames)
    assert [len(b) for b in batched] == [6, 6, 6]
    _same(batched, [detector.detect(frame[None])[0] for frame in frames], tol=1e-3)


def test_one_thread_finds_the_same_faces(detector: MtcnnDetector) -> None:
    # A worker with one thread (more workers than half the cores, a Ray chunk task) rounds
    # P-Net's last layer differently (README, --workers): the same faces, boxes in their last bits.
    frames = _frames("group_conversation.mp4", [0, 90, 170])
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        two = detector.detect(frames)
        torch.set_num_threads(1)
        one = detector.detect(frames)
    finally:
        torch.set_num_threads(threads)
    assert [len(b) for b in two] == [6, 6, 5]
    _same(one, two, tol=1e-3)


def test_crops_scored_in_small_calls_give_the_same_faces() -> None:
    # R-Net and O-Net score the candidates a few at a time on the CPU (their maps stay in
    # cache): every candidate must be scored once, in order, whatever the call size.
    frames = _frames("group_conversation.mp4", [0, 60, 150])
    whole = MtcnnDetector("cpu")
    whole.crop_batch = 1 << 20
    one_call = whole.detect_faces(frames)
    few = MtcnnDetector("cpu")
    few.crop_batch = 7  # a partial last call at both stages
    small = few.detect_faces(frames)
    assert [len(f.boxes) for f in small] == [6, 6, 6]
    _same([f.boxes for f in small], [f.boxes for f in one_call], tol=1e-3)
    _same([f.landmarks for f in small], [f.landmarks for f in one_call], tol=1e-3)


def test_candidates_wholly_outside_the_frame_are_dropped(detector: MtcnnDetector) -> None:
    table = _integral(torch.zeros(1, 50, 60, 3, dtype=torch.uint8))
    boxes = torch.tensor([[100.0, 100.0, 130.0, 130.0, 0.9], [10.0, 10.0, 40.0, 40.0, 0.9]])
    frame = torch.zeros(2, dtype=torch.long)
    with torch.inference_mode():
        for net, size in ((detector.rnet, 24), (detector.onet, 48)):
            (reg, *_, probs), kept, frames = detector._scored(
                net, table, boxes, frame, size, 60, 50
            )
            assert torch.equal(kept, boxes[1:]) and frames.tolist() == [0]
            assert len(reg) == len(probs) == 1
            (reg, *_, probs), kept, frames = detector._scored(
                net, table, boxes[:1], frame[:1], size, 60, 50
            )
            assert len(kept) == len(frames) == len(reg) == len(probs) == 0


def test_frames_of_several_sizes_in_one_call(detector: MtcnnDetector) -> None:
    group = _frames("group_conversation.mp4", [30])
    single = _frames("single_speaker.mp4", [0, 100])
    mixed = detector.detect([single[0], group[0], single[1]])
    _same(
        mixed,
        [*detector.detect(single[:1]), *detector.detect(group), *detector.detect(single[1:])],
        1e-3,
    )
    assert [len(b) for b in mixed] == [1, 6, 1]


@pytest.mark.parametrize("size", [(1, 1), (7, 9), (8, 8), (22, 21), (13, 46)])
@pytest.mark.parametrize("channels", [10, 16, 28])
def test_fast_pooling_and_prelu_equal_pytorch(size: tuple[int, int], channels: int) -> None:
    # P-Net's own pooling and PReLU must give PyTorch's values bit for bit: the boxes rest on it.
    torch.manual_seed(channels)
    for batch in (1, 3, 8):  # 3: a pixel count the channel regrouping cannot divide
        x = torch.randn(batch, channels, *size).contiguous(memory_format=torch.channels_last)
        weight = torch.randn(channels)
        pooled = _max_pool_2x2(x)
        assert pooled.is_contiguous(memory_format=torch.channels_last)
        assert torch.equal(pooled, torch.nn.functional.max_pool2d(x, 2, 2, ceil_mode=True))
        assert torch.equal(_prelu(x, weight), torch.prelu(x, weight))
        assert torch.equal(_prelu(x.contiguous(), weight), torch.prelu(x, weight))


@pytest.mark.parametrize("height", [1, 15, 16, 17, 48, 481])
def test_summed_area_table_is_exact(height: int) -> None:
    frames = torch.randint(0, 256, (2, height, 5, 3), dtype=torch.uint8)
    table = _integral(frames)
    expected = frames.to(torch.int64).cumsum(1).cumsum(2)
    assert torch.equal(table[:, 1:, 1:].to(torch.int64), expected)
    assert not table[:, 0].any() and not table[:, :, 0].any()


def test_net_inputs_are_the_area_means_scaled_as_mtcnn_scales_them_bit_for_bit() -> None:
    # The reference: the bin mean (sum / height / width), then (mean - 127.5) / 128.
    generator = torch.Generator().manual_seed(0)
    rows = torch.randint(1, 60, (200,), generator=generator)
    cols = torch.randint(1, 60, (300,), generator=generator)
    most = 255 * rows[:, None, None] * cols[None, :, None]
    fraction = torch.rand(200, 300, 3, generator=generator, dtype=torch.float64)
    sums = (fraction * most).long()
    sums[:, :, 0], sums[:, :, 1] = 0, most[..., 0]  # the extremes
    expected = (sums.float() / rows[:, None, None] / cols[None, :, None] - 127.5) * 0.0078125
    assert torch.equal(_inputs(sums.int(), rows, cols), expected)


def test_no_face_no_box(detector: MtcnnDetector) -> None:
    gradient = np.broadcast_to(
        np.linspace(0, 255, 600, dtype=np.uint8)[None, :, None], (400, 600, 3)
    )
    found = detector.detect(np.stack([np.ascontiguousarray(data.coffee()[:400, :600]), gradient]))
    assert [len(b) for b in found] == [0, 0]
    tiny = detector.detect(np.zeros((1, 16, 16, 3), np.uint8))  # smaller than any face: no pyramid
    assert pyramid_scales(16, 16) == [] and len(tiny[0]) == 0


def test_landmarks_sit_on_the_face(detector: MtcnnDetector) -> None:
    (faces,) = detector.detect_faces(np.ascontiguousarray(data.astronaut())[None])
    assert faces.boxes.shape == (1, 5) and faces.landmarks.shape == (1, 5, 2)
    x1, y1, x2, y2, p = faces.boxes[0]
    points = faces.landmarks[0]
    assert p > 0.99
    assert (
        (points[:, 0] > x1) & (points[:, 0] < x2) & (points[:, 1] > y1) & (points[:, 1] < y2)
    ).all()
    right_eye, left_eye, nose, mouth_right, mouth_left = points
    assert right_eye[0] < left_eye[0] and mouth_right[0] < mouth_left[0]
    assert max(right_eye[1], left_eye[1]) < nose[1] < min(mouth_right[1], mouth_left[1])


def test_auto_is_mtcnn_on_the_requested_device() -> None:
    detector = create_detector("auto", device="cpu")
    assert detector.name == "mtcnn" and detector.weights_sha256 == weights.sources_checksum()


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_finds_the_same_faces_as_the_cpu(detector: MtcnnDetector) -> None:
    frames = [
        *_frames("group_conversation.mp4", [0, 90, 170]),
        *_frames("single_speaker.mp4", [0, 100]),
    ]
    overlaps, corner_errors = [], []
    for ours, cpu in zip(
        MtcnnDetector("cuda").detect(frames), detector.detect(frames), strict=True
    ):
        assert len(ours) == len(cpu)
        overlap = iou(cpu[:, :4], ours[:, :4])
        overlaps += overlap.max(axis=1).tolist()
        corner_errors += [
            np.abs(cpu[i, :4] - ours[j, :4]).max() for i, j in enumerate(overlap.argmax(1))
        ]
    # As with facenet-pytorch itself (up to 4 px between its CPU and CUDA boxes), float rounding on
    # the GPU can let a neighbouring candidate survive suppression; the rest agree within a pixel.
    assert min(overlaps) >= 0.7 and np.mean(np.array(overlaps) >= 0.9) >= 0.9
    assert np.mean(np.array(corner_errors) <= 1.0) >= 0.9 and np.median(corner_errors) <= 0.1


def _greedy(
    boxes: np.ndarray, scores: np.ndarray, threshold: float, plus_one: float, by_min: bool
) -> list[int]:
    area = (boxes[:, 2] - boxes[:, 0] + plus_one) * (boxes[:, 3] - boxes[:, 1] + plus_one)
    kept: list[int] = []
    for i in np.argsort(-scores, kind="stable"):
        w = np.clip(
            np.minimum(boxes[i, 2], boxes[kept, 2])
            - np.maximum(boxes[i, 0], boxes[kept, 0])
            + plus_one,
            0,
            None,
        )
        h = np.clip(
            np.minimum(boxes[i, 3], boxes[kept, 3])
            - np.maximum(boxes[i, 1], boxes[kept, 1])
            + plus_one,
            0,
            None,
        )
        inter = w * h
        over = (
            inter / np.minimum(area[i], area[kept])
            if by_min
            else inter / (area[i] + area[kept] - inter)
        )
        if not (over > threshold).any():
            kept.append(int(i))
    return kept


@pytest.mark.parametrize("form", ["compiled", "tensor"])
@pytest.mark.parametrize("mode", ["union", "min"])
def test_grouped_nms_equals_greedy_nms_per_group(
    mode: str, form: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # On the CPU the compiled greedy loop runs (mtcnn_kernels); on GPUs the tensor form.
    if form == "tensor":
        monkeypatch.setattr(mtcnn_kernels, "available", lambda: False)
    g = torch.Generator().manual_seed(1)
    corner = torch.rand(400, 2, generator=g) * 300
    boxes = torch.cat([corner, corner + 10 + torch.rand(400, 2, generator=g) * 60], dim=1)
    boxes[1], boxes[2, 2:] = boxes[0], boxes[2, :2]  # the same box twice; no area
    scores, groups = torch.rand(400, generator=g), torch.randint(0, 5, (400,), generator=g)
    scores[1] = scores[0]  # a tie: the first comes first
    got = grouped_nms(boxes, scores, groups, 0.5, mode).tolist()
    expected = []
    for k in range(5):
        idx = np.nonzero(groups.numpy() == k)[0]
        picked = _greedy(
            boxes[idx].numpy(), scores[idx].numpy(), 0.5, float(mode == "min"), mode == "min"
        )
        expected += [int(idx[i]) for i in picked]
    assert got == expected
    assert 0 < len(got) < 400


def _copy_sources(tmp_path: Path, monkeypatch) -> dict[str, Path]:
    copies = {}
    for net, path in weights.source_files().items():
        copies[net] = tmp_path / path.name
        shutil.copy(path, copies[net])
    monkeypatch.setattr(weights, "source_files", lambda: dict(copies))
    return copies


def test_converted_weights_are_cached_as_safetensors(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("MMADFER_HOME", str(tmp_path / "home"))
    state = weights.load_state_dicts()
    cache = weights.cache_path()
    assert cache.is_file() and cache.is_relative_to(tmp_path / "home")
    assert state["rnet"]["dense4.weight"].shape == (128, 576)
    assert state["pnet"]["conv1.weight"].shape == (10, 3, 3, 3)
    monkeypatch.setattr(weights, "convert", lambda files: pytest.fail("converted again"))
    again = weights.load_state_dicts()
    assert all(torch.equal(again["onet"][k], v) for k, v in state["onet"].items())
    cache.write_bytes(b"damaged")  # a damaged cache is made again, not trusted
    monkeypatch.undo()
    monkeypatch.setenv("MMADFER_HOME", str(tmp_path / "home"))
    assert torch.equal(
        weights.load_state_dicts()["pnet"]["conv1.bias"], state["pnet"]["conv1.bias"]
    )


def test_altered_weight_file_is_refused_by_name(tmp_path: Path, monkeypatch) -> None:
    copies = _copy_sources(tmp_path, monkeypatch)
    raw = bytearray(copies["rnet"].read_bytes())
    raw[len(raw) // 2] ^= 0xFF
    copies["rnet"].write_bytes(bytes(raw))
    with pytest.raises(DetectorUnavailableError, match=r"rnet\.lz4 is not the published one"):
        weights.convert(weights.source_files())


def test_missing_weight_file_is_named(monkeypatch) -> None:
    listed = [f for f in importlib.metadata.files("mtcnn") if not str(f).endswith("onet.lz4")]
    monkeypatch.setattr(weights.importlib.metadata, "files", lambda name: listed)
    with pytest.raises(DetectorUnavailableError, match=r"onet\.lz4 is missing"):
        weights.source_files()


def test_weight_reader_refuses_pickled_code(tmp_path: Path) -> None:
    import lz4.frame

    bad = tmp_path / "evil.lz4"
    with lz4.frame.open(bad, "wb") as fh:
        pickle.dump([print], fh)  # any callable other than numpy's array types is refused
    with pytest.raises(DetectorUnavailableError, match=r"builtins\.print"):
        weights._read_arrays(bad)
