"""MTCNN weights from the ``mtcnn`` package, converted once to torch and cached as safetensors.

The MIT-licensed ``mtcnn`` package on PyPI ships the three networks as lz4
joblib files (lists of numpy arrays in TensorFlow layout); their numbers are
facenet-pytorch's. The package itself is never imported (its ``__init__``
imports TensorFlow): the files are found through its installed RECORD, their
sha256 must equal the published release's before anything is read, and they
are unpickled with a loader that accepts only numpy arrays. The converted
state dicts live in ``$MMADFER_HOME/detectors/mtcnn.safetensors``, tagged with
the sources' checksum, so later runs read safetensors only.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import inspect
import os
import tempfile
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from mmadfer_cli.faces.detection import DetectorUnavailableError
from mmadfer_cli.model.registry import file_sha256, home

NETS = ("pnet", "rnet", "onet")
# sha256 of mtcnn 1.0.0's assets/weights/{net}.lz4: only these exact bytes are ever unpickled.
SOURCE_SHA256 = {
    "pnet": "ea6b0c3e685ebee3165326ad6484acc95f2ef78f1c94fbf40a55704fa989f7b5",
    "rnet": "cb00e6460f3c98b0bfafaba3c0a0ded4bdf6e62cee7174d969e8670d7e757fee",
    "onet": "94f6ea2f4cf985275ee958cdd762d17b6009348a4fb9d8c6be39ba73ffd22ca3",
}
# The arrays of each file, in order, as facenet-pytorch names them. The TensorFlow files put the
# box regression head before the face probability head (and O-Net's landmarks between them).
_CONV_BLOCKS = {"pnet": 3, "rnet": 3, "onet": 4}
_HEADS = {
    "pnet": ["conv4_2", "conv4_1"],
    "rnet": ["dense4", "prelu4", "dense5_2", "dense5_1"],
    "onet": ["dense5", "prelu5", "dense6_2", "dense6_3", "dense6_1"],
}
CHECKSUM_KEY = "mtcnn_sources_sha256"


def _layer_names(net: str) -> list[str]:
    names = []
    for i in range(1, _CONV_BLOCKS[net] + 1):
        names += [f"conv{i}.weight", f"conv{i}.bias", f"prelu{i}.weight"]
    for layer in _HEADS[net]:
        names += (
            [f"{layer}.weight"]
            if layer.startswith("prelu")
            else [
                f"{layer}.weight",
                f"{layer}.bias",
            ]
        )
    return names


def source_files() -> dict[str, Path]:
    """The installed ``mtcnn`` package's weight files, by network."""
    try:
        files = importlib.metadata.files("mtcnn") or []
    except importlib.metadata.PackageNotFoundError as error:
        raise DetectorUnavailableError(
            "the MTCNN face detector needs the `mtcnn` package for its weights: "
            "pip install 'mtcnn>=1.0'"
        ) from error
    found = {}
    for net in NETS:
        entry = next((f for f in files if str(f).endswith(f"assets/weights/{net}.lz4")), None)
        path = Path(entry.locate()) if entry is not None else None
        if path is None or not path.is_file():
            raise DetectorUnavailableError(
                f"MTCNN weight file {net}.lz4 is missing from the installed `mtcnn` package "
                f"({path or 'not listed'}); reinstall it: pip install --force-reinstall 'mtcnn>=1.0'"
            )
        found[net] = path
    return found


def _check_source(net: str, path: Path) -> None:
    digest = file_sha256(path)
    if digest != SOURCE_SHA256[net]:
        raise DetectorUnavailableError(
            f"MTCNN weight file {path} is not the published one (sha256 {digest[:16]}..., "
            f"expected {SOURCE_SHA256[net][:16]}...); it was altered or is another release: "
            "reinstall with pip install --force-reinstall 'mtcnn==1.0.0'"
        )


