"""The torch device named by a command's ``--device`` option, and the lock a Mac's GPU needs."""

from __future__ import annotations

import contextlib
import re
import threading

import torch

from mmadfer_cli.plural import counted

DEVICES = ("auto", "cpu", "cuda", "cuda:N", "mps")
"""The forms ``--device`` takes (N: a GPU's index)."""
_CHOICES = f"{', '.join(DEVICES[:-1])} or {DEVICES[-1]}"
_FORM = re.compile(r"auto|cpu|mps|cuda(:[0-9]+)?")
# PyTorch's MPS backend crashes the process (SIGSEGV, or a Metal assertion) when two threads run
# work on it at once (pytorch/pytorch#197805, open in torch 2.14 and 2.15); the pipeline runs the
# model in one thread and MTCNN in the workers, so on a Mac's GPU they take turns.
_MPS_LOCK = threading.Lock()


def device_lock(device: torch.device | str) -> contextlib.AbstractContextManager[object]:
    """What to hold while work runs on ``device``: one process-wide lock for ``mps``; nothing
    for the CPU and CUDA, which take work from many threads."""
    return _MPS_LOCK if torch.device(device).type == "mps" else contextlib.nullcontext()


def is_device_name(name: str) -> bool:
    """Whether ``name`` has one of the ``DEVICES`` forms (not whether that device is here)."""
    return _FORM.fullmatch(name) is not None


def resolve_device(name: str, local_rank: int = 0, *, apple_gpu: bool = True) -> torch.device:
    """``auto`` is this process's CUDA GPU when there is one (``local_rank`` under torchrun),
    else a Mac's GPU (``mps``), else the CPU; a GPU that is not there is an error that says why,
    before any work starts. ``apple_gpu=False`` (training: its float64 sums do not exist on
    MPS) leaves ``mps`` out."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device(f"cuda:{local_rank}")
        return torch.device("mps" if apple_gpu and torch.backends.mps.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError as exc:
        raise ValueError(f"unknown device {name!r}; use {_CHOICES}") from exc
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(
                f"--device {name}: no CUDA GPU is available to this PyTorch "
                f"(torch {torch.__version__}, CUDA build: {torch.version.cuda or 'no'}); "
                "use --device cpu, or install a CUDA build of PyTorch"
            )
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise ValueError(
                f"--device {name}: only {counted(torch.cuda.device_count(), 'GPU')} visible"
            )
    elif device.type == "mps" and apple_gpu:
        if not torch.backends.mps.is_available():
            why = (
                "this PyTorch was built without it"
                if not torch.backends.mps.is_built()
                else "it needs a Mac with Apple silicon (or an AMD GPU) and macOS 12.3 or newer"
            )
            raise ValueError(f"--device {name}: no Apple GPU (MPS) is available: {why}; use cpu")
    elif device.type == "mps":
        raise ValueError(f"--device {name}: training does not run on MPS; use cpu or cuda")
    elif device.type != "cpu":
        raise ValueError(f"unsupported device {name!r}; use {_CHOICES}")
    return device
