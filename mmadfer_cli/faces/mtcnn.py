"""MTCNN face detection as the official MMA-DFER preprocessing runs it, batched, in torch.

The model was trained on faces that facenet-pytorch's ``MTCNN.detect()``
found (the official MAFW extraction), so this reproduces that function with
its defaults: smallest face 20 px, stage thresholds 0.6 / 0.7 / 0.7, pyramid
factor 0.709, area resampling, (x - 127.5) / 128 input scaling, its box
arithmetic, and its non-maximum suppression at each step (IoU 0.5 per scale,
0.7 per frame, 0.7 after R-Net, then 0.7 on the intersection over the
smaller box after O-Net). Boxes come out largest first, as there.

What differs is how the work is laid out, not its arithmetic: frames of one
size go through each pyramid level together; the candidates of all frames are
cut from per-frame integral images (exactly the area resampling's bin means)
and scored by R-Net and O-Net together (on the CPU 128 at a time, so that their
maps stay in cache); suppression is grouped per frame and scale
(``faces.nms``). The same code runs on the CPU and on GPUs; on the CPU its memory-bound
steps run as compiled loops with the same arithmetic (``faces.mtcnn_kernels``).
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from mmadfer_cli.faces import mtcnn_kernels
from mmadfer_cli.faces.mtcnn_nets import ONet, PNet, RNet
from mmadfer_cli.faces.mtcnn_weights import load_state_dicts, sources_checksum
from mmadfer_cli.faces.nms import grouped_nms
from mmadfer_cli.model.devices import device_lock

MIN_FACE = 20
THRESHOLDS = (0.6, 0.7, 0.7)
FACTOR = 0.709
# Pixels of one same-size sub-batch: bounds memory (about 60 bytes a pixel on the way through).
# A CUDA card has memory of its own; Apple's GPUs (MPS) share the system's, and keep the CPU's.
CPU_MAX_PIXELS = 1 << 24
CUDA_MAX_PIXELS = 1 << 26
# Crops cut and scored by R-Net or O-Net in one call. On the CPU a call's maps stay in cache
# (R-Net's first maps are 62 KB a crop): R-Net ran 1.3 times faster in calls of 128 than of
# 1775. A GPU (CUDA, MPS) wants few, large calls.
CPU_CROP_BATCH = 128
GPU_CROP_BATCH = 8192


@dataclass(frozen=True)
class FrameFaces:
    """One frame's faces: ``boxes`` (k, 5) x1, y1, x2, y2, probability; ``landmarks`` (k, 5, 2)
    x, y of the eyes, nose and mouth corners (subject's right eye first)."""

    boxes: np.ndarray
    landmarks: np.ndarray


def pyramid_scales(height: int, width: int, min_face: int = MIN_FACE) -> list[float]:
    """The image scales P-Net runs at: 12 / min_face, shrunk by FACTOR while the shorter side
    stays at least 12 px."""
    scale = 12.0 / min_face
    shorter = min(height, width) * scale
    scales = []
    while shorter >= 12:
        scales.append(scale)
        scale *= FACTOR
        shorter *= FACTOR
    return scales


@functools.lru_cache(maxsize=1)
def _state_dicts() -> dict[str, dict[str, torch.Tensor]]:
    return load_state_dicts()


def _windows(
    reg: torch.Tensor, probs: torch.Tensor, scale: float, threshold: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """P-Net's face windows at one scale: boxes (n, 9) x1, y1, x2, y2, score, 4 offsets in image
    pixels, and each window's frame index."""
    mask = probs >= threshold
    where = mask.nonzero()
    offsets = reg.permute(1, 0, 2, 3)[:, mask].permute(1, 0)
    xy = where[:, 1:].to(reg.dtype).flip(1)
    top_left = ((2 * xy + 1) / scale).floor()
    bottom_right = ((2 * xy + 12) / scale).floor()
    return torch.cat([top_left, bottom_right, probs[mask][:, None], offsets], dim=1), where[:, 0]


def _square(boxes: torch.Tensor) -> torch.Tensor:
    """Boxes grown to squares around their centres (MTCNN's ``rerec``), in place."""
    h = boxes[:, 3] - boxes[:, 1]
    w = boxes[:, 2] - boxes[:, 0]
    side = torch.maximum(w, h)
    boxes[:, 0] = boxes[:, 0] + w * 0.5 - side * 0.5
    boxes[:, 1] = boxes[:, 1] + h * 0.5 - side * 0.5
    boxes[:, 2:4] = boxes[:, 0:2] + side[:, None]
    return boxes


def _regress(boxes: torch.Tensor, offsets: torch.Tensor) -> torch.Tensor:
    """R-Net and O-Net box regression (sizes with the +1 pixel convention), in place."""
    w = boxes[:, 2] - boxes[:, 0] + 1
    h = boxes[:, 3] - boxes[:, 1] + 1
    boxes[:, :4] = boxes[:, :4] + offsets[:, :4] * torch.stack([w, h, w, h], dim=1)
    return boxes


def _regions(boxes: torch.Tensor, width: int, height: int) -> tuple[torch.Tensor, ...]:
    """The pixel rows [y0, y1) and columns [x0, x1) each box reads, clipped to the frame
    (MTCNN's ``pad``: truncated toward zero, one-based, inclusive ends)."""
    whole = boxes[:, :4].trunc().int()
    x = whole[:, 0].clamp(min=1)
    y = whole[:, 1].clamp(min=1)
    ex = whole[:, 2].clamp(max=width)
    ey = whole[:, 3].clamp(max=height)
    return y - 1, ey, x - 1, ex


def _integral(frames: torch.Tensor, block: int = 16) -> torch.Tensor:
    """(B, H + 1, W + 1, 3) int32 summed-area tables of uint8 (B, H, W, 3) frames: exact sums.

    Rows are summed along, then down in blocks of ``block`` rows that stay in cache, each
    block's carry added after (PyTorch's ``cumsum`` down a whole frame walks a column at a
    time, two to three times slower); all in place in the table. Integers, so exact."""
    b, h, w, c = frames.shape
    table = torch.empty(b, h + 1, w + 1, c, dtype=torch.int32, device=frames.device)
    table[:, 0] = 0
    table[:, 1:, 0] = 0
    inner = table[:, 1:, 1:]
    torch.cumsum(frames, 2, dtype=torch.int32, out=inner)
    whole = h - h % block
    if whole:
        blocks = inner[:, :whole].view(b, whole // block, block, w, c)
        blocks.cumsum_(2)
        carry = blocks[:, :, -1].cumsum(1, dtype=torch.int32)
        blocks[:, 1:] += carry[:, :-1, None]
    if whole < h:
        tail = inner[:, whole:]
        tail.cumsum_(1)
        if whole:
            tail += inner[:, whole - 1 : whole]
    return table


def _bins(start: torch.Tensor, end: torch.Tensor, size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Adaptive average pooling's bin edges (floor and ceil of i * n / size) over [start, end):
    (K, size) first and last (exclusive) pixel of each bin."""
    n = (end - start).long()[:, None]
    i = torch.arange(size, device=start.device)[None]
    first = start.long()[:, None] + torch.div(i * n, size, rounding_mode="floor")
    last = start.long()[:, None] + torch.div((i + 1) * n + size - 1, size, rounding_mode="floor")
    return first, last


def _inputs(sums: torch.Tensor, rows: torch.Tensor, cols: torch.Tensor) -> torch.Tensor:
    """Bin sums (..., h, w, 3) as the nets' inputs: the bin means, divided as
    F.interpolate(mode="area") divides (by the height, then by the width), in MTCNN's scaling
    (mean - 127.5) / 128. The width's division and the 1/128 are one division by width * 128,
    the shift (127.5 / 128) comes after: the same values, since scaling by a power of two
    rounds the same, with one pass over the maps fewer."""
    kh = rows[..., :, None, None].to(torch.float32)
    kw = cols[..., None, :, None].to(torch.float32) * 128
    return sums.to(torch.float32).div_(kh).div_(kw).sub_(127.5 / 128)


def _rows(matrix: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """The rows of a 2-D tensor at ``index`` (any shape, flattened)."""
    return matrix.index_select(0, index.reshape(-1))


def _pyramid(
    frames: torch.Tensor, sizes: list[tuple[int, int]]
) -> tuple[torch.Tensor, Iterable[torch.Tensor]]:
    """The frames' summed-area tables and P-Net's input at each (height, width) of ``sizes``:
    on the CPU all at once by ``mtcnn_kernels`` where it runs, else each level when it is
    taken (a GPU holds one level at a time)."""
    if mtcnn_kernels.runs_on(frames):
        _, h, w, _ = frames.shape
        bins = [(_whole(h, height, frames.device), _whole(w, width, frames.device))
                for height, width in sizes]  # fmt: skip
        return mtcnn_kernels.pyramid(frames.numpy(), bins)
    table = _integral(frames)
    return table, (_resize(table, height, width) for height, width in sizes)


def _whole(n: int, size: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """The bins of a whole line of ``n`` pixels resized to ``size``: (1, size) first and last."""
    zero = torch.zeros(1, dtype=torch.long, device=device)
    return _bins(zero, zero + n, size)


def _resize(table: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Whole frames area-resized to height x width: float (B, 3, height, width), P-Net's input.
    Pixels are gathered as rows of an (n, 3) view with ``index_select``, which PyTorch copies
    several times faster than a gather along an inner dimension."""
    b, h, w, c = table.shape
    r0, r1 = _whole(h - 1, height, table.device)
    c0, c1 = _whole(w - 1, width, table.device)
    lines = table.view(b * h, w * c)
    first = torch.arange(b, device=table.device)[:, None] * h
    rows = _rows(lines, first + r1).sub_(_rows(lines, first + r0))
    pixels = rows.view(-1, c)
    start = torch.arange(b * height, device=table.device)[:, None] * w
    sums = _rows(pixels, start + c1).sub_(_rows(pixels, start + c0))
    sums = sums.view(b, height, width, c)
    # Channels-last strides, which the CPU convolutions run fastest on.
    return _inputs(sums, r1[0] - r0[0], c1[0] - c0[0]).permute(0, 3, 1, 2)


def _cut(
    table: torch.Tensor, frame: torch.Tensor, region: tuple[torch.Tensor, ...], size: int
) -> torch.Tensor:
    """Regions resized to size x size by area averaging, as F.interpolate(mode="area") on each
    crop would: float (K, 3, size, size), the net's input (on the CPU by ``mtcnn_kernels``
    where it runs)."""
    y0, y1, x0, x1 = region
    r0, r1 = _bins(y0, y1, size)
    c0, c1 = _bins(x0, x1, size)
    if mtcnn_kernels.runs_on(table):
        return mtcnn_kernels.area_means(table, frame, (r0, r1), (c0, c1))
    _, h, w, c = table.shape
    flat = table.reshape(-1, c)
    base = frame.long()[:, None, None] * (h * w)

    def at(r: torch.Tensor, col: torch.Tensor) -> torch.Tensor:
        index = base + r[:, :, None] * w + col[:, None, :]
        return _rows(flat, index).view(*index.shape, c)

    sums = at(r1, c1).sub_(at(r0, c1)).sub_(at(r1, c0)).add_(at(r0, c0))
    return _inputs(sums, r1 - r0, c1 - c0).permute(0, 3, 1, 2)


class MtcnnDetector:
    """facenet-pytorch's ``MTCNN().detect()`` for batches of uint8 RGB frames, on any device."""

    name = "mtcnn"

    def __init__(self, device: str | torch.device = "cpu", min_face: int = MIN_FACE) -> None:
        self.device = torch.device(device)
        self.min_face = min_face
        self.weights_sha256 = sources_checksum()
        state = _state_dicts()
        self.pnet, self.rnet, self.onet = PNet(), RNet(), ONet()
        for net, key in ((self.pnet, "pnet"), (self.rnet, "rnet"), (self.onet, "onet")):
            net.load_state_dict(state[key])
            with device_lock(self.device):
                net.eval().requires_grad_(False).to(self.device)
        self.max_pixels = CUDA_MAX_PIXELS if self.device.type == "cuda" else CPU_MAX_PIXELS
        self.crop_batch = CPU_CROP_BATCH if self.device.type == "cpu" else GPU_CROP_BATCH
        if self.device.type == "cpu":  # the CPU loops loaded (or compiled) now, not mid-run
            mtcnn_kernels.available()

    def detect(self, frames: np.ndarray | Sequence[np.ndarray]) -> list[np.ndarray]:
        """Per frame, (k, 5) float32 boxes x1, y1, x2, y2 and probability, largest first."""
        return [faces.boxes for faces in self.detect_faces(frames)]

    def detect_faces(self, frames: np.ndarray | Sequence[np.ndarray]) -> list[FrameFaces]:
        """Per frame, its boxes and five landmarks. Frames may differ in size: each size is
        batched on its own."""
        out: list[FrameFaces | None] = [None] * len(frames)
        by_shape: dict[tuple[int, ...], list[int]] = {}
        for i, frame in enumerate(frames):
            by_shape.setdefault(tuple(frame.shape), []).append(i)
        for shape, indices in by_shape.items():
            step = max(1, self.max_pixels // (shape[0] * shape[1]))
            for first in range(0, len(indices), step):
                part = indices[first : first + step]
                batch = np.stack([np.asarray(frames[i], dtype=np.uint8) for i in part])
                for i, faces in zip(part, self._detect_batch(batch), strict=True):
                    out[i] = faces
        return out  # type: ignore[return-value]

    @torch.inference_mode()
    def _detect_batch(self, frames: np.ndarray) -> list[FrameFaces]:
        n, height, width = frames.shape[:3]
        with device_lock(self.device):
            scales = pyramid_scales(height, width, self.min_face)
            sizes = [(int(height * scale + 1), int(width * scale + 1)) for scale in scales]
            table, levels = _pyramid(torch.from_numpy(frames).to(self.device), sizes)
            boxes, frame = self._propose(levels, scales, n)
            if len(boxes):
                boxes, frame = self._refine(table, boxes, frame, width, height)
            landmarks = torch.zeros(0, 5, 2, device=self.device)
            if len(boxes):
                boxes, frame, landmarks = self._output(table, boxes, frame, width, height)
            return self._per_frame(n, boxes, frame, landmarks)

    def _propose(
        self, levels: Iterable[torch.Tensor], scales: list[float], n: int
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """P-Net over the pyramid's levels (at ``scales``, of ``n`` frames); suppression per
        scale and frame, then per frame; the candidates regressed and squared."""
        found = [torch.zeros(0, 9, device=self.device)]
        frames = [torch.zeros(0, dtype=torch.long, device=self.device)]
        groups = frames.copy()
        for level, (scale, scaled) in enumerate(zip(scales, levels, strict=True)):
            reg, probs = self.pnet(scaled)
            boxes, frame = _windows(reg, probs[:, 1], scale, THRESHOLDS[0])
            found.append(boxes)
            frames.append(frame)
            groups.append(frame + level * n)
        boxes, frame, group = torch.cat(found), torch.cat(frames), torch.cat(groups)
        keep = grouped_nms(boxes[:, :4], boxes[:, 4], group, 0.5)
        boxes, frame = boxes[keep], frame[keep]
        keep = grouped_nms(boxes[:, :4], boxes[:, 4], frame, 0.7)
        boxes, frame = boxes[keep], frame[keep]
        regw = boxes[:, 2] - boxes[:, 0]
        regh = boxes[:, 3] - boxes[:, 1]
        corners = boxes[:, :4] + boxes[:, 5:9] * torch.stack([regw, regh, regw, regh], dim=1)
        return _square(torch.cat([corners, boxes[:, 4:5]], dim=1)), frame

    def _scored(
        self,
        net: torch.nn.Module,
        table: torch.Tensor,
        boxes: torch.Tensor,
        frame: torch.Tensor,
        size: int,
        w: int,
        h: int,
    ) -> tuple[tuple[torch.Tensor, ...], torch.Tensor, torch.Tensor]:
        """``net``'s outputs for normalised size x size crops of the boxes that lie at least
        partly inside their frame, with those boxes and their frames (the others have no crop
        and are dropped). Crops are cut and scored ``crop_batch`` at a time, so that each call's
        crops and maps stay in cache."""
        region = _regions(boxes, w, h)
        inside = (region[1] > region[0]) & (region[3] > region[2])
        region = tuple(r[inside] for r in region)
        boxes, frame = boxes[inside], frame[inside]
        step, outs = self.crop_batch, []
        for i in range(0, max(len(frame), 1), step):  # one call at least: no crops, empty outputs
            part = tuple(r[i : i + step] for r in region)
            outs.append(net(_cut(table, frame[i : i + step], part, size)))
        return tuple(torch.cat(parts) for parts in zip(*outs, strict=True)), boxes, frame

    def _refine(
        self, table: torch.Tensor, boxes: torch.Tensor, frame: torch.Tensor, w: int, h: int
    ) -> tuple[torch.Tensor, torch.Tensor]:
        (reg, probs), boxes, frame = self._scored(self.rnet, table, boxes, frame, 24, w, h)
        score = probs[:, 1]
        passed = score > THRESHOLDS[1]
        boxes = torch.cat([boxes[passed, :4], score[passed, None]], dim=1)
        frame, reg = frame[passed], reg[passed]
        keep = grouped_nms(boxes[:, :4], boxes[:, 4], frame, 0.7)
        return _square(_regress(boxes[keep], reg[keep])), frame[keep]

    def _output(
        self, table: torch.Tensor, boxes: torch.Tensor, frame: torch.Tensor, w: int, h: int
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        (reg, points, probs), boxes, frame = self._scored(self.onet, table, boxes, frame, 48, w, h)
        score = probs[:, 1]
        passed = score > THRESHOLDS[2]
        boxes = torch.cat([boxes[passed, :4], score[passed, None]], dim=1)
        frame, reg, points = frame[passed], reg[passed], points[passed]
        bw = (boxes[:, 2] - boxes[:, 0] + 1)[:, None]
        bh = (boxes[:, 3] - boxes[:, 1] + 1)[:, None]
        landmarks = torch.stack(
            [bw * points[:, :5] + boxes[:, 0:1] - 1, bh * points[:, 5:] + boxes[:, 1:2] - 1], dim=2
        )
        boxes = _regress(boxes, reg)
        keep = grouped_nms(boxes[:, :4], boxes[:, 4], frame, 0.7, mode="min")
        return boxes[keep], frame[keep], landmarks[keep]

    @staticmethod
    def _per_frame(
        n: int, boxes: torch.Tensor, frame: torch.Tensor, landmarks: torch.Tensor
    ) -> list[FrameFaces]:
        boxes_np = boxes.cpu().numpy().astype(np.float32)
        landmarks_np = landmarks.cpu().numpy().astype(np.float32)
        frame_np = frame.cpu().numpy()
        out = []
        for i in range(n):
            mine = np.nonzero(frame_np == i)[0]
            b = boxes_np[mine].reshape(-1, 5)
            order = np.argsort((b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1]), kind="stable")[::-1]
            out.append(FrameFaces(b[order], landmarks_np[mine][order].reshape(-1, 5, 2)))
        return out
