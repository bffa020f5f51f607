"""The IR: a sequential network of small layer dataclasses holding numpy arrays.

Shapes exclude the batch axis: images are (C, H, W), vectors (N,). Weights are stored (out, in) for
Dense and (out, in/groups, kh, kw) for Conv2d. ``Network.forward`` is the float reference every
importer and the converter are checked against.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Union

import numpy as np

from neuro.errors import NeuroError


def _pair(v) -> tuple[int, int]:
    return (int(v), int(v)) if np.isscalar(v) else (int(v[0]), int(v[1]))


@dataclass
class Conv2d:
    """y[o] = b[o] + sum_{c in group(o), ky, kx} W[o, c, ky, kx] x_pad[c, s*y + ky, s*x + kx]."""

    weight: np.ndarray
    bias: np.ndarray | None = None
    stride: tuple[int, int] = (1, 1)
    padding: tuple[int, int] = (0, 0)
    groups: int = 1

    def __post_init__(self):
        self.weight = np.asarray(self.weight, np.float32)
        if self.weight.ndim != 4:
            raise NeuroError(f"Conv2d weight must be 4-D (out, in/groups, kh, kw), got shape {self.weight.shape}")
        self.bias = np.zeros(self.weight.shape[0], np.float32) if self.bias is None else np.asarray(self.bias, np.float32)
        self.stride, self.padding, self.groups = _pair(self.stride), _pair(self.padding), int(self.groups)

    def output_shape(self, shape):
        c, h, w = _expect_image(self, shape)
        out, cin_g, kh, kw = self.weight.shape
        if c != cin_g * self.groups:
            raise NeuroError(f"Conv2d expects {cin_g * self.groups} input channels, got {c}: check the input shape")
        oh = (h + 2 * self.padding[0] - kh) // self.stride[0] + 1
        ow = (w + 2 * self.padding[1] - kw) // self.stride[1] + 1
        if oh < 1 or ow < 1:
            raise NeuroError(f"Conv2d kernel {kh}x{kw} does not fit a {h}x{w} input: check the input shape")
        return (out, oh, ow)

    def forward(self, x):
        return conv2d(x, self.weight, self.bias, self.stride, self.padding, self.groups)


@dataclass
class Dense:
    """y = W x + b, W of shape (out, in)."""

    weight: np.ndarray
    bias: np.ndarray | None = None

    def __post_init__(self):
        self.weight = np.asarray(self.weight, np.float32)
        if self.weight.ndim != 2:
            raise NeuroError(f"Dense weight must be 2-D (out, in), got shape {self.weight.shape}")
        self.bias = np.zeros(self.weight.shape[0], np.float32) if self.bias is None else np.asarray(self.bias, np.float32)

    def output_shape(self, shape):
        if len(shape) != 1 or shape[0] != self.weight.shape[1]:
            raise NeuroError(f"Dense expects a flat input of {self.weight.shape[1]} values, got shape {tuple(shape)}: "
                             "add a Flatten or check the input shape")
        return (self.weight.shape[0],)

    def forward(self, x):
        return x @ self.weight.T + self.bias


@dataclass
class AvgPool2d:
    """Mean over each kernel window (padding counts as zeros)."""

    kernel: tuple[int, int]
    stride: tuple[int, int] | None = None
    padding: tuple[int, int] = (0, 0)

    def __post_init__(self):
        self.kernel = _pair(self.kernel)
        self.stride = self.kernel if self.stride is None else _pair(self.stride)
        self.padding = _pair(self.padding)

    def as_conv(self, channels: int) -> Conv2d:
        """The same map as a depthwise convolution with weights 1/(kh*kw): how the engine runs it."""
        kh, kw = self.kernel
        w = np.full((channels, 1, kh, kw), 1.0 / (kh * kw), np.float32)
        return Conv2d(w, None, self.stride, self.padding, channels)

    def output_shape(self, shape):
        return self.as_conv(_expect_image(self, shape)[0]).output_shape(shape)

    def forward(self, x):
        return self.as_conv(x.shape[1]).forward(x)


@dataclass
class MaxPool2d:
    """Max over each kernel window."""

    kernel: tuple[int, int]
    stride: tuple[int, int] | None = None

    def __post_init__(self):
        self.kernel = _pair(self.kernel)
        self.stride = self.kernel if self.stride is None else _pair(self.stride)

    def output_shape(self, shape):
        c, h, w = _expect_image(self, shape)
        oh = (h - self.kernel[0]) // self.stride[0] + 1
        ow = (w - self.kernel[1]) // self.stride[1] + 1
        if oh < 1 or ow < 1:
            raise NeuroError(f"MaxPool2d kernel {self.kernel} does not fit a {h}x{w} input")
        return (c, oh, ow)

    def forward(self, x):
        return _windows(x, self.kernel, self.stride).max(axis=(-2, -1))


@dataclass
class Flatten:
    """(C, H, W) -> (C*H*W,) in C, H, W order (PyTorch/ONNX order; Keras files are permuted at import)."""

    def output_shape(self, shape):
        return (int(np.prod(shape)),)

    def forward(self, x):
        return x.reshape(x.shape[0], -1)


@dataclass
class ReLU:
    def output_shape(self, shape):
        return tuple(shape)

    def forward(self, x):
        return np.maximum(x, 0)


@dataclass
class QCFS:
    """The quantisation-clip-floor-shift activation (Bu et al. 2022, ICLR): with u = levels / threshold,
    y = clip(floor(x u + 1/2), 0, levels) / u. An SNN layer with scale ``threshold`` and V starting at half
    of it fires at this rate (``neuro.convert``)."""

    threshold: float
    levels: int

    def __post_init__(self):
        self.threshold, levels = float(self.threshold), self.levels
        if not (np.isfinite(self.threshold) and self.threshold > 0):
            raise NeuroError(f"QCFS threshold must be positive and finite, got {self.threshold}")
        if isinstance(levels, bool) or float(levels) != int(levels) or int(levels) < 1:
            raise NeuroError(f"QCFS levels must be a whole number >= 1, got {levels}")
        self.levels = int(levels)

    def gains(self) -> tuple[np.float32, np.float32]:
        """The float32 factors (levels / threshold, its reciprocal) the forward pass multiplies by: the same
        constants an exported ONNX file holds (``experiments/train_cifar10.py``), so both compute the same."""
        up = np.float32(self.levels / self.threshold)
        return up, np.float32(1.0 / float(up))

    def output_shape(self, shape):
        return tuple(shape)

    def forward(self, x):
        up, down = self.gains()
        return np.clip(np.floor(x * up + np.float32(0.5)), 0, self.levels).astype(np.float32) * down


@dataclass
class Softmax:
    """Allowed as the last layer only; the SNN drops it (argmax is unchanged)."""

    def output_shape(self, shape):
        return tuple(shape)

    def forward(self, x):
        e = np.exp(x - x.max(axis=1, keepdims=True))
        return e / e.sum(axis=1, keepdims=True)


@dataclass
class BatchNorm:
    """y = gamma (x - mean) / sqrt(var + eps) + beta per channel; importers fold it into the layer before."""

    gamma: np.ndarray
    beta: np.ndarray
    mean: np.ndarray
    var: np.ndarray
    eps: float = 1e-5


@dataclass
class Dropout:
    """Identity at inference; importers remove it."""


Layer = Union[Conv2d, Dense, AvgPool2d, MaxPool2d, Flatten, ReLU, QCFS, Softmax]
LAYER_TYPES = {cls.__name__: cls for cls in (Conv2d, Dense, AvgPool2d, MaxPool2d, Flatten, ReLU, QCFS, Softmax)}
ACTIVATIONS = (ReLU, QCFS)  # the layers a conversion turns into spiking neurons


@dataclass
class Network:
    """A sequential network: ``input_shape`` (no batch axis) and a list of layers."""

    input_shape: tuple[int, ...]
    layers: list = field(default_factory=list)
    name: str = "network"

    def __post_init__(self):
        self.input_shape = tuple(int(s) for s in self.input_shape)
        self.layers = simplify(list(self.layers))
        self.shapes()  # validates the chain
        for i, layer in enumerate(self.layers):
            if isinstance(layer, Softmax) and i != len(self.layers) - 1:
                raise NeuroError(f"Softmax is supported only as the last layer, found at layer {i}")
            for name in ("weight", "bias"):
                arr = getattr(layer, name, None)
                if arr is not None and not np.all(np.isfinite(arr)):
                    raise NeuroError(f"layer {i} ({type(layer).__name__}) has NaN or infinite {name}s: "
                                     "the model file is damaged or was saved mid-training")

    def shapes(self) -> list[tuple[int, ...]]:
        """Output shape of every layer (index 0 is the input)."""
        return chain_shapes(self.input_shape, self.layers)

    @property
    def output_shape(self):
        return self.shapes()[-1]

    def check_input(self, x: np.ndarray) -> None:
        check_images(x, self.input_shape)

    def forward(self, x: np.ndarray, batch_size: int = 1024, collect: bool = False):
        """Float forward pass on a batch (N, *input_shape); with ``collect`` also every layer's output."""
        self.check_input(x)
        outs, acts = [], [[] for _ in self.layers]
        for start in range(0, len(x), batch_size):
            h = np.asarray(x[start:start + batch_size], np.float32)
            for i, layer in enumerate(self.layers):
                h = layer.forward(h).astype(np.float32, copy=False)
                if collect:
                    acts[i].append(h)
            outs.append(h)
        out = np.concatenate(outs) if outs else np.zeros((0, *self.output_shape), np.float32)
        return (out, [np.concatenate(a) for a in acts]) if collect else out

    def predict(self, x: np.ndarray, batch_size: int = 1024) -> np.ndarray:
        return self.forward(x, batch_size).argmax(axis=1)

    def accuracy(self, x: np.ndarray, labels: np.ndarray) -> float:
        return float((self.predict(x) == labels).mean())