def _read_arrays(path: Path) -> list[np.ndarray]:
    """The list of arrays in a joblib file, refusing any pickled object but numpy arrays."""
    import lz4.frame
    from joblib.numpy_pickle import NumpyUnpickler

    allowed = {
        ("joblib.numpy_pickle", "NumpyArrayWrapper"),
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
    }

    class ArraysOnly(NumpyUnpickler):
        def find_class(self, module: str, name: str) -> object:
            if (module, name) not in allowed:
                raise DetectorUnavailableError(f"{path} holds {module}.{name}, not only arrays")
            return super().find_class(module, name)

    with lz4.frame.open(path, "rb") as fh:
        if "ensure_native_byte_order" in inspect.signature(NumpyUnpickler.__init__).parameters:
            unpickler = ArraysOnly(str(path), fh, ensure_native_byte_order=True)
        else:  # joblib < 1.5
            unpickler = ArraysOnly(str(path), fh)
        arrays = unpickler.load()
    if not isinstance(arrays, list) or not all(isinstance(a, np.ndarray) for a in arrays):
        raise DetectorUnavailableError(f"{path} is not a list of weight arrays")
    return arrays


def _to_torch(array: np.ndarray) -> torch.Tensor:
    """TensorFlow layout to torch: HWIO kernels -> OIHW, (in, out) dense -> (out, in),
    PReLU slopes (1, 1, C) -> (C,)."""
    tensor = torch.from_numpy(np.ascontiguousarray(array, dtype=np.float32))
    if tensor.ndim == 4:
        return tensor.permute(3, 2, 0, 1).contiguous()
    if tensor.ndim == 3:
        return tensor.reshape(-1).contiguous()
    if tensor.ndim == 2:
        return tensor.t().contiguous()
    return tensor


def convert(files: dict[str, Path]) -> dict[str, dict[str, torch.Tensor]]:
    """State dicts of the three networks from the package's files (sources checked first)."""
    out = {}
    for net in NETS:
        _check_source(net, files[net])
        arrays = _read_arrays(files[net])
        names = _layer_names(net)
        if len(arrays) != len(names):
            raise DetectorUnavailableError(
                f"{files[net]} holds {len(arrays)} arrays, expected {len(names)}"
            )
        out[net] = {name: _to_torch(a) for name, a in zip(names, arrays, strict=True)}
    return out


def sources_checksum() -> str:
    """One sha256 over the three published files' digests: names the weights in run metadata."""
    return hashlib.sha256("".join(SOURCE_SHA256[n] for n in NETS).encode()).hexdigest()


def cache_path() -> Path:
    return home() / "detectors" / "mtcnn.safetensors"


def load_state_dicts() -> dict[str, dict[str, torch.Tensor]]:
    """The converted weights: from the cache when it was made from the published files, else
    converted now from the installed package and cached."""
    path = cache_path()
    checksum = sources_checksum()
    cached = _read_cache(path, checksum)
    if cached is not None:
        return cached
    state = convert(source_files())
    _write_cache(path, state, checksum)
    return state


def _read_cache(path: Path, checksum: str) -> dict[str, dict[str, torch.Tensor]] | None:
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(path), framework="pt") as f:
            if (f.metadata() or {}).get(CHECKSUM_KEY) != checksum:
                return None
        flat = load_file(str(path))
    except (OSError, ValueError, RuntimeError, SafetensorError):
        return None  # absent, damaged or foreign: converted again
    state: dict[str, dict[str, torch.Tensor]] = {net: {} for net in NETS}
    for key, tensor in flat.items():
        net, _, name = key.partition(".")
        if net in state:
            state[net][name] = tensor
    if any(len(state[net]) != len(_layer_names(net)) for net in NETS):
        return None
    return state


def _write_cache(path: Path, state: dict[str, dict[str, torch.Tensor]], checksum: str) -> None:
    """Atomic, and harmless when several workers convert at once; a read-only cache is skipped."""
    flat = {f"{net}.{name}": t for net, tensors in state.items() for name, t in tensors.items()}
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".mtcnn.", suffix=".tmp", dir=path.parent)
        os.close(fd)
        try:
            save_file(flat, tmp, metadata={CHECKSUM_KEY: checksum})
            os.replace(tmp, path)
        finally:
            Path(tmp).unlink(missing_ok=True)
    except OSError:
        pass
