"""Faces: detectors (insightface SCRFD, the offline dlib fallback), tracking and crops."""

from __future__ import annotations

import warnings
from pathlib import Path

from mmadfer_cli.faces.detection import DetectorUnavailableError, FaceDetector, keep_faces

DETECTORS = ("auto", "insightface", "dlib")
FALLBACK = "dlib"


class FallbackDetectorWarning(UserWarning):
    """No insightface pack was found; the less accurate offline detector is used."""


_warned = False


def _warn_fallback(searched: Path) -> None:
    global _warned
    if _warned:
        return
    _warned = True
    warnings.warn(
        f"no insightface model pack at {searched}: using the offline dlib face detector, which "
        "misses more faces (profiles, small or dim faces). For the accurate SCRFD detector run "
        "once with network access and `--detector insightface` (insightface downloads buffalo_l "
        "to ~/.insightface/models), or unpack buffalo_l anywhere and pass `--face-models DIR`.",
        FallbackDetectorWarning,
        stacklevel=3,
    )


def create_detector(
    name: str = "auto",
    face_models: Path | None = None,
    threshold: float = 0.5,
    download: bool = True,
) -> FaceDetector:
    """A face detector by name.

    ``auto``: insightface when a pack is found (``face_models`` or
    ``~/.insightface/models/buffalo_l``), else the offline ``dlib`` detector
    with a one-time warning. ``insightface``: that pack, downloaded by
    insightface when missing and ``download`` is true; raises
    ``DetectorUnavailableError`` when it cannot be had.
    """
    from mmadfer_cli.faces import insightface_backend as ifb

    if name not in DETECTORS:
        raise ValueError(f"unknown detector {name!r}; choose one of {', '.join(DETECTORS)}")
    if name == FALLBACK:
        from mmadfer_cli.faces.dlib_backend import DlibHogDetector

        return DlibHogDetector(threshold=threshold)
    pack = ifb.find_pack(face_models)
    if pack is None and name == "auto":
        _warn_fallback(Path(face_models) if face_models is not None else ifb.default_pack_dir())
        return create_detector(FALLBACK, threshold=threshold)
    if pack is None:
        if face_models is not None or not download:
            where = face_models if face_models is not None else ifb.default_pack_dir()
            raise DetectorUnavailableError(
                f"no insightface model pack at {where}: pass --face-models DIR with an unpacked "
                "pack (e.g. buffalo_l), or use --detector auto/dlib for the offline detector"
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
            "and pass --face-models DIR, or use --detector dlib"
        ) from error


__all__ = [
    "DETECTORS",
    "DetectorUnavailableError",
    "FaceDetector",
    "FallbackDetectorWarning",
    "create_detector",
    "keep_faces",
]