def chain_shapes(input_shape, layers) -> list[tuple[int, ...]]:
    """Shapes along a chain of layers or ops (each with ``output_shape``); index 0 is the input."""
    shapes = [tuple(input_shape)]
    for layer in layers:
        shapes.append(tuple(layer.output_shape(shapes[-1])))
    return shapes


def check_images(x: np.ndarray, input_shape) -> None:
    """One-line error when a batch of images does not fit a network's input shape."""
    if tuple(x.shape[1:]) != tuple(input_shape):
        raise NeuroError(f"images of shape {tuple(x.shape[1:])} do not fit the network's input "
                         f"{tuple(input_shape)}: use data of that shape (C, H, W)")


def simplify(layers: list) -> list:
    """Fold BatchNorm into the Conv2d/Dense before it and drop Dropout (both exact at inference)."""
    out = []
    for layer in layers:
        if isinstance(layer, Dropout):
            continue
        if isinstance(layer, BatchNorm):
            if not out or not isinstance(out[-1], (Conv2d, Dense)):
                raise NeuroError("BatchNorm must follow a Conv2d or Dense layer to be folded; "
                                 "this model has it elsewhere")
            out[-1] = fold_batchnorm(out[-1], layer)
            continue
        if type(layer).__name__ not in LAYER_TYPES:
            raise NeuroError(f"unsupported layer {type(layer).__name__}")
        out.append(layer)
    return out


