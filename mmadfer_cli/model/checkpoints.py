"""Reading official MMA-DFER ``.pth`` files safely, and the tool's own ``.safetensors``.

An official checkpoint is a ``torch.save`` zip whose pickle holds the
``state_dict`` beside training state, including an object of the training
script's class ``__main__.RecorderMeter`` (with numpy arrays). Loading it
normally would import and run whatever the pickle names. Here it goes
through torch's weights-only unpickler: the training-state classes are
replaced by an inert placeholder, and a file naming any other callable
(``os.system``, ``builtins.eval`` ...) is refused before unpickling starts.
"""

from __future__ import annotations

import json
import pickletools
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file

from mmadfer_cli.model.labels import class_names_for
from mmadfer_cli.model.mmadfer import MMADFER, MMADFERConfig, build_model

FORMAT = "mmadfer"
FORMAT_VERSION = "1"
# Present in every released file, never used by the forward pass.
IGNORED_KEYS = frozenset(
    {
        "image_encoder.head.weight",
        "image_encoder.head.bias",
        "audio_model.head.weight",
        "audio_model.head.bias",
    }
)
# Training-state globals that may appear beside the weights; they become ``InertObject``.
_INERT_GLOBAL = re.compile(
    r"^(__main__\.\w+"
    r"|numpy\.(_core|core)\.multiarray\.(_reconstruct|scalar)"
    r"|numpy\.(ndarray|dtype)"
    r"|numpy\.dtypes\.\w+DType)$"
)
_SHOWN = 5


class CheckpointError(ValueError):
    """A file that is not a usable MMA-DFER checkpoint; the message says why."""


class InertObject:
    """Stands in for a pickled training-state object: accepts any arguments and state, does nothing."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        pass

    def __setstate__(self, state: object) -> None:
        pass


def load_checkpoint(path: str | Path, device: str | torch.device = "cpu") -> MMADFER:
    """The model from an official ``.pth`` or a ``.safetensors`` written by ``save_checkpoint``, in eval mode."""
    model, _ = read_checkpoint(path)
    return model.to(device).eval()


def read_checkpoint(path: str | Path) -> tuple[MMADFER, str]:
    """The model (on the CPU) and the file's kind: ``"official"`` or ``"safetensors"``."""
    path = Path(path)
    kind = _sniff(path)
    if kind == "safetensors":
        state, config = _read_safetensors(path)
    else:
        state = read_official_state_dict(path)
        config = _infer_config(state)
    model = build_model(config)
    _check_keys(model, state, path)
    model.load_state_dict(state, strict=True)
    return model.eval(), "official" if kind == "zip" else kind


def save_checkpoint(model: MMADFER, path: str | Path) -> None:
    """Write the weights as safetensors, with the configuration and class names in the metadata."""
    state = {k: v.detach().to("cpu").contiguous() for k, v in model.state_dict().items()}
    metadata = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "config": json.dumps(model.config.to_dict()),
    }
    save_file(state, str(path), metadata=metadata)


def _sniff(path: Path) -> str:
    if not path.is_file():
        raise CheckpointError(f"{path}: no such file")
    size = path.stat().st_size
    with path.open("rb") as f:
        head = f.read(9)
    if head.startswith(b"PK\x03\x04"):
        return "zip"
    if len(head) == 9 and head[8:9] == b"{" and int.from_bytes(head[:8], "little") < size:
        return "safetensors"
    if head.startswith(b"\x80"):
        names = ", ".join(sorted(_pickle_globals(path))[:_SHOWN]) or "none"
        raise CheckpointError(
            f"{path}: a bare pickle, not a PyTorch zip checkpoint; refusing to unpickle it "
            f"(it references: {names})"
        )
    raise CheckpointError(
        f"{path}: not a checkpoint (neither a PyTorch .pth zip file nor a .safetensors file)"
    )


def read_official_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """The ``state_dict`` of an official ``.pth``, without ``module.`` and the unused heads, on the CPU."""
    path = Path(path)
    if _sniff(path) != "zip":
        raise CheckpointError(f"{path}: not a PyTorch .pth zip file")
    return _official_state_dict(_read_torch_zip(path), path)


def _pickle_globals(path: Path) -> set[str]:
    """Names a bare pickle would import, found by disassembly (nothing is executed)."""
    found: set[str] = set()
    strings: list[str] = []
    try:
        with path.open("rb") as f:
            for op, arg, _ in pickletools.genops(f):
                if op.name == "GLOBAL":
                    found.add(str(arg).replace(" ", "."))
                elif op.name == "STACK_GLOBAL" and len(strings) >= 2:
                    found.add(f"{strings[-2]}.{strings[-1]}")
                elif isinstance(arg, str):
                    strings.append(arg)
    except Exception:  # a damaged pickle still gets refused; the names are only for the message
        pass
    return found


