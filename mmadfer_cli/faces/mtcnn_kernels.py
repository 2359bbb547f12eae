"""MTCNN's memory-bound steps on the CPU as compiled loops (numba): the same values bit for bit.

In PyTorch each of these steps is several passes over maps far larger than the caches (the
summed-area tables, the pyramid's bin sums, then the conversion, two divisions and a shift;
a PReLU and then a max pooling), and on a CPU such passes, not the convolutions, took most of
the detector's time. Here each is one loop that reads its input once and writes its output
once, parallel over frames, rows or crops; the arithmetic is the tensor forms' own (integer
sums, then float32 division by the bin's height and by its width * 128, then the shift), so
the nets see the same inputs. Suppression runs its greedy loop (``faces.nms`` builds matrices
of all pairs, which pays on a GPU), with the same overlaps. GPUs keep the tensor forms in
``faces.mtcnn`` and ``faces.nms``.

The loops run on numba's thread-safe layers only (OpenMP or TBB): several media workers call
the detector at once. Where neither loads (numba finds no OpenMP runtime library or TBB), or in a
process forked after they ran (OpenMP does not survive a fork), ``available`` is False and the
detector runs its tensor forms on the CPU too.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable

import numpy as np
import torch

try:
    import numba
    from numba import njit, prange
except (ImportError, OSError):  # pragma: no cover - a dependency; a broken install falls back
    numba = None

_state: dict[str, bool] = {}
_lock = threading.Lock()


def _forked() -> None:
    _state["usable"] = False


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forked)


def available() -> bool:
    """Whether the compiled loops run here: numba imports, a thread-safe threading layer loads
    and compiles a loop (checked once per process), and this is not a forked child."""
    with _lock:
        if "usable" not in _state:
            _state["usable"] = _try_layer()
        return _state["usable"]


def layer() -> str | None:
    """What runs the loops here ("numba 0.68.1, omp threads"), or None where they do not run."""
    if not available():
        return None
    return f"numba {numba.__version__}, {numba.threading_layer()} threads"


def runs_on(t: torch.Tensor) -> bool:
    """Whether the compiled loops take ``t`` (a CPU tensor, and they run here)."""
    return t.device.type == "cpu" and available()


def _try_layer() -> bool:
    """Load the layer and every loop (from numba's cache, or compiled on a first run: at
    start-up, not in a run's first segment). Starting OpenMP, numba sets the calling thread's
    OpenMP thread count to all cores, which PyTorch reads as its own (a worker given 2 of 16
    cores would run on 16): the count is put back."""
    if numba is None:
        return False
    numba.config.THREADING_LAYER = "threadsafe"
    threads = torch.get_num_threads()
    try:
        _run_each_loop()
    except Exception:  # any failure to load or to compile: the tensor forms serve
        return False
    finally:
        torch.set_num_threads(threads)
    # A layer started before (by other numba code in the process) stays: only a safe one will do.
    return numba.threading_layer() in ("omp", "tbb")


def _run_each_loop() -> None:
    """Each loop once on a tiny input of the types a detection gives it."""
    one = torch.zeros(1, 1, dtype=torch.long)
    table, _ = pyramid(np.zeros((1, 2, 2, 3), np.uint8), [((one, one + 2), (one, one + 2))])
    area_means(table, one[0], (one, one + 1), (one, one + 1))
    x = torch.zeros(1, 1, 3, 3).contiguous(memory_format=torch.channels_last)
    prelu_max_pool(prelu_(x, torch.zeros(1)), torch.zeros(1), 2)
    greedy_nms(torch.zeros(1, 4), torch.ones(1, dtype=torch.long), 0.5, False)


def _threads() -> None:
    """The calling thread's PyTorch thread count for numba too (a thread-local setting), so a
    worker's loops use the cores its convolutions use."""
    numba.set_num_threads(max(1, min(torch.get_num_threads(), numba.config.NUMBA_NUM_THREADS)))


def pyramid(
    frames: np.ndarray, bins: list[tuple[tuple[torch.Tensor, torch.Tensor], ...]]
) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """(B, H + 1, W + 1, C) int32 summed-area tables of uint8 (B, H, W, C) frames, and the frames
    area-resized as P-Net's input at each level of ``bins`` (its rows' and its columns' first
    and last pixels, (1, height) and (1, width) each), (B, C, height, width) float32 with
    channels-last strides. A frame's levels are made right after its table, while the table is
    still in cache."""
    b, h, w, c = frames.shape
    table = torch.empty(b, h + 1, w + 1, c, dtype=torch.int32)
    heights = np.array([rows[0].shape[1] for rows, _ in bins], np.int64)
    widths = np.array([cols[0].shape[1] for _, cols in bins], np.int64)
    counts = b * heights * widths * c
    out = torch.empty(int(counts.sum()))
    starts = np.cumsum(counts) - counts
    none = np.zeros(0, np.int64)  # no levels: frames under 12 px

    def joined(axis: int, edge: int) -> np.ndarray:
        return np.concatenate([none, *(_int64(level[axis][edge][0]) for level in bins)])

    _threads()
    levels(
        np.ascontiguousarray(frames),
        table.numpy(),
        *(joined(axis, edge) for axis in (0, 1) for edge in (0, 1)),
        heights,
        widths,
        starts,
        out.numpy(),
    )
    views = [
        out[start : start + count].view(b, height, width, c).permute(0, 3, 1, 2)
        for start, count, height, width in zip(starts, counts, heights, widths, strict=True)
    ]
    return table, views


def area_means(
    table: torch.Tensor,
    frame: torch.Tensor,
    rows: tuple[torch.Tensor, torch.Tensor],
    cols: tuple[torch.Tensor, torch.Tensor],
) -> torch.Tensor:
    """Candidates' bin means as R-Net's or O-Net's input, (K, C, h, w) float32 with
    channels-last strides: for each of K regions, the table it reads (``frame``, (K,)) and its
    bins' first and last (exclusive) rows (K, h) and columns (K, w)."""
    k, h = rows[0].shape
    out = torch.empty(k, h, cols[0].shape[1], table.shape[3])
    _threads()
    means(table.numpy(), *(_int64(t) for t in (frame, *rows, *cols)), out.numpy())
    return out.permute(0, 3, 1, 2)


def greedy_nms(
    boxes: torch.Tensor, counts: torch.Tensor, threshold: float, by_min: bool
) -> torch.Tensor:
    """Greedy non-maximum suppression of (n, 4) float32 boxes sorted by group, then by falling
    score within a group (``counts``: the groups' sizes in that order): which boxes are kept,
    (n,) bool. The overlaps are computed and compared as ``faces.nms`` computes them."""
    keep = torch.zeros(len(boxes), dtype=torch.bool)
    _threads()
    greedy(boxes.numpy(), _int64(counts.cumsum(0)), threshold, by_min, keep.numpy())
    return keep


def prelu_max_pool(x: torch.Tensor, slope: torch.Tensor, window: int) -> torch.Tensor:
    """``MaxPool2d(window, 2, ceil_mode=True)`` of ``PReLU(slope)`` of a channels-last
    (N, C, H, W) map, in one pass over it; MTCNN's windows: 2 x 2 or 3 x 3, stride 2."""
    if window not in (2, 3):
        raise ValueError(f"no loop for {window} x {window} windows")
    n, c, h, w = x.shape
    out = torch.empty(
        n, c, _pooled(h, window), _pooled(w, window), memory_format=torch.channels_last
    )
    _threads()
    pool(
        x.detach().permute(0, 2, 3, 1).numpy(),
        slope.detach().numpy(),
        window,
        out.permute(0, 2, 3, 1).numpy(),
    )
    return out


def prelu_(x: torch.Tensor, slope: torch.Tensor) -> torch.Tensor:
    """``PReLU(slope)`` of a channels-last (N, C, H, W) map, in place (``x`` returned): one
    pass over it where PyTorch reads it and writes a new map. ``view`` refuses other layouts
    (a copy would leave ``x`` as it was)."""
    n, c, h, w = x.shape
    _threads()
    prelu_rows(x.detach().permute(0, 2, 3, 1).view(n * h * w, c).numpy(), slope.detach().numpy())
    return x


def pools(x: torch.Tensor) -> bool:
    """Whether the map loops (``prelu_max_pool``, ``prelu_``) take ``x`` as it is (float32,
    channels-last)."""
    return (
        x.dtype == torch.float32
        and x.is_contiguous(memory_format=torch.channels_last)
        and runs_on(x)
    )


def _pooled(size: int, window: int) -> int:
    """Output size of a ceil-mode pooling at stride 2 without padding (every window starts
    inside)."""
    return -(-(size - window) // 2) + 1


def _int64(t: torch.Tensor) -> np.ndarray:
    return np.ascontiguousarray(t.numpy(), dtype=np.int64)


def _loop(function: Callable[..., None]) -> Callable[..., None]:
    """A parallel compiled loop, cached where numba finds a writable place (beside this module
    or in the user's cache); where it finds none (a read-only install and home), compiled anew
    in each process instead of failing the import."""
    try:
        return njit(parallel=True, cache=True, error_model="numpy")(function)
    except RuntimeError:  # "cannot cache function ...: no locator available"
        return njit(parallel=True, error_model="numpy")(function)


if numba is not None:

    @njit(inline="always")
    def _mean(table, f, top, bottom, left, right, k, kh, kw):  # pragma: no cover - compiled
        """A bin's sum from the table, scaled as ``mtcnn._inputs`` scales it (float32 all
        through: divided by the bin's height, then by its width * 128, then shifted)."""
        s = (
            table[f, bottom, right, k]
            - table[f, top, right, k]
            - table[f, bottom, left, k]
            + table[f, top, left, k]
        )
        return np.float32(s) / kh / kw - np.float32(127.5 / 128)

    @_loop
    def levels(
        frames, table, r0, r1, c0, c1, heights, widths, starts, out
    ) -> None:  # pragma: no cover - compiled
        """Per frame, its summed-area table (each row's running sums added to the table row
        above), then its pyramid levels from it; bins and outputs of all levels concatenated."""
        b, h, w, c = frames.shape
        for f in prange(b):
            table[f, 0] = 0
            for y in range(h):
                table[f, y + 1, 0] = 0
                for k in range(c):  # a channel at a time: its running sum stays in a register
                    run = np.int32(0)
                    for x in range(w):
                        run += frames[f, y, x, k]
                        table[f, y + 1, x + 1, k] = table[f, y, x + 1, k] + run
            first_row = first_col = 0
            for level in range(len(heights)):
                height, width = heights[level], widths[level]
                at = starts[level] + f * height * width * c
                for i in range(height):
                    top, bottom = r0[first_row + i], r1[first_row + i]
                    kh = np.float32(bottom - top)
                    for j in range(width):
                        left, right = c0[first_col + j], c1[first_col + j]
                        kw = np.float32((right - left) * 128)
                        for k in range(c):
                            value = _mean(table, f, top, bottom, left, right, k, kh, kw)
                            out[at + (i * width + j) * c + k] = value
                first_row += height
                first_col += width

    @_loop
    def means(table, frame, r0, r1, c0, c1, out) -> None:  # pragma: no cover - compiled
        """Bin means of regions of the tables, a row of bins at a time."""
        n, height, width, c = out.shape
        for job in prange(n * height):
            q, i = job // height, job % height
            f, top, bottom = frame[q], r0[q, i], r1[q, i]
            kh = np.float32(bottom - top)
            for j in range(width):
                left, right = c0[q, j], c1[q, j]
                kw = np.float32((right - left) * 128)
                for k in range(c):
                    out[q, i, j, k] = _mean(table, f, top, bottom, left, right, k, kh, kw)

    @njit(inline="always")
    def _prelu_of_extremes(high, low, slope):  # pragma: no cover - compiled
        """A window's largest PReLU value from its largest and smallest values: PReLU falls, if
        at all, only below 0 and rises above it, so its maximum is at one of the two."""
        a = high if high > 0 else slope * high
        z = low if low > 0 else slope * low
        return max(a, z)

    @_loop
    def pool(x, slope, window, out) -> None:  # pragma: no cover - compiled
        """``window`` x ``window`` windows (2 or 3), stride 2. Three rows and columns are read
        either way: a 2 x 2 window reads its second twice, and one past the map's end reads
        the map's last: neither changes the extremes."""
        n, h, w, c = x.shape
        _, oh, ow, _ = out.shape
        for job in prange(n * oh):
            b, i = job // oh, job % oh
            y0, y1, y2 = 2 * i, min(2 * i + 1, h - 1), min(2 * i + window - 1, h - 1)
            for j in range(ow):
                x0, x1, x2 = 2 * j, min(2 * j + 1, w - 1), min(2 * j + window - 1, w - 1)
                for k in range(c):
                    a0, a1, a2 = x[b, y0, x0, k], x[b, y0, x1, k], x[b, y0, x2, k]
                    b0, b1, b2 = x[b, y1, x0, k], x[b, y1, x1, k], x[b, y1, x2, k]
                    c0, c1, c2 = x[b, y2, x0, k], x[b, y2, x1, k], x[b, y2, x2, k]
                    high = max(
                        max(max(a0, a1), max(a2, b0)), max(max(b1, b2), max(c0, max(c1, c2)))
                    )
                    low = min(min(min(a0, a1), min(a2, b0)), min(min(b1, b2), min(c0, min(c1, c2))))
                    out[b, i, j, k] = _prelu_of_extremes(high, low, slope[k])

    @_loop
    def prelu_rows(x, slope) -> None:  # pragma: no cover - compiled
        """PReLU of (pixels, channels) rows in place, as PyTorch computes it (x if x > 0, else
        slope * x), a block of rows at a time."""
        n, c = x.shape
        block = 1024
        for part in prange((n + block - 1) // block):
            for r in range(part * block, min(n, part * block + block)):
                for k in range(c):
                    v = x[r, k]
                    x[r, k] = v if v > 0 else slope[k] * v

    @_loop
    def greedy(boxes, ends, threshold, by_min, keep) -> None:  # pragma: no cover - compiled
        """Per group, each box not yet dropped is kept and drops the later boxes it overlaps
        by more than ``threshold``: over the union of the two (no +1), compared in float64,
        or over the smaller box (+1 pixel sizes), compared in float32."""
        one = np.float32(1.0) if by_min else np.float32(0.0)
        zero = np.float32(0.0)
        for g in prange(len(ends)):
            first, last = ends[g - 1] if g else 0, ends[g]
            dropped = np.zeros(last - first, np.bool_)
            for a in range(first, last):
                if dropped[a - first]:
                    continue
                keep[a] = True
                ax1, ay1, ax2, ay2 = boxes[a, 0], boxes[a, 1], boxes[a, 2], boxes[a, 3]
                area_a = (ax2 - ax1 + one) * (ay2 - ay1 + one)
                for b in range(a + 1, last):
                    if dropped[b - first]:
                        continue
                    bx1, by1, bx2, by2 = boxes[b, 0], boxes[b, 1], boxes[b, 2], boxes[b, 3]
                    area_b = (bx2 - bx1 + one) * (by2 - by1 + one)
                    w = max(min(ax2, bx2) - max(ax1, bx1) + one, zero)
                    h = max(min(ay2, by2) - max(ay1, by1) + one, zero)
                    inter = w * h
                    if by_min:
                        over = inter / min(area_a, area_b) > np.float32(threshold)
                    else:
                        over = np.float64(inter / (area_a + area_b - inter)) > threshold
                    if over:
                        dropped[b - first] = True