def fold_batchnorm(layer, bn: BatchNorm):
    scale = np.asarray(bn.gamma, np.float64) / np.sqrt(np.asarray(bn.var, np.float64) + bn.eps)
    shift = np.asarray(bn.beta, np.float64) - np.asarray(bn.mean, np.float64) * scale
    w = layer.weight * scale.reshape((-1,) + (1,) * (layer.weight.ndim - 1))
    b = layer.bias * scale + shift
    if isinstance(layer, Dense):
        return Dense(w, b)
    return Conv2d(w, b, layer.stride, layer.padding, layer.groups)


def _expect_image(layer, shape):
    if len(shape) != 3:
        raise NeuroError(f"{type(layer).__name__} needs an image input (C, H, W), got shape {tuple(shape)}")
    return shape


def _windows(x, kernel, stride):
    """View (N, C, OH, OW, kh, kw) of the kernel windows of x (N, C, H, W)."""
    v = np.lib.stride_tricks.sliding_window_view(x, kernel, axis=(2, 3))
    return v[:, :, ::stride[0], ::stride[1]]


def conv2d(x, weight, bias, stride=(1, 1), padding=(0, 0), groups=1):
    """Reference float convolution of x (N, C, H, W): im2col and one matrix product per group."""
    if padding != (0, 0):
        x = np.pad(x, ((0, 0), (0, 0), (padding[0], padding[0]), (padding[1], padding[1])))
    out_ch, cin_g, kh, kw = weight.shape
    cols = _windows(x, (kh, kw), stride)  # (N, C, OH, OW, kh, kw)
    n, _, oh, ow = cols.shape[:4]
    og = out_ch // groups
    y = np.empty((n, oh, ow, out_ch), np.float32)
    for g in range(groups):
        xg = cols[:, g * cin_g:(g + 1) * cin_g].transpose(0, 2, 3, 1, 4, 5).reshape(n * oh * ow, -1)
        y[..., g * og:(g + 1) * og] = (xg @ weight[g * og:(g + 1) * og].reshape(og, -1).T).reshape(n, oh, ow, og)
    return y.transpose(0, 3, 1, 2) + bias[None, :, None, None]
