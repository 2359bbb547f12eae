"""Running the model on a batch: input conversion on the device, and the precision modes.

float32 is the reference everywhere. ``bfloat16`` and ``float16`` (CUDA only)
run the model under autocast (weights stay float32; matrix products run in
the low precision), which is several times faster on recent GPUs, and on CPUs
that compute bfloat16 natively (AVX512-BF16 or AMX), and moves the logits
slightly (see ``benchmarks/autocast_drift.py``). ``auto`` picks the fast mode
where the hardware has it.
"""

from __future__ import annotations

import contextlib
from typing import Literal

import torch

from mmadfer_cli.model.mmadfer import MMADFER

Precision = Literal["float32", "bfloat16", "float16"]
PRECISIONS: tuple[str, ...] = ("float32", "bfloat16", "float16")
PRECISION_CHOICES: tuple[str, ...] = ("auto", *PRECISIONS)
_AUTOCAST = {"bfloat16": torch.bfloat16, "float16": torch.float16}


def check_precision(precision: str, device: torch.device | str) -> None:
    """Raise ValueError for an unknown precision or one the device cannot run."""
    if precision not in PRECISIONS:
        raise ValueError(f"unknown precision {precision!r}: choose one of {', '.join(PRECISIONS)}")
    if precision == "float16" and torch.device(device).type != "cuda":
        raise ValueError("float16 needs a CUDA device; use float32 (or bfloat16) on the CPU")


def cpu_has_native_bfloat16() -> bool:
    """Whether this CPU computes bfloat16 in hardware (AVX512-BF16 or AMX): there bfloat16
    autocast runs the model about 3x faster than float32; elsewhere it is emulated and slower."""
    try:
        with open("/proc/cpuinfo") as f:
            flags = next((line for line in f if line.startswith("flags")), "").split()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def resolve_precision(precision: str, device: torch.device | str) -> Precision:
    """``auto``: on CUDA bfloat16 where the GPU has it, else float16; on the CPU bfloat16 where
    the CPU computes it natively, else float32."""
    device = torch.device(device)
    if precision == "auto":
        if device.type != "cuda":
            return "bfloat16" if cpu_has_native_bfloat16() else "float32"
        return "bfloat16" if torch.cuda.is_bf16_supported() else "float16"
    check_precision(precision, device)
    return precision  # type: ignore[return-value]


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
    """
    device = torch.device(device) if device is not None else next(model.parameters()).device
    check_precision(precision, device)
    non_blocking = device.type == "cuda"
    if non_blocking and images.device.type == "cpu":
        images, audio = images.pin_memory(), audio.pin_memory()
    images = images.to(device, non_blocking=non_blocking)
    images = images.float().div_(255) if images.dtype == torch.uint8 else images.float()
    audio = audio.to(device, dtype=torch.float32, non_blocking=non_blocking)
    with torch.inference_mode(), autocast(device, precision):
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
