"""Running the model on a batch: input conversion on the device, and the precision modes.

float32 is the reference everywhere. ``bfloat16`` and ``float16`` (CUDA only)
are several times faster on recent GPUs, and bfloat16 also on CPUs that compute
it natively (AVX512-BF16 or AMX); they move the logits slightly (see
``benchmarks/autocast_drift.py``). ``auto`` picks the fast mode where the
hardware has it. A Mac's GPU (``mps``) runs float32 only: MPS has bfloat16 only
from macOS 14 on and still lacks kernels for some operations in it, so a
bfloat16 run could stop halfway on one Mac and not on another, and no speed-up
has been measured there. float16 runs under autocast (weights stay float32; matrix
products run in the low precision); bfloat16 either so or with the weights
themselves cast to bfloat16 (``bfloat16_mode``): faster on CUDA, slower on the
CPU.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Literal

import numpy as np
import torch

from mmadfer_cli.model.devices import device_lock
from mmadfer_cli.model.mmadfer import MMADFER

Precision = Literal["float32", "bfloat16", "float16"]
PRECISIONS: tuple[str, ...] = ("float32", "bfloat16", "float16")
PRECISION_CHOICES: tuple[str, ...] = ("auto", *PRECISIONS)
Bfloat16Mode = Literal["weights", "autocast"]
_AUTOCAST = {"bfloat16": torch.bfloat16, "float16": torch.float16}
_CPUINFO = Path("/proc/cpuinfo")
_NATIVE_BFLOAT16 = ("avx512_bf16", "amx_bf16")  # the x86 flags; ARM's bf16 is not measured


def check_precision(precision: str, device: torch.device | str) -> None:
    """Raise ValueError for an unknown precision or one the device cannot run."""
    if precision not in PRECISIONS:
        raise ValueError(f"unknown precision {precision!r}: choose one of {', '.join(PRECISIONS)}")
    kind = torch.device(device).type
    if precision == "float16" and kind != "cuda":
        raise ValueError("float16 needs a CUDA device; use float32 (or bfloat16) on the CPU")
    if precision == "bfloat16" and kind == "mps":
        raise ValueError(
            "bfloat16 does not run on mps (MPS lacks some of its kernels); use float32"
        )


def _cpu_flags() -> set[str]:
    """The CPU's feature flags: Linux's own list where there is /proc, else the one PyTorch
    reads from the CPU (``torch.cpu.get_capabilities``, in recent PyTorch: macOS, Windows);
    none when neither is there (so float32)."""
    try:
        with _CPUINFO.open() as f:
            return set(next((line for line in f if line.startswith("flags")), "").split())
    except OSError:
        capabilities = getattr(torch.cpu, "get_capabilities", None)
        if capabilities is None:
            return set()
        return {name for name, value in capabilities().items() if value is True}


def cpu_has_native_bfloat16() -> bool:
    """Whether this CPU computes bfloat16 in hardware (AVX512-BF16 or AMX): there bfloat16
    autocast runs the model about 3x faster than float32; elsewhere it is emulated and slower."""
    return any(flag in _cpu_flags() for flag in _NATIVE_BFLOAT16)


def resolve_precision(precision: str, device: torch.device | str) -> Precision:
    """``auto``: on CUDA bfloat16 where the GPU has it, else float16; on a Mac's GPU float32;
    on the CPU bfloat16 where the CPU computes it natively, else float32."""
    device = torch.device(device)
    if precision == "auto":
        if device.type == "cuda":
            return "bfloat16" if torch.cuda.is_bf16_supported() else "float16"
        if device.type == "mps":
            return "float32"
        return "bfloat16" if cpu_has_native_bfloat16() else "float32"
    check_precision(precision, device)
    return precision  # type: ignore[return-value]


def bfloat16_mode(device: torch.device | str) -> Bfloat16Mode:
    """How bfloat16 runs best on a device. CUDA: the weights cast to bfloat16 (on an H200 522
    clips/s against 415 under autocast, which converts the float32 weights at every call). CPU:
    autocast (there the cast weights ran slower, 0.71 against 1.02 clips/s on two cores with
    AVX512-BF16)."""
    return "weights" if torch.device(device).type == "cuda" else "autocast"


def cast_weights(model: MMADFER, precision: Precision, mode: Bfloat16Mode | None = None) -> MMADFER:
    """The model as a run in ``precision`` uses it: for bfloat16 in ``mode`` "weights" (None: the
    way of the model's device) its weights cast to bfloat16 in place, once, when the run is
    prepared; otherwise unchanged."""
    if precision == "bfloat16" and (mode or bfloat16_mode(weights_device(model))) == "weights":
        return model.to(torch.bfloat16)
    return model


def weights_device(model: torch.nn.Module) -> torch.device:
    return next(model.parameters()).device


def weights_dtype(model: torch.nn.Module) -> torch.dtype:
    """The dtype of the model's weights (float32 unless ``cast_weights`` cast them)."""
    return next(model.parameters()).dtype


def autocast(device: torch.device | str, precision: Precision) -> contextlib.AbstractContextManager:
    """The autocast context of a precision mode (none for float32)."""
    if precision not in _AUTOCAST:
        return contextlib.nullcontext()
    return torch.autocast(device_type=torch.device(device).type, dtype=_AUTOCAST[precision])


def predict_logits(
    model: MMADFER,
    images: torch.Tensor,
    audio: torch.Tensor,
    device: torch.device | str | None = None,
    precision: Precision = "float32",
) -> torch.Tensor:
    """(B, classes) float32 logits on the CPU.

    ``images``: (B, 16, 3, 224, 224), uint8 in [0, 255] (converted to [0, 1]
    on the device, so only bytes cross the bus) or float in [0, 1].
    ``audio``: (B, 1, 512, 128) normalised filterbank.
    A model whose weights ``cast_weights`` cast to bfloat16 gets its inputs in bfloat16 and runs
    without autocast (``precision`` must then be bfloat16).
    """
    device = torch.device(device) if device is not None else weights_device(model)
    check_precision(precision, device)
    dtype = weights_dtype(model)
    if dtype != torch.float32 and _AUTOCAST.get(precision) != dtype:
        raise ValueError(f"the model's weights are {dtype}, but the precision asked is {precision}")
    non_blocking = device.type == "cuda"
    if non_blocking and images.device.type == "cpu":
        images, audio = images.pin_memory(), audio.pin_memory()
    with device_lock(device):
        images = images.to(device, non_blocking=non_blocking)
        images = images.float().div_(255) if images.dtype == torch.uint8 else images.float()
        audio = audio.to(device, dtype=torch.float32, non_blocking=non_blocking)
        if dtype == torch.float32:
            context = autocast(device, precision)
        else:
            images, audio, context = images.to(dtype), audio.to(dtype), contextlib.nullcontext()
        with torch.inference_mode(), context:
            logits = model(images, audio)
        return logits.float().cpu()


def predict_proba(
    model: MMADFER,
    images: torch.Tensor,
    audio: torch.Tensor,
    device: torch.device | str | None = None,
    precision: Precision = "float32",
) -> torch.Tensor:
    """(B, classes) float32 class probabilities on the CPU (softmax of ``predict_logits``)."""
    return predict_logits(model, images, audio, device, precision).softmax(dim=-1)


def model_predictor(
    model: torch.nn.Module,
    device: torch.device,
    precision: Precision = "float32",
    pad_to: int | None = None,
) -> Callable[[Sequence[torch.Tensor], Sequence[torch.Tensor]], np.ndarray]:
    """The model stage over a batch of clips: see ``predict_proba`` for how uint8 clips reach the
    device and which precision modes exist. ``pad_to``: a smaller batch is padded with blank
    clips to this size (for a model compiled for one batch shape) and their rows dropped."""

    def predict(clips: Sequence[torch.Tensor], fbanks: Sequence[torch.Tensor]) -> np.ndarray:
        images = torch.stack(list(clips))
        audio = torch.stack(list(fbanks)).unsqueeze(1)
        n = len(images)
        if pad_to is not None and n < pad_to:
            images, audio = (
                torch.cat([t, t.new_zeros((pad_to - n, *t.shape[1:]))]) for t in (images, audio)
            )
        return predict_proba(model, images, audio, device, precision)[:n].numpy()

    return predict
