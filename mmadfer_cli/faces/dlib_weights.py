"""dlib's face recognition ResNet file (``dlib_face_recognition_resnet_model_v1.dat``) read.

The file is dlib's ``serialize()`` of the network type in its
``dnn_face_recognition_ex.cpp`` example: a ResNet-29 whose 14 residual blocks
are known here (``LEVELS``), while each layer's sizes, strides, padding and
weights come from the file. Anything the reader does not expect is a
ValueError naming the file. ``faces.dlib_resnet`` builds the network from it.

dlib's serialization, as far as this network uses it: integers are a control
byte (low 4 bits: how many little-endian bytes follow, 0x80: negative) and
those bytes; a float is two such integers, mantissa then power-of-two
exponent; a bool is ASCII '0' or '1'; a string is its length then its bytes;
a tensor is version 2, four sizes, then IEEE little-endian float32 values.
Every wrapper (loss, layer, tag, skip) writes its version and then what it
wraps, so all the versions come first (outermost first), then the input
layer, then each layer's details from the input up.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import NoReturn

import numpy as np

LEVELS = ((3, False), (4, True), (3, True), (3, True), (1, True))
_SPECIAL_EXPONENTS = {32000: math.inf, 32001: -math.inf, 32002: math.nan}


@dataclass(frozen=True)
class Conv:
    """A convolution: weight (out, in, rows, cols), zero padding, cross-correlation as dlib's."""

    weight: np.ndarray
    bias: np.ndarray | None
    stride: tuple[int, int]
    padding: tuple[int, int]


@dataclass(frozen=True)
class Affine:
    """Per-channel ``x * gamma + beta`` (dlib's frozen batch norm)."""

    gamma: np.ndarray
    beta: np.ndarray


@dataclass(frozen=True)
class Pool:
    """Max or mean over windows, padding left out; a (0, 0) window is the whole map."""

    is_max: bool
    window: tuple[int, int]
    stride: tuple[int, int]
    padding: tuple[int, int]


@dataclass(frozen=True)
class Relu:
    """max(x, 0)."""


@dataclass(frozen=True)
class AddPrev:
    """Sum with the block's input, the smaller map zero-padded (channels, rows, columns)."""


@dataclass(frozen=True)
class Fc:
    """A fully connected layer without bias: weight (inputs, outputs), dlib's layout."""

    weight: np.ndarray


Layer = Conv | Affine | Pool | Relu | AddPrev | Fc


@dataclass(frozen=True)
class DescriptorWeights:
    """The parsed file: input means (R, G, B), input size and the layers from the input up."""

    source: Path
    means: tuple[float, float, float]
    size: tuple[int, int]
    layers: tuple[Layer, ...]


def _plan() -> list[str]:
    """The layers from the input up as dlib writes them; 'tag' marks a tag or skip layer."""
    plan = ["con", "affine", "relu", "max_pool"]
    for blocks, down in LEVELS:
        for i in range(blocks):
            plan += ["tag", "con", "affine", "relu", "con", "affine"]
            plan += ["tag", "tag", "avg_pool"] if down and i == 0 else []
            plan += ["add_prev", "relu"]
    return [*plan, "avg_pool", "fc"]


