"""The accurate detector: SCRFD from an insightface model pack, run by insightface itself.

A pack is a folder of ONNX files (``buffalo_l`` by default, under
``~/.insightface/models``) or a newer manifest-described package; the
detection model is picked the way insightface picks it. ONNX Runtime uses the
GPU when its CUDA provider is installed and falls back to the CPU.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

DEFAULT_PACK = "buffalo_l"
DEFAULT_ROOT = Path("~/.insightface").expanduser()
DET_SIZE = (640, 640)


def default_pack_dir() -> Path:
    return DEFAULT_ROOT / "models" / DEFAULT_PACK


def find_pack(face_models: Path | None) -> Path | None:
    """The pack folder to use: ``face_models`` when given, else insightface's default, if present."""
    pack = Path(face_models).expanduser() if face_models is not None else default_pack_dir()
    if pack.is_dir() and (any(pack.glob("*.onnx")) or _has_manifest(pack)):
        return pack
    return None


def _has_manifest(pack: Path) -> bool:
    from insightface.model_zoo.package_manifest import has_model_package_manifest

    return pack.is_dir() and bool(has_model_package_manifest(str(pack)))


def _is_detector(onnx_file: Path) -> bool:
    """SCRFD-style detectors have at least five outputs (insightface's own routing rule)."""
    import onnx

    model = onnx.load_model(str(onnx_file), load_external_data=False)
    return len(model.graph.output) >= 5


class InsightFaceDetector:
    """SCRFD through ``insightface.model_zoo``; frames are RGB, insightface wants BGR."""

    name = "insightface"

    def __init__(self, pack: Path, threshold: float = 0.5, providers: list[str] | None = None):
        from insightface.model_zoo import get_model
        from insightface.model_zoo.onnxruntime_utils import get_default_providers

        providers = providers or get_default_providers()
        if _has_manifest(pack):
            model = get_model(str(pack), model_task="detection", providers=providers)
        else:
            candidates = [f for f in sorted(pack.glob("*.onnx")) if _is_detector(f)]
            if not candidates:
                raise FileNotFoundError(f"no face detection model (SCRFD) in {pack}")
            model = get_model(str(candidates[0]), providers=providers)
        if model is None or getattr(model, "taskname", None) != "detection":
            raise FileNotFoundError(f"{pack} has no face detection model insightface can load")
        on_gpu = any("CUDA" in p for p in model.session.get_providers())
        model.prepare(0 if on_gpu else -1, input_size=DET_SIZE, det_thresh=threshold)
        self.providers = list(model.session.get_providers())
        self.pack = pack
        self._model = model

    def detect(self, frames: np.ndarray) -> list[np.ndarray]:
        out = []
        for frame in frames:
            boxes, _ = self._model.detect(np.ascontiguousarray(frame[..., ::-1]))
            out.append(np.asarray(boxes, dtype=np.float32).reshape(-1, 5))
        return out