def _read_torch_zip(path: Path) -> Any:
    try:
        unsafe = torch.serialization.get_unsafe_globals_in_checkpoint(str(path))
    except Exception as e:
        raise CheckpointError(
            f"{path}: truncated or damaged PyTorch file ({_first_line(e)})"
        ) from e
    dangerous = sorted(name for name in unsafe if not _INERT_GLOBAL.match(name))
    if dangerous:
        raise CheckpointError(
            f"{path}: refusing to load: the pickle references {', '.join(dangerous[:_SHOWN])}, "
            "which could run code; an MMA-DFER checkpoint holds only tensors and training state"
        )
    inert = [(InertObject, name) for name in unsafe]
    try:
        with torch.serialization.safe_globals(inert):
            return torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as e:
        raise CheckpointError(f"{path}: cannot be read safely ({_first_line(e)})") from e


def _first_line(error: Exception) -> str:
    text = str(error).strip()
    unsupported = re.search(r"Unsupported global: GLOBAL \S+", text)
    if unsupported:
        return unsupported.group(0)
    return text.splitlines()[0] if text else type(error).__name__


def _official_state_dict(obj: Any, path: Path) -> dict[str, torch.Tensor]:
    if isinstance(obj, Mapping) and isinstance(obj.get("state_dict"), Mapping):
        state = obj["state_dict"]
    elif isinstance(obj, Mapping) and isinstance(obj.get("model"), Mapping):
        state = obj["model"]  # MAE-Face / AudioMAE layout: reported below by its keys
    elif (
        isinstance(obj, Mapping) and obj and all(isinstance(v, torch.Tensor) for v in obj.values())
    ):
        state = obj
    else:
        keys = (
            ", ".join(map(str, list(obj)[:_SHOWN]))
            if isinstance(obj, Mapping)
            else type(obj).__name__
        )
        raise CheckpointError(f"{path}: no state_dict found (top level: {keys})")
    out: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        if not isinstance(value, torch.Tensor):
            raise CheckpointError(f"{path}: state_dict entry {key!r} is not a tensor")
        name = str(key).removeprefix("module.")
        if name not in IGNORED_KEYS:
            out[name] = value
    return out


def _infer_config(state: Mapping[str, torch.Tensor]) -> MMADFERConfig:
    """The published dimensions, with the class count, image size and temporal depth read from the weights."""
    default = MMADFERConfig()
    classifier = state.get("our_classifier.weight")
    num_classes = classifier.shape[0] if classifier is not None else default.num_classes
    pos = state.get("image_encoder.pos_embed")
    prompts = default.prompts * (default.depth // default.prompt_interval)
    image_size = default.image_size
    if pos is not None and pos.dim() == 3:
        side = round((pos.shape[1] - 1 - prompts) ** 0.5)
        if side > 0 and side * side == pos.shape[1] - 1 - prompts:
            image_size = side * default.patch_size
    layers = {
        int(m.group(1))
        for k in state
        if (m := re.match(r"temporal_net\.temporal_transformer\.layers\.(\d+)\.", k))
    }
    return MMADFERConfig(
        class_names=class_names_for(num_classes),
        image_size=image_size,
        temporal_layers=max(layers) + 1 if layers else default.temporal_layers,
    )


def _read_safetensors(path: Path) -> tuple[dict[str, torch.Tensor], MMADFERConfig]:
    try:
        with safe_open(str(path), framework="pt") as f:
            metadata = f.metadata() or {}
            state = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118 (safe_open is not a dict)
    except (SafetensorError, OSError, ValueError) as e:
        raise CheckpointError(f"{path}: truncated or damaged safetensors file ({e})") from e
    if metadata.get("format") != FORMAT or "config" not in metadata:
        raise CheckpointError(
            f"{path}: a safetensors file without mmadfer metadata; import the official .pth "
            "with `mmadfer models import` instead"
        )
    try:
        config = MMADFERConfig.from_dict(json.loads(metadata["config"]))
    except (ValueError, TypeError) as e:
        raise CheckpointError(f"{path}: bad model configuration in metadata ({e})") from e
    return state, config


def _check_keys(model: MMADFER, state: Mapping[str, torch.Tensor], path: Path) -> None:
    expected = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    shaped = sorted(
        f"{k} {tuple(state[k].shape)} (expected {expected[k]})"
        for k in set(expected) & set(state)
        if tuple(state[k].shape) != expected[k]
    )
    problems = [
        f"{len(items)} {what}: {', '.join(items[:_SHOWN])}{', ...' if len(items) > _SHOWN else ''}"
        for what, items in (
            ("missing keys", missing),
            ("unexpected keys", unexpected),
            ("mis-shaped keys", shaped),
        )
        if items
    ]
    if problems:
        raise CheckpointError(f"{path}: not an MMA-DFER checkpoint: " + "; ".join(problems))
