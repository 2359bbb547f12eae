"""MTCNN's compiled CPU loops give the tensor forms' values bit for bit (the boxes rest on it)."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from typing import TypeVar

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from skimage import data

from mmadfer_cli.faces import mtcnn_kernels
from mmadfer_cli.faces.mtcnn import MtcnnDetector, _cut, _integral, _pyramid
from mmadfer_cli.faces.mtcnn_nets import _prelu_in_place, _prelu_max_pool
from mmadfer_cli.faces.nms import grouped_nms
from tests.test_mtcnn import _frames


@pytest.fixture(autouse=True)
def _loops_run_here() -> None:
    if not mtcnn_kernels.available():
        if sys.platform.startswith("linux"):  # numba's OpenMP layer loads on Linux: they must run
            pytest.fail("the compiled MTCNN loops do not run on this Linux machine")
        pytest.skip("numba has no thread-safe layer here: the tensor forms run instead")


def _tensor_forms(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(mtcnn_kernels, "available", lambda: False)


T = TypeVar("T")


def _both(monkeypatch: pytest.MonkeyPatch, work: Callable[[], T]) -> tuple[T, T]:
    """``work`` with the compiled loops, then with the tensor forms."""
    compiled = work()
    with monkeypatch.context() as patch:
        _tensor_forms(patch)
        tensor = work()
    return compiled, tensor


@pytest.mark.parametrize("shape", [(1, 1, 1), (2, 15, 17), (3, 48, 31), (2, 480, 640)])
def test_tables_and_pyramid_levels_equal(
    monkeypatch: pytest.MonkeyPatch, shape: tuple[int, ...]
) -> None:
    frames = torch.randint(0, 256, (*shape, 3), dtype=torch.uint8)
    sizes = [(int(shape[1] * s + 1), int(shape[2] * s + 1)) for s in (0.6, 0.3, 0.1)]
    sizes += [(shape[1], shape[2]), (shape[1] + 3, shape[2] * 2)]  # the same size, and larger

    def pyramid() -> tuple[torch.Tensor, list[torch.Tensor]]:
        table, levels = _pyramid(frames, sizes)
        return table, list(levels)

    (table, compiled), (tensor_table, tensor) = _both(monkeypatch, pyramid)
    assert table.dtype == torch.int32 and torch.equal(table, tensor_table)
    for level, expected, size in zip(compiled, tensor, sizes, strict=True):
        assert level.shape == (shape[0], 3, *size)
        assert level.is_contiguous(memory_format=torch.channels_last)
        assert torch.equal(level, expected)
    table, levels = _pyramid(frames, [])  # frames under 12 px have no levels, only the table
    assert torch.equal(table, tensor_table) and list(levels) == []


@pytest.mark.parametrize("size", [24, 48])
def test_crops_equal(monkeypatch: pytest.MonkeyPatch, size: int) -> None:
    generator = torch.Generator().manual_seed(size)
    frames = torch.randint(0, 256, (4, 120, 90, 3), dtype=torch.uint8, generator=generator)
    table = _integral(frames)  # the tensor form's: the two are equal (above)
    y0 = torch.randint(0, 110, (300,), generator=generator)
    x0 = torch.randint(0, 80, (300,), generator=generator)
    y1 = torch.minimum(y0 + torch.randint(1, 200, (300,), generator=generator), torch.tensor(120))
    x1 = torch.minimum(x0 + torch.randint(1, 200, (300,), generator=generator), torch.tensor(90))
    y0[0], y1[0], x0[0], x1[0] = 0, 120, 0, 90  # the whole frame
    y0[1], y1[1], x0[1], x1[1] = 5, 6, 7, 8  # one pixel, spread over every bin
    frame = torch.randint(0, 4, (300,), generator=generator)
    region = (y0.int(), y1.int(), x0.int(), x1.int())
    compiled, tensor = _both(monkeypatch, lambda: _cut(table, frame, region, size))
    assert compiled.shape == (300, 3, size, size) and torch.equal(compiled, tensor)
    empty = _cut(table, frame[:0], tuple(r[:0] for r in region), size)
    assert empty.shape == (0, 3, size, size)


@pytest.mark.parametrize("window", [2, 3])
@pytest.mark.parametrize("size", [(3, 3), (4, 5), (7, 9), (22, 21), (287, 383)])
@pytest.mark.parametrize("channels", [10, 32, 48])
def test_prelu_then_pooling_equal(
    monkeypatch: pytest.MonkeyPatch, window: int, size: tuple[int, int], channels: int
) -> None:
    generator = torch.Generator().manual_seed(channels)
    for batch in (0, 1, 3) if max(size) < 100 else (2,):
        x = torch.randn(batch, channels, *size, generator=generator)
        x = x.contiguous(memory_format=torch.channels_last)
        x[..., 0, 0] = 0.0  # zeros and ties
        slope = torch.randn(channels, generator=generator)  # slopes of both signs, as MTCNN's
        compiled, tensor = _both(monkeypatch, lambda x=x, a=slope: _prelu_max_pool(x, a, window))
        expected = F.max_pool2d(torch.prelu(x, slope), window, 2, ceil_mode=True)
        assert torch.equal(tensor, expected) and torch.equal(compiled, expected)
        assert compiled.is_contiguous(memory_format=torch.channels_last)


@pytest.mark.parametrize("channels", [10, 16, 32])
def test_prelu_in_place_equal(monkeypatch: pytest.MonkeyPatch, channels: int) -> None:
    generator = torch.Generator().manual_seed(channels)
    for shape in [(0, 5, 7), (1, 1, 1), (3, 17, 9), (2, 142, 190)]:
        x = torch.randn(shape[0], channels, *shape[1:], generator=generator)
        x = x.contiguous(memory_format=torch.channels_last)
        x[..., 0, 0] = 0.0
        x[..., -1, -1] = -0.0
        slope = torch.randn(channels, generator=generator)
        expected = torch.prelu(x, slope)
        compiled, tensor = _both(monkeypatch, lambda x=x, a=slope: _prelu_in_place(x.clone(), a))
        assert torch.equal(tensor, expected) and torch.equal(compiled, expected)
        assert compiled.is_contiguous(memory_format=torch.channels_last)
        done = mtcnn_kernels.prelu_(x, slope)
        assert done is x and torch.equal(x, expected)  # in place


def test_unknown_windows_are_refused() -> None:
    x = torch.zeros(1, 4, 6, 6).contiguous(memory_format=torch.channels_last)
    with pytest.raises(ValueError, match="4 x 4"):
        mtcnn_kernels.prelu_max_pool(x, torch.zeros(4), 4)


def test_the_detector_finds_the_same_faces_either_way(monkeypatch: pytest.MonkeyPatch) -> None:
    frames = [*_frames("group_conversation.mp4", [0, 30]), np.ascontiguousarray(data.astronaut())]
    detector = MtcnnDetector("cpu")
    compiled, tensor = _both(monkeypatch, lambda: detector.detect_faces(frames))
    assert [len(f.boxes) for f in compiled] == [6, 6, 1]
    for ours, theirs in zip(compiled, tensor, strict=True):
        assert np.array_equal(ours.boxes, theirs.boxes)
        assert np.array_equal(ours.landmarks, theirs.landmarks)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="no fork here")
def test_a_forked_child_uses_the_tensor_forms() -> None:
    # OpenMP's threads do not survive a fork: numba's loops would abort the child.
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        os.write(write, b"1" if mtcnn_kernels.available() else b"0")
        os._exit(0)
    os.waitpid(pid, 0)
    assert os.read(read, 1) == b"0"
    assert mtcnn_kernels.available()


def _fresh_process(code: str, **env: str) -> str:
    """What ``code`` prints in a Python of its own (numba's layer is chosen once a process)."""
    run = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env={**os.environ, **env},
        check=True,
    )
    return run.stdout.strip()