class _Reader:
    """A cursor over the file's bytes; every problem raises ValueError naming the file."""

    def __init__(self, data: bytes, path: Path) -> None:
        self.data, self.path, self.pos = data, path, 0

    def fail(self, problem: str) -> NoReturn:
        """Stop reading: what was wrong, where, in which file."""
        raise ValueError(
            f"{self.path} is not dlib's face recognition ResNet as expected: {problem} "
            f"(at byte {self.pos} of {len(self.data)})"
        )

    def take(self, count: int) -> bytes:
        """The next ``count`` bytes."""
        if count < 0:
            self.fail(f"a negative length {count}")
        if count > len(self.data) - self.pos:
            self.fail(f"the file ends early (needed {count} more bytes)")
        self.pos += count
        return self.data[self.pos - count : self.pos]

    def int(self) -> int:
        """dlib's compact integer: a control byte (size, sign), then the bytes."""
        control = self.take(1)[0]
        size = control & 0x0F
        if control & 0x70 or not 1 <= size <= 8:
            self.fail(f"bad integer control byte {control:#04x}")
        value = int.from_bytes(self.take(size), "little")
        return -value if control & 0x80 else value

    def float(self) -> float:
        """A mantissa and a power-of-two exponent (dlib's is 16 bits: larger is damage)."""
        mantissa, exponent = self.int(), self.int()
        if exponent in _SPECIAL_EXPONENTS:
            return _SPECIAL_EXPONENTS[exponent]
        if not -(1 << 15) <= exponent < 1 << 15:
            self.fail(f"a float exponent {exponent} out of range")
        try:
            return math.ldexp(mantissa, exponent)
        except OverflowError:
            self.fail(f"a float {mantissa} * 2^{exponent} too large")

    def bool(self) -> bool:
        """ASCII '0' or '1'."""
        byte = self.take(1)
        if byte not in (b"0", b"1"):
            self.fail(f"bad bool {byte!r}")
        return byte == b"1"

    def string(self) -> str:
        """A length, then that many bytes."""
        return self.take(self.int()).decode("latin-1")

    def version(self, *expected: str) -> str:
        """A layer's version string, which must be one of ``expected``."""
        found = self.string()
        if found not in expected:
            self.fail(f"found {found!r} where {' or '.join(map(repr, expected))} should be")
        return found

    def sizes(self) -> tuple[int, ...]:
        """A tensor's four sizes (samples, k, rows, cols), none negative."""
        shape = tuple(self.int() for _ in range(4))
        if min(shape) < 0:
            self.fail(f"negative tensor shape {shape}")
        return shape

    def tensor(self) -> np.ndarray:
        """A tensor's values, shaped (samples, k, rows, cols)."""
        if (version := self.int()) != 2:
            self.fail(f"tensor version {version}, not 2")
        shape = self.sizes()
        values = np.frombuffer(self.take(4 * math.prod(shape)), "<f4")
        return values.astype(np.float32).reshape(shape)

    def alias(self) -> tuple[int, ...]:
        """An alias tensor: only the shape of one part of a layer's parameters."""
        if (version := self.int()) != 1:
            self.fail(f"alias tensor version {version}, not 1")
        return self.sizes()

    def window(self) -> tuple[tuple[int, int], tuple[int, int], tuple[int, int]]:
        """(rows, cols), (stride y, x), (padding y, x) as convolutions and pools write them."""
        rows, cols, stride_y, stride_x, pad_y, pad_x = (self.int() for _ in range(6))
        return (rows, cols), (stride_y, stride_x), (pad_y, pad_x)


def _split(reader: _Reader, params: np.ndarray, *shapes: tuple[int, ...]) -> list[np.ndarray]:
    """A layer's parameter tensor cut into the parts its alias shapes describe."""
    flat, parts, start = params.reshape(-1), [], 0
    needed = sum(math.prod(shape) for shape in shapes)
    if needed != flat.size:
        reader.fail(f"{flat.size} parameters where the parts {shapes} take {needed}")
    for shape in shapes:
        parts.append(flat[start : start + math.prod(shape)].reshape(shape))
        start += math.prod(shape)
    return parts


def _read_conv(reader: _Reader) -> Conv:
    version = reader.version("con_4", "con_5", "con_6")
    params = reader.tensor()
    filters = reader.int()
    window, stride, padding = reader.window()
    shape, _ = reader.alias(), reader.alias()  # filters; biases
    for _ in range(4):  # learning rate and weight decay multipliers
        reader.float()
    has_bias = version == "con_4" or reader.bool()
    if version == "con_6" and reader.bool():
        reader.fail("a convolution with a fused relu")
    if shape[0] != filters or shape[2:] != window or min(stride) < 1:
        reader.fail(f"convolution filters {shape} against {filters} of size {window}")
    if not all(0 <= p < w for p, w in zip(padding, window, strict=True)):
        reader.fail(f"convolution padding {padding} for a {window} window")
    if has_bias:
        weight, bias = _split(reader, params, shape, (filters,))
        return Conv(weight, bias, stride, padding)
    (weight,) = _split(reader, params, shape)
    return Conv(weight, None, stride, padding)


