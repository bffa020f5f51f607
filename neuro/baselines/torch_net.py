"""The IR as a PyTorch module: the same weights run by torch (CPU baseline, GPU baseline, peer benchmarks)."""

from __future__ import annotations

import numpy as np

from neuro import graph
from neuro.errors import NeuroError


def import_torch():
    """torch, or a one-line error saying how to install it (it is an optional extra)."""
    try:
        import torch
    except ImportError:
        raise NeuroError("this needs torch: install the torch extra: pip install -e '.[torch]'") from None
    return torch


def to_torch(net: graph.Network):
    """An ``nn.Sequential`` computing exactly ``net.forward`` (a trailing Softmax is dropped)."""
    torch = import_torch()
    nn = torch.nn
    layers = net.layers[:-1] if net.layers and isinstance(net.layers[-1], graph.Softmax) else net.layers
    mods = []
    for layer in layers:
        if isinstance(layer, graph.Conv2d):
            out, cin_g, kh, kw = layer.weight.shape
            m = nn.Conv2d(cin_g * layer.groups, out, (kh, kw), layer.stride, layer.padding, groups=layer.groups)
            _copy_params(torch, m, layer)
        elif isinstance(layer, graph.Dense):
            m = nn.Linear(layer.weight.shape[1], layer.weight.shape[0])
            _copy_params(torch, m, layer)
        elif isinstance(layer, graph.AvgPool2d):
            m = nn.AvgPool2d(layer.kernel, layer.stride, layer.padding, count_include_pad=True)
        elif isinstance(layer, graph.MaxPool2d):
            m = nn.MaxPool2d(layer.kernel, layer.stride)
        elif isinstance(layer, graph.Flatten):
            m = nn.Flatten()
        elif isinstance(layer, graph.ReLU):
            m = nn.ReLU()
        elif isinstance(layer, graph.QCFS):
            m = qcfs_module(layer)
        else:
            raise NeuroError(f"layer {type(layer).__name__} has no torch equivalent in neuro.baselines.to_torch")
        mods.append(m)
    return nn.Sequential(*mods).eval()


def qcfs_module(layer: graph.QCFS):
    """``layer`` (``graph.QCFS``) as a torch module with the same float32 constants; exports to ONNX as the
    node sequence ``neuro.ann.onnx`` imports back as this layer (Mul, Add, Floor, Clip, Mul)."""
    torch = import_torch()

    class QCFSFixed(torch.nn.Module):
        def __init__(self):
            super().__init__()
            up, down = layer.gains()
            self.levels = layer.levels
            self.register_buffer("up", torch.tensor(up, dtype=torch.float32))
            self.register_buffer("down", torch.tensor(down, dtype=torch.float32))

        def forward(self, x):
            return torch.clamp(torch.floor(x * self.up + 0.5), 0, self.levels) * self.down

        def extra_repr(self):
            return f"threshold={layer.threshold}, levels={layer.levels}"

    return QCFSFixed()


def _copy_params(torch, module, layer):
    with torch.no_grad():
        module.weight.copy_(torch.from_numpy(np.array(layer.weight, np.float32)))
        module.bias.copy_(torch.from_numpy(np.array(layer.bias, np.float32)))
