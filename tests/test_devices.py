"""Which device and precision a run uses: a Mac's GPU (MPS) and CPUs without /proc, simulated."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from mmadfer_cli.cli import doctor
from mmadfer_cli.model import inference
from mmadfer_cli.model.devices import device_lock, resolve_device
from mmadfer_cli.model.inference import check_precision, resolve_precision


@pytest.fixture()
def mac(monkeypatch: pytest.MonkeyPatch) -> None:
    """A Mac with Apple silicon: no CUDA, an MPS device."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: True)
    monkeypatch.setattr(torch.backends.mps, "is_built", lambda: True)


@pytest.mark.usefixtures("mac")
def test_auto_picks_a_macs_gpu_for_annotation_and_not_for_training() -> None:
    assert resolve_device("auto") == torch.device("mps")
    assert resolve_device("mps") == torch.device("mps")
    assert resolve_device("auto", apple_gpu=False) == torch.device("cpu")
    with pytest.raises(ValueError, match="training does not run on MPS"):
        resolve_device("mps", apple_gpu=False)


def test_a_cuda_gpu_comes_before_a_macs(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: True)
    assert resolve_device("auto", local_rank=1) == torch.device("cuda:1")


def test_mps_without_an_apple_gpu_says_why(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_built", lambda: False)
    with pytest.raises(ValueError, match=r"no Apple GPU .* built without it; use cpu"):
        resolve_device("mps")
    monkeypatch.setattr(torch.backends.mps, "is_built", lambda: True)
    with pytest.raises(ValueError, match=r"macOS 12\.3 or newer"):
        resolve_device("mps")


def test_a_macs_gpu_runs_float32() -> None:
    assert resolve_precision("auto", "mps") == "float32"
    assert resolve_precision("float32", "mps") == "float32"
    with pytest.raises(ValueError, match="bfloat16 does not run on mps"):
        check_precision("bfloat16", "mps")
    with pytest.raises(ValueError, match="float16 needs a CUDA device"):
        check_precision("float16", "mps")


def test_native_bfloat16_is_found_without_proc(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """macOS and Windows have no /proc/cpuinfo: PyTorch's own reading of the CPU is asked."""
    monkeypatch.setattr(inference, "_CPUINFO", tmp_path / "no-proc" / "cpuinfo")
    flags = {"architecture": "x86_64", "avx512_f": True, "avx512_bf16": True, "l2_cache_size": 2}
    monkeypatch.setattr(torch.cpu, "get_capabilities", lambda: flags, raising=False)
    assert inference.cpu_has_native_bfloat16()
    assert resolve_precision("auto", "cpu") == "bfloat16"
    flags["avx512_bf16"] = False  # AVX-512 alone emulates bfloat16: slower
    assert not inference.cpu_has_native_bfloat16()
    monkeypatch.delattr(torch.cpu, "get_capabilities", raising=False)  # an older PyTorch
    assert not inference.cpu_has_native_bfloat16()
    assert resolve_precision("auto", "cpu") == "float32"


def test_linux_reads_its_cpu_flags_from_proc(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("processor\t: 0\nflags\t\t: fpu avx512f amx_bf16 amx_tile\n")
    monkeypatch.setattr(inference, "_CPUINFO", cpuinfo)
    monkeypatch.setattr(torch.cpu, "get_capabilities", lambda: {}, raising=False)
    assert inference.cpu_has_native_bfloat16()
    cpuinfo.write_text("processor\t: 0\nflags\t\t: fpu avx512f\n")
    assert not inference.cpu_has_native_bfloat16()


@pytest.mark.usefixtures("mac")
def test_doctor_says_which_device_and_precision_annotate_uses(
    capsys: pytest.CaptureFixture[str],
) -> None:
    doctor._devices("auto")
    out = " ".join(capsys.readouterr().out.split())
    assert "mps: this Mac's GPU" in out
    assert "annotate: --device auto runs on mps in float32 (MPS lacks some bfloat16 kernels)" in out


def test_doctor_names_the_cpu_precision_and_a_missing_device(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    monkeypatch.setattr(inference, "cpu_has_native_bfloat16", lambda: False)
    doctor._devices("cpu")
    doctor._devices("cuda")
    out = " ".join(capsys.readouterr().out.split())
    assert "--device cpu runs on cpu in float32 (no native bfloat16 on this CPU)" in out
    assert "FAIL device: --device cuda: no CUDA GPU is available" in out


def test_work_on_a_macs_gpu_takes_turns_and_elsewhere_runs_freely() -> None:
    """Two threads on MPS at once crash the process (pytorch/pytorch#197805)."""
    lock = device_lock("mps")
    assert device_lock(torch.device("mps:0")) is lock
    with lock:
        assert not device_lock("mps").acquire(blocking=False)  # type: ignore[attr-defined]
        # No lock there: CUDA and the CPU take work from many threads.
        assert device_lock("cpu") is not lock and device_lock("cuda:0") is not lock
        with device_lock("cpu"), device_lock("cuda:0"):
            pass
