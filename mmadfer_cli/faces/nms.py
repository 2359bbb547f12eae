"""Non-maximum suppression in torch, for many groups (frames, pyramid scales) at once.

Greedy NMS is sequential by nature; this is Cluster-NMS (Zheng et al.,
"Enhancing Geometric Factors in Model Learning and Inference for Object
Detection and Instance Segmentation", 2021): with the overlap matrix of the
boxes sorted by score, "kept" is refined as "not overlapped by a kept,
higher-scored box" until it stops changing, which gives exactly the greedy
result with a handful of matrix steps instead of a loop per box. It runs on
whatever device the boxes are on. Two overlap measures, as MTCNN uses them:
``union`` is torchvision's IoU (areas without the +1), ``min`` is the
intersection over the smaller box with the +1 pixel convention of the
original MTCNN code. On the CPU the greedy loop itself runs, compiled
(``mtcnn_kernels.greedy_nms``, where the compiled loops run), with the same
arithmetic: a few boxes a group, where the matrices cost more than the loop.
"""

from __future__ import annotations

from typing import Literal

import torch

from mmadfer_cli.faces import mtcnn_kernels

Overlap = Literal["union", "min"]
# Largest overlap matrix (groups x boxes x boxes) built in one step; more groups are done in turns.
MATRIX_BUDGET = 1 << 22


def _overlaps(boxes: torch.Tensor, threshold: float, mode: Overlap) -> torch.Tensor:
    """(G, M, M) float: 1 where box j overlaps box i by more than ``threshold``, of (G, M, 4)."""
    x1, y1, x2, y2 = boxes.unbind(-1)
    one = 1.0 if mode == "min" else 0.0
    areas = (x2 - x1 + one) * (y2 - y1 + one)
    w = torch.minimum(x2[:, :, None], x2[:, None, :])
    w -= torch.maximum(x1[:, :, None], x1[:, None, :])
    h = torch.minimum(y2[:, :, None], y2[:, None, :])
    h -= torch.maximum(y1[:, :, None], y1[:, None, :])
    if one:
        w += one
        h += one
    inter = w.clamp_(min=0).mul_(h.clamp_(min=0))
    if mode == "min":
        # The numpy "Min" code divides and compares in float32.
        ratio = inter.div_(torch.minimum(areas[:, :, None], areas[:, None, :]))
        return (ratio > torch.tensor(threshold, dtype=ratio.dtype)).to(boxes.dtype)
    # torchvision divides in float and compares with a double threshold.
    ratio = inter / (areas[:, :, None] + areas[:, None, :] - inter)
    return (ratio.double() > threshold).to(boxes.dtype)


def _suppress(
    boxes: torch.Tensor, valid: torch.Tensor, threshold: float, mode: Overlap
) -> torch.Tensor:
    """Kept mask (G, M) for score-sorted, padded boxes (G, M, 4)."""
    over = _overlaps(boxes, threshold, mode)
    m = boxes.shape[1]
    # over[g, j, i]: j outranks i (j < i) and overlaps it; padding neither suppresses nor counts.
    over *= torch.ones(m, m, dtype=over.dtype, device=over.device).triu_(diagonal=1)
    over *= valid[:, :, None].to(over.dtype)
    keep = valid
    while True:
        # How many kept boxes overlap each box: one batched matrix product per round.
        hits = torch.bmm(keep.to(over.dtype)[:, None, :], over)[:, 0]
        new_keep = valid & (hits == 0)
        if torch.equal(new_keep, keep):
            return keep
        keep = new_keep


def grouped_nms(
    boxes: torch.Tensor,
    scores: torch.Tensor,
    groups: torch.Tensor,
    threshold: float,
    mode: Overlap = "union",
) -> torch.Tensor:
    """Indices of the boxes greedy NMS keeps within each group, by group then falling score.

    A box is dropped when a higher-scored box of its group overlaps it by more than
    ``threshold``. ``boxes`` (n, 4) x1, y1, x2, y2; ``scores`` (n,); ``groups`` (n,) integers.
    """
    n = len(boxes)
    if n == 0:
        return torch.zeros(0, dtype=torch.long, device=boxes.device)
    device = boxes.device
    order = torch.argsort(scores, descending=True, stable=True)
    order = order[torch.argsort(groups[order], stable=True)]
    _, counts = torch.unique_consecutive(groups[order], return_counts=True)
    if mtcnn_kernels.runs_on(boxes) and boxes.dtype == torch.float32:
        return order[mtcnn_kernels.greedy_nms(boxes[order], counts, threshold, mode == "min")]
    starts = torch.cumsum(counts, 0) - counts
    rank = torch.arange(n, device=device) - torch.repeat_interleave(starts, counts)
    # Groups are padded to the largest of their turn: turns of groups of similar sizes.
    by_size = torch.argsort(counts, stable=True)
    turn_of = torch.empty_like(by_size)
    sizes = counts[by_size].tolist()
    turns, first = [], 0
    while first < len(sizes):
        last = first + 1
        while last < len(sizes) and (last - first + 1) * sizes[last] ** 2 <= MATRIX_BUDGET:
            last += 1
        turns.append((first, last, sizes[last - 1]))
        first = last
    slot = torch.empty_like(by_size)
    for t, (first, last, _) in enumerate(turns):
        turn_of[by_size[first:last]] = t
        slot[by_size[first:last]] = torch.arange(last - first, device=device)
    box_turn = torch.repeat_interleave(turn_of, counts)
    box_slot = torch.repeat_interleave(slot, counts)
    kept = []
    for t, (first, last, m) in enumerate(turns):
        mine = (box_turn == t).nonzero()[:, 0]
        g, r = box_slot[mine], rank[mine]
        padded = torch.zeros(last - first, m, 4, dtype=boxes.dtype, device=device)
        valid = torch.zeros(last - first, m, dtype=torch.bool, device=device)
        padded[g, r] = boxes[order[mine]]
        valid[g, r] = True
        keep = _suppress(padded, valid, threshold, mode)
        kept.append(mine[keep[g, r]])
    return order[torch.sort(torch.cat(kept)).values]
