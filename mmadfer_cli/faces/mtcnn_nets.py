"""MTCNN's three networks (Zhang et al. 2016), laid out as facenet-pytorch lays them out.

P-Net is fully convolutional and scores 12 x 12 windows of a whole image;
R-Net and O-Net score 24 x 24 and 48 x 48 crops of P-Net's candidates. The
dense layers read their input flattened in (width, height, channel) order,
the order of the original Caffe models, so that the published weights apply
unchanged. Parameter names equal facenet-pytorch's, so its state dicts and the
converted ``mtcnn`` package weights are interchangeable. Some layers run in forms that
give PyTorch's values bit for bit but avoid its slow CPU paths (``_prelu``,
``_max_pool_2x2``, ``_widened``).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from mmadfer_cli.faces import mtcnn_kernels


def _flatten_whc(x: torch.Tensor) -> torch.Tensor:
    """(N, C, H, W) -> (N, W * H * C), the Caffe models' flatten order (N may be 0)."""
    return x.permute(0, 3, 2, 1).flatten(1)


def _max_pool_2x2(x: torch.Tensor) -> torch.Tensor:
    """``MaxPool2d(2, 2, ceil_mode=True)`` of a channels-last map as maxima of strided views, an
    odd last row or column copied: the same values without the indices PyTorch's CPU kernel
    computes (several times faster on P-Net's maps)."""
    n, c, h, w = x.shape
    pairs_h, pairs_w = h // 2, w // 2
    rows = torch.empty(
        (n, c, h - pairs_h, w), dtype=x.dtype, device=x.device, memory_format=torch.channels_last
    )
    torch.maximum(
        x[..., 0 : 2 * pairs_h : 2, :], x[..., 1 : 2 * pairs_h : 2, :], out=rows[..., :pairs_h, :]
    )
    if h % 2:
        rows[..., pairs_h, :] = x[..., h - 1, :]
    out = torch.empty(
        (n, c, h - pairs_h, w - pairs_w),
        dtype=x.dtype,
        device=x.device,
        memory_format=torch.channels_last,
    )
    torch.maximum(
        rows[..., 0 : 2 * pairs_w : 2], rows[..., 1 : 2 * pairs_w : 2], out=out[..., :pairs_w]
    )
    if w % 2:
        out[..., pairs_w] = rows[..., w - 1]
    return out