def _read_affine(reader: _Reader) -> Affine:
    version = reader.version("affine_", "affine_2")
    params = reader.tensor()
    gamma_shape, beta_shape = reader.alias(), reader.alias()
    if (mode := reader.int()) != 0 or gamma_shape[2:] != (1, 1):
        reader.fail(f"an affine layer in mode {mode} of shape {gamma_shape}, not per channel")
    if version == "affine_2" and reader.bool():
        reader.fail("a disabled affine layer")
    gamma, beta = _split(reader, params, gamma_shape[1:2], beta_shape[1:2])
    return Affine(gamma, beta)


def _read_relu(reader: _Reader) -> Relu:
    if reader.version("relu_", "relu_2") == "relu_2" and reader.bool():
        reader.fail("a disabled relu")
    return Relu()


def _read_pool(reader: _Reader, is_max: bool) -> Pool:
    reader.version("max_pool_2" if is_max else "avg_pool_2")
    window, stride, padding = reader.window()
    if min(stride) < 1 or (0 in window and window != (0, 0)) or min(padding) < 0:
        reader.fail(f"a pool of window {window}, stride {stride}, padding {padding}")
    if any(p > w // 2 for p, w in zip(padding, window, strict=True)):
        reader.fail(f"pool padding {padding} over half its window {window}")
    return Pool(is_max, window, stride, padding)


def _read_add_prev(reader: _Reader) -> AddPrev:
    reader.version("add_prev_")
    return AddPrev()


def _read_fc(reader: _Reader) -> Fc:
    version = reader.version("fc_2", "fc_3")
    outputs, inputs = reader.int(), reader.int()
    params = reader.tensor()
    weight_shape, _ = reader.alias(), reader.alias()
    if (bias_mode := reader.int()) != 1:
        reader.fail(f"a fully connected layer with bias (mode {bias_mode})")
    for _ in range(4):  # learning rate and weight decay multipliers
        reader.float()
    if version == "fc_3":
        reader.bool()  # use_bias: meaningless without a bias
    if weight_shape[:2] != (inputs, outputs):
        reader.fail(f"fully connected weights {weight_shape} for {inputs} -> {outputs}")
    (weight,) = _split(reader, params, (inputs, outputs))
    return Fc(weight)


_DETAILS = {
    "con": _read_conv,
    "affine": _read_affine,
    "relu": _read_relu,
    "max_pool": lambda reader: _read_pool(reader, True),
    "avg_pool": lambda reader: _read_pool(reader, False),
    "add_prev": _read_add_prev,
    "fc": _read_fc,
}


def read_descriptor_weights(path: Path) -> DescriptorWeights:
    """Parse dlib's face recognition ResNet file (ValueError naming it if it is not one)."""
    path = Path(path)
    reader = _Reader(path.read_bytes(), path)
    if (version := reader.int()) != 1:
        reader.fail(f"loss layer version {version}, not 1")
    if reader.version("loss_metric_", "loss_metric_2") == "loss_metric_2":
        for _ in range(2):  # margin and distance threshold: training only
            reader.float()
    plan = _plan()
    versions = []
    for index, kind in enumerate(reversed(plan)):  # outermost first
        version = reader.int()
        allowed = {1} if kind == "tag" else {2, 3} if index == len(plan) - 1 else {1, 2}
        if version not in allowed:
            reader.fail(f"{kind} wrapper version {version}, not {sorted(allowed)}")
        versions.append(version)
    reader.version("input_rgb_image_sized")
    means = (reader.float(), reader.float(), reader.float())
    size = (reader.int(), reader.int())
    layers: list[Layer] = []
    for kind, version in zip(plan, reversed(versions), strict=True):
        if kind == "tag":
            continue
        layers.append(_DETAILS[kind](reader))
        for _ in range(3):  # setup called, gradient stale, output disabled
            reader.bool()
        for _ in range(3 if len(layers) == 1 or version == 2 else 2):
            reader.tensor()  # training buffers (gradients, cached outputs): unused
        if len(layers) == 1 and version == 3:
            reader.int()  # sample expansion factor
    if reader.pos != len(reader.data):
        reader.fail(f"{len(reader.data) - reader.pos} unexpected bytes after the network")
    return DescriptorWeights(path, means, size, tuple(layers))
