"""Faces: detectors (MTCNN as the official preprocessing runs it, insightface SCRFD, dlib HOG),
tracking, crops and the embeddings that re-identify faces."""

from __future__ import annotations

from pathlib import Path

import torch

from mmadfer_cli.faces.detection import DetectorUnavailableError, FaceDetector, keep_faces

DETECTORS = ("auto", "mtcnn", "insightface", "dlib")
DEFAULT = "mtcnn"


def create_detector(
    name: str = "auto",
    face_models: Path | None = None,
    threshold: float = 0.5,
    download: bool = True,
    device: str | torch.device = "cpu",
    min_face: int = 20,
) -> FaceDetector:
    """A face detector by name.

    ``auto`` and ``mtcnn``: MTCNN, the detector the model's training faces were
    cut with (weights from the installed ``mtcnn`` package), on ``device``,
    searching faces from ``min_face`` pixels up (20, the official setting, by
    default; larger is faster on large frames).
    ``insightface``: SCRFD from a model pack (``face_models`` or
    ``~/.insightface/models/buffalo_l``), downloaded by insightface when missing
    and ``download`` is true. ``dlib``: dlib's HOG detector. Raises
    ``DetectorUnavailableError`` when the detector cannot be had; the message
    says how to fix it.
    """
    if name not in DETECTORS:
        raise ValueError(f"unknown detector {name!r}; choose one of {', '.join(DETECTORS)}")
    if name in ("auto", DEFAULT):
        from mmadfer_cli.faces.mtcnn import MtcnnDetector

        return MtcnnDetector(device=device, min_face=min_face)
    if name == "dlib":
        from mmadfer_cli.faces.dlib_backend import DlibHogDetector

        return DlibHogDetector(threshold=threshold)
    return _insightface(face_models, threshold, download)


def _insightface(face_models: Path | None, threshold: float, download: bool) -> FaceDetector:
    from mmadfer_cli.faces import insightface_backend as ifb

    pack = ifb.find_pack(face_models)
    if pack is None:
        if face_models is not None or not download:
            where = face_models if face_models is not None else ifb.default_pack_dir()
            raise DetectorUnavailableError(
                f"no insightface model pack at {where}: pass --face-models DIR with an unpacked "
                "pack (e.g. buffalo_l), or use --detector mtcnn (the default, offline)"
            )
        pack = _download_default_pack()
    try:
        return ifb.InsightFaceDetector(pack, threshold=threshold)
    except Exception as error:
        raise DetectorUnavailableError(
            f"cannot load the insightface pack {pack}: {error}"
        ) from error


def _download_default_pack() -> Path:
    """Let insightface fetch buffalo_l into its default root."""
    from insightface.utils import ensure_available

    from mmadfer_cli.faces import insightface_backend as ifb

    try:
        return Path(ensure_available("models", ifb.DEFAULT_PACK, root=str(ifb.DEFAULT_ROOT)))
    except Exception as error:
        raise DetectorUnavailableError(
            f"insightface could not download {ifb.DEFAULT_PACK} ({error}); place an unpacked pack "
            "and pass --face-models DIR, or use --detector mtcnn"
        ) from error


def detector_weights(detector: FaceDetector) -> str | None:
    """A checksum of the detector's weights, for run metadata, where the backend has one."""
    return getattr(detector, "weights_sha256", None)


__all__ = [
    "DETECTORS",
    "DetectorUnavailableError",
    "FaceDetector",
    "create_detector",
    "detector_weights",
    "keep_faces",
]