def _prelu(x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """PReLU of a channels-last map whose channel count is not a multiple of 16: PyTorch's
    kernel runs such maps element by element, so neighbouring pixels are read as one wider row
    of channels (the weights repeated) that it vectorises. Same values."""
    n, c, h, w = x.shape
    group = 16 // math.gcd(c, 16)
    if group == 1 or not x.is_contiguous(memory_format=torch.channels_last) or (n * h * w) % group:
        return torch.prelu(x, weight)
    rows = x.permute(0, 2, 3, 1).reshape(-1, group * c)
    return torch.prelu(rows, weight.repeat(group)).view(n, h, w, c).permute(0, 3, 1, 2)


def _prelu_max_pool(x: torch.Tensor, slope: torch.Tensor, window: int) -> torch.Tensor:
    """``MaxPool2d(window, 2, ceil_mode=True)`` of ``PReLU(slope)`` (every MTCNN pooling has
    stride 2): in one pass over the map on the CPU (``mtcnn_kernels``) where it runs, else
    PyTorch's layers."""
    if mtcnn_kernels.pools(x):
        return mtcnn_kernels.prelu_max_pool(x, slope, window)
    x = _prelu(x, slope)
    if window == 2:
        return _max_pool_2x2(x)
    return F.max_pool2d(x, window, 2, ceil_mode=True)


def _prelu_in_place(x: torch.Tensor, slope: torch.Tensor) -> torch.Tensor:
    """``PReLU(slope)`` of a map the caller no longer needs: in place on the CPU
    (``mtcnn_kernels``) where it runs, else PyTorch's (``_prelu``)."""
    if mtcnn_kernels.pools(x):
        return mtcnn_kernels.prelu_(x, slope)
    return _prelu(x, slope)


def _widened(conv: nn.Conv2d, prelu: nn.PReLU, channels: int) -> tuple[torch.Tensor, ...]:
    """A convolution's weight, bias and PReLU slopes with zero filters added up to
    ``channels`` outputs: the added channels come out exactly 0."""
    extra = channels - conv.out_channels
    weight = torch.cat([conv.weight, conv.weight.new_zeros(extra, *conv.weight.shape[1:])])
    bias, slope = (torch.cat([t, t.new_zeros(extra)]) for t in (conv.bias, prelu.weight))
    return weight, bias, slope


def _zero_inputs(conv: nn.Conv2d, channels: int) -> torch.Tensor:
    """A convolution's weight reading ``channels`` inputs, the added ones with weight 0."""
    weight = conv.weight
    return torch.cat(
        [weight, weight.new_zeros(weight.shape[0], channels - weight.shape[1], *weight.shape[2:])],
        1,
    )


class PNet(nn.Module):
    """Proposal network: per 12 x 12 window (stride 2), box offsets (N, 4, h, w) and face
    probabilities (N, 2, h, w)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 10, kernel_size=3)
        self.prelu1 = nn.PReLU(10)
        self.conv2 = nn.Conv2d(10, 16, kernel_size=3)
        self.prelu2 = nn.PReLU(16)
        self.conv3 = nn.Conv2d(16, 32, kernel_size=3)
        self.prelu3 = nn.PReLU(32)
        self.conv4_1 = nn.Conv2d(32, 2, kernel_size=1)
        self.conv4_2 = nn.Conv2d(32, 4, kernel_size=1)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = _prelu_max_pool(self.conv1(x), self.prelu1.weight, 2)
        x = _prelu_in_place(self.conv2(x), self.prelu2.weight)
        x = _prelu_in_place(self.conv3(x), self.prelu3.weight)
        # Both 1 x 1 heads in one pass over the largest maps (a third of P-Net's time otherwise).
        weight = torch.cat([self.conv4_2.weight, self.conv4_1.weight])
        heads = F.conv2d(x, weight, torch.cat([self.conv4_2.bias, self.conv4_1.bias]))
        return heads[:, :4], torch.softmax(heads[:, 4:], dim=1)


class RNet(nn.Module):
    """Refinement network: for 24 x 24 crops, box offsets (N, 4) and face probabilities (N, 2)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 28, kernel_size=3)
        self.prelu1 = nn.PReLU(28)
        self.conv2 = nn.Conv2d(28, 48, kernel_size=3)
        self.prelu2 = nn.PReLU(48)
        self.conv3 = nn.Conv2d(48, 64, kernel_size=2)
        self.prelu3 = nn.PReLU(64)
        self.dense4 = nn.Linear(576, 128)
        self.prelu4 = nn.PReLU(128)
        self.dense5_1 = nn.Linear(128, 2)
        self.dense5_2 = nn.Linear(128, 4)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        # 28 maps widened to 32 (CPU kernels run whole vectors of 16 channels; PyTorch's pooling
        # is twice as fast): the same values, the added maps being 0 and read with weight 0.
        weight, bias, slope = _widened(self.conv1, self.prelu1, 32)
        x = _prelu_max_pool(F.conv2d(x, weight, bias), slope, 3)
        x = F.conv2d(x, _zero_inputs(self.conv2, 32), self.conv2.bias)
        x = _prelu_max_pool(x, self.prelu2.weight, 3)
        x = self.prelu3(self.conv3(x))
        x = self.prelu4(self.dense4(_flatten_whc(x)))
        return self.dense5_2(x), torch.softmax(self.dense5_1(x), dim=1)


class ONet(nn.Module):
    """Output network: for 48 x 48 crops, box offsets (N, 4), five landmarks (N, 10: x then y,
    relative to the crop) and face probabilities (N, 2)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 32, kernel_size=3)
        self.prelu1 = nn.PReLU(32)
        self.conv2 = nn.Conv2d(32, 64, kernel_size=3)
        self.prelu2 = nn.PReLU(64)
        self.conv3 = nn.Conv2d(64, 64, kernel_size=3)
        self.prelu3 = nn.PReLU(64)
        self.conv4 = nn.Conv2d(64, 128, kernel_size=2)
        self.prelu4 = nn.PReLU(128)
        self.dense5 = nn.Linear(1152, 256)
        self.prelu5 = nn.PReLU(256)
        self.dense6_1 = nn.Linear(256, 2)
        self.dense6_2 = nn.Linear(256, 4)
        self.dense6_3 = nn.Linear(256, 10)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        # Each PReLU and the max pooling after it (3 x 3, 3 x 3, 2 x 2; stride 2).
        x = _prelu_max_pool(self.conv1(x), self.prelu1.weight, 3)
        x = _prelu_max_pool(self.conv2(x), self.prelu2.weight, 3)
        x = _prelu_max_pool(self.conv3(x), self.prelu3.weight, 2)
        x = self.prelu4(self.conv4(x))
        x = self.prelu5(self.dense5(_flatten_whc(x)))
        return self.dense6_2(x), self.dense6_3(x), torch.softmax(self.dense6_1(x), dim=1)
