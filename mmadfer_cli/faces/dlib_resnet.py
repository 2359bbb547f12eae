"""dlib's ResNet face descriptor (``dlib_face_recognition_resnet_model_v1``) in PyTorch.

dlib's CPU build runs the network on one core while holding the GIL; PyTorch
runs the same arithmetic on every core it is given and lets other threads go
on. The weights are read from dlib's own file (``faces.dlib_weights``), so
nothing is converted or downloaded.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import TypeVar

import torch
import torch.nn.functional as F
from torch import nn

from mmadfer_cli.faces.dlib_weights import (
    AddPrev,
    Affine,
    Conv,
    DescriptorWeights,
    Fc,
    Layer,
    Pool,
    Relu,
    read_descriptor_weights,
)

_INPUT_SCALE = 256.0  # dlib's input layer: (pixel - channel mean) / 256
_L = TypeVar("_L", Conv, Affine, Pool, Relu, AddPrev, Fc)


def _pool(x: torch.Tensor, pool: Pool) -> torch.Tensor:
    """dlib's pooling: windows from the top left, padding never counted, (0, 0) = everything."""
    window = pool.window if pool.window != (0, 0) else tuple(x.shape[2:])
    if pool.is_max:
        return F.max_pool2d(x, window, pool.stride, pool.padding)
    return F.avg_pool2d(x, window, pool.stride, pool.padding, count_include_pad=False)


def _zero_padded_sum(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """dlib's add_prev: maps of different sizes add as if zero-padded at the far ends (this net
    adds 3 x 3 to 4 x 4 maps, 1 x 1 to 2 x 2 ones and 256 to 128 channels)."""
    if a.shape == b.shape:
        return a + b
    _, c, h, w = (max(i, j) for i, j in zip(a.shape, b.shape, strict=True))

    def padded(t: torch.Tensor) -> torch.Tensor:
        return F.pad(t, (0, w - t.shape[3], 0, h - t.shape[2], 0, c - t.shape[1]))

    return padded(a) + padded(b)


class _ConvAffine(nn.Module):
    """A convolution, its affine layer (per-channel scale and shift) and maybe a relu."""

    def __init__(self, conv: Conv, affine: Affine, relu: bool) -> None:
        super().__init__()
        weight = torch.from_numpy(conv.weight).contiguous(memory_format=torch.channels_last)
        self.register_buffer("weight", weight)  # channels-last: ~1.5x faster on CPU, measured
        self.register_buffer("bias", None if conv.bias is None else torch.from_numpy(conv.bias))
        self.register_buffer("gamma", torch.from_numpy(affine.gamma).view(1, -1, 1, 1))
        self.register_buffer("beta", torch.from_numpy(affine.beta).view(1, -1, 1, 1))
        self.stride, self.padding, self.relu = conv.stride, conv.padding, relu

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.conv2d(x, self.weight, self.bias, self.stride, self.padding)
        x = torch.addcmul(self.beta, x, self.gamma)
        return F.relu(x) if self.relu else x


class _Block(nn.Module):
    """relu(affine(con(relu(affine(con(x))))) + x), x average-pooled where the block strides."""

    def __init__(self, first: _ConvAffine, second: _ConvAffine, pool: Pool | None) -> None:
        super().__init__()
        self.first, self.second, self.pool = first, second, pool

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skip = x if self.pool is None else _pool(x, self.pool)
        return F.relu(_zero_padded_sum(self.second(self.first(x)), skip))


class _Layers:
    """The parsed layers in order, taken one by one, each checked to be of the kind expected."""

    def __init__(self, weights: DescriptorWeights) -> None:
        self._layers, self._at, self.source = weights.layers, 0, weights.source

    def next_is(self, kind: type[Layer]) -> bool:
        """Whether the next layer is a ``kind``."""
        return self._at < len(self._layers) and isinstance(self._layers[self._at], kind)

    def take(self, kind: type[_L]) -> _L:
        """The next layer, which must be a ``kind``."""
        layer = self._layers[self._at] if self._at < len(self._layers) else None
        if not isinstance(layer, kind):
            raise ValueError(
                f"{self.source}: a {type(layer).__name__} where a {kind.__name__} should be"
            )
        self._at += 1
        return layer

    def done(self) -> None:
        """Every layer was used."""
        if self._at != len(self._layers):
            raise ValueError(f"{self.source}: {len(self._layers) - self._at} layers left over")


class DlibFaceResNet(nn.Module):
    """dlib's face descriptor network: (n, 3, 150, 150) RGB chips, uint8 or float, as
    ``dlib.get_face_chip(image, shape, 150, 0.25)`` cuts them -> (n, 128) float32, the
    network's output as it is (dlib does not normalise it either). Built from the layers as
    the file lists them (the reader checked their order): a stem, residual blocks (those with
    a pooling before their sum halve the map), a global mean and the last layer. Stateless:
    one instance serves any number of threads."""

    def __init__(self, weights: DescriptorWeights) -> None:
        super().__init__()
        self.size, source = weights.size, weights.source
        self.register_buffer("means", torch.tensor(weights.means).view(1, 3, 1, 1))
        layers, channels = _Layers(weights), 3

        def conv_affine(relu: bool) -> _ConvAffine:
            nonlocal channels
            conv, affine = layers.take(Conv), layers.take(Affine)
            if conv.weight.shape[1] != channels or affine.gamma.size != conv.weight.shape[0]:
                raise ValueError(
                    f"{source}: a convolution {conv.weight.shape} with {affine.gamma.size} "
                    f"affine channels follows {channels} channels"
                )
            channels = conv.weight.shape[0]
            if relu:
                layers.take(Relu)
            return _ConvAffine(conv, affine, relu)

        self.stem = conv_affine(relu=True)
        self.stem_pool = layers.take(Pool)
        blocks = []
        while layers.next_is(Conv):
            block_channels = channels
            first, second = conv_affine(relu=True), conv_affine(relu=False)
            pool = layers.take(Pool) if layers.next_is(Pool) else None
            layers.take(AddPrev)
            layers.take(Relu)
            channels = max(channels, block_channels)
            blocks.append(_Block(first, second, pool))
        self.blocks = nn.Sequential(*blocks)
        self.head_pool = layers.take(Pool)
        fc = layers.take(Fc)
        layers.done()
        if fc.weight.shape[0] != channels:
            raise ValueError(f"{source}: the last layer takes {fc.weight.shape[0]} of {channels}")
        self.register_buffer("fc", torch.from_numpy(fc.weight))

    def forward(self, chips: torch.Tensor) -> torch.Tensor:
        """(n, 128) descriptors of (n, 3, height, width) chips of the file's input size."""
        if chips.ndim != 4 or tuple(chips.shape[1:]) != (3, *self.size):
            raise ValueError(
                f"expected chips (n, 3, {self.size[0]}, {self.size[1]}), got {chips.shape}"
            )
        x = (chips.float() - self.means) / _INPUT_SCALE
        x = _pool(self.stem(x.contiguous(memory_format=torch.channels_last)), self.stem_pool)
        return _pool(self.blocks(x), self.head_pool).flatten(1) @ self.fc


_nets: dict[Path, DlibFaceResNet] = {}
_nets_lock = threading.Lock()


def descriptor_net(path: Path) -> DlibFaceResNet:
    """The network of dlib's file at ``path``, read and built once per process however many
    embedders use it (ValueError naming the file if it is not the network expected)."""
    path = Path(path).resolve()
    with _nets_lock:
        if path not in _nets:
            _nets[path] = DlibFaceResNet(read_descriptor_weights(path)).eval()
        return _nets[path]