def test_starting_the_loops_keeps_the_thread_count() -> None:
    # numba starting OpenMP sets the thread's OpenMP count to all cores, which PyTorch reads as
    # its own: a worker given one core would have run its convolutions on all of them.
    code = (
        "import torch; torch.set_num_threads(1)\n"
        "from mmadfer_cli.faces import mtcnn_kernels\n"
        "assert mtcnn_kernels.available()\n"
        "print(torch.get_num_threads())\n"
    )
    assert _fresh_process(code, NUMBA_NUM_THREADS="4") == "1"  # 4: more than one, always


def test_every_loop_is_ready_when_the_detector_is_made() -> None:
    # Loaded (or, on a first run, compiled: seconds) at start-up, not in a run's first segment:
    # a detection after that adds no compiled version of any loop.
    code = (
        "import numpy as np\n"
        "from skimage import data\n"
        "from mmadfer_cli.faces import mtcnn_kernels as k\n"
        "from mmadfer_cli.faces.mtcnn import MtcnnDetector\n"
        "detector = MtcnnDetector('cpu')\n"
        "loops = (k.levels, k.means, k.pool, k.prelu_rows, k.greedy)\n"
        "before = [len(loop.signatures) for loop in loops]\n"
        "faces = detector.detect([np.ascontiguousarray(data.astronaut())])\n"
        "print(len(faces[0]), before, [len(loop.signatures) for loop in loops])\n"
    )
    assert _fresh_process(code) == "1 [1, 1, 1, 1, 1] [1, 1, 1, 1, 1]"


def test_the_loops_compile_where_nothing_can_be_cached() -> None:
    # A read-only install and home: numba finds no place for its cache and refused the import.
    code = (
        "import numba.core.caching as caching\n"
        "caching.CacheImpl._locator_classes = []\n"
        "from mmadfer_cli.faces import mtcnn_kernels\n"
        "print(mtcnn_kernels.available())\n"
    )
    assert _fresh_process(code) == "True"


def test_a_layer_other_code_started_that_is_not_thread_safe_is_not_used() -> None:
    # numba's layer is chosen once per process: after other code started workqueue (which
    # aborts when two threads run loops at once), the detector keeps its tensor forms.
    code = (
        "import numba, numpy as np\n"
        "numba.config.THREADING_LAYER = 'workqueue'\n"
        "@numba.njit(parallel=True)\n"
        "def f(a):\n"
        "    for i in numba.prange(len(a)):\n"
        "        a[i] += 1\n"
        "f(np.zeros(10))\n"
        "from mmadfer_cli.faces import mtcnn_kernels\n"
        "print(mtcnn_kernels.available(), mtcnn_kernels.layer())\n"
    )
    assert _fresh_process(code) == "False None"


def test_suppression_of_boxes_without_area_follows_ieee_arithmetic(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Two boxes without area overlap by 0 / 0: NaN, not above the threshold, so both stay (as
    # in PyTorch); a loop raising ZeroDivisionError there would fail the whole video.
    boxes = torch.tensor([[5.0, 5.0, 5.0, 5.0], [5.0, 5.0, 5.0, 5.0], [0.0, 0.0, 10.0, 10.0]])
    scores, groups = torch.tensor([0.9, 0.8, 0.7]), torch.zeros(3, dtype=torch.long)
    compiled, tensor = _both(monkeypatch, lambda: grouped_nms(boxes, scores, groups, 0.5))
    assert compiled.tolist() == tensor.tolist() == [0, 1, 2]
