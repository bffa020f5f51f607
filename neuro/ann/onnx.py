"""ONNX importer: a chain-shaped ONNX graph -> ``neuro.graph.Network``.

The graph must be a chain: every node reads the previous node's output plus constant weights
(initializers or Constant nodes). ONNX tensors are NCHW like the IR, so weights are taken as they are.
ONNX has no QCFS op: the five nodes ``QCFS_OPS`` (Mul by L / threshold, Add 1/2, Floor, Clip to [0, L],
Mul by threshold / L, as ``experiments/train_cifar10.py --qcfs L`` writes them) after a Conv/Gemm become
one ``graph.QCFS`` layer; Mul, Floor and Clip anywhere else are an error.
"""

from __future__ import annotations

import os

import numpy as np

from neuro.errors import NeuroError
from neuro.graph import (QCFS, AvgPool2d, BatchNorm, Conv2d, Dense, Dropout, Flatten, MaxPool2d, Network,
                         ReLU, Softmax)

QCFS_OPS = ("Mul", "Add", "Floor", "Clip", "Mul")  # the QCFS activation, with constants L/lambda, 1/2, (0, L), lambda/L
SUPPORTED_OPS = ("Conv", "Gemm", "MatMul", "Add", "Relu", "AveragePool", "MaxPool", "GlobalAveragePool",
                 "Flatten", "Reshape", "BatchNormalization", "Dropout", "Softmax", "Identity", "Constant",
                 "Mul", "Floor", "Clip")
QCFS_HELP = ("Mul, Floor and Clip are supported only as the QCFS activation after a Conv/Gemm: Mul(L / threshold), "
             "Add(0.5), Floor, Clip(0, L), Mul(threshold / L)")


def from_onnx(path_or_model) -> Network:
    """Import an ONNX model (a file path, serialized bytes or an ``onnx.ModelProto``) into the IR."""
    from onnx import numpy_helper   # here, not at import: onnx takes about 1 s to import, `neuro --help` none

    model, label = _read(path_or_model)
    graph = model.graph
    consts = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
    inputs = [i for i in graph.input if i.name not in consts]
    if len(inputs) != 1 or len(graph.output) != 1:
        raise NeuroError(f"ONNX model {label} has {len(inputs)} inputs and {len(graph.output)} outputs: "
                         "only single-input, single-output chain models are supported")
    input_shape = _input_shape(inputs[0], label)
    for node in graph.node:  # constants first: the QCFS pattern is matched on the remaining nodes
        if node.op_type == "Constant":
            if "value" not in _attrs(node):
                raise NeuroError(f"ONNX model {label}: node '{node.name}' (Constant) has no tensor 'value'; "
                                 "only tensor constants are supported")
            consts[node.output[0]] = numpy_helper.to_array(_attrs(node)["value"])
    nodes = [node for node in graph.node if node.op_type != "Constant"]
    cur, layers, k = inputs[0].name, [], 0
    while k < len(nodes):
        node, shape = nodes[k], Network(input_shape, layers).output_shape
        if node.op_type not in SUPPORTED_OPS:
            raise NeuroError(f"ONNX model {label}: unsupported op {node.op_type} at node '{node.name}'; "
                             f"supported ops: {', '.join(SUPPORTED_OPS)}")
        if node.op_type == "Mul":
            group, weights = nodes[k:k + len(QCFS_OPS)], []
            for n in group:
                weights.append([c for c in _chain_weights(n, cur, consts, label) if c is not None])
                cur = n.output[0]
            layers.append(_qcfs(group, weights, layers, label))
            k += len(group)
            continue
        what = f"node '{node.name}' ({node.op_type})"
        if node.op_type in ("Floor", "Clip"):
            raise NeuroError(f"ONNX model {label}: {what} is not part of a QCFS activation; {QCFS_HELP}")
        weights = _chain_weights(node, cur, consts, label)
        layer = _convert(node, _attrs(node), weights, shape, layers, what)
        if layer is not None:
            layers.append(layer)
        cur = node.output[0]
        k += 1
    if cur != graph.output[0].name:
        raise NeuroError(f"ONNX model {label} is not a simple chain: its output '{graph.output[0].name}' "
                         f"is not the end of the chain '{cur}'")
    return Network(input_shape, layers, name=graph.name or "onnx")


def _chain_weights(node, cur, consts, label) -> list:
    """The constant inputs of ``node`` in order, after checking it reads the chain's output ``cur``."""
    data = [i for i in node.input if i and i not in consts]
    if data != [cur]:
        raise NeuroError(f"ONNX model {label} is not a simple chain: node '{node.name}' ({node.op_type}) reads "
                         f"{data or 'only constants'} instead of the previous output '{cur}'; only sequential "
                         "models are supported")
    return [consts[i] if i else None for i in node.input if i != cur]


def _qcfs(group, weights, layers, label) -> QCFS:
    """One ``graph.QCFS`` from the chained nodes ``group`` and their constant inputs; else a one-line error."""
    where = f"ONNX model {label}: node '{group[0].name}' (Mul)"
    ops = tuple(n.op_type for n in group)
    if ops != QCFS_OPS or not layers or not isinstance(layers[-1], (Conv2d, Dense)):
        found = ", ".join(ops) + (" after a " + type(layers[-1]).__name__ if layers else " at the input")
        raise NeuroError(f"{where} starts {found}; {QCFS_HELP}")
    if [len(w) for w in weights] != [1, 1, 0, 2, 1] or any(np.size(c) != 1 for w in weights for c in w):
        raise NeuroError(f"{where}: a QCFS activation needs one scalar constant per Mul and Add and both Clip "
                         f"bounds as scalar inputs; {QCFS_HELP}")
    (up,), (half,), _, (lo, levels), (down,) = [[float(np.asarray(c).reshape(())) for c in w] for w in weights]
    if half != 0.5 or lo != 0 or levels < 1 or levels != int(levels) or not up > 0 \
            or not np.isclose(up * down, 1.0, rtol=1e-5, atol=0):
        raise NeuroError(f"{where}: constants Mul {up:g}, Add {half:g}, Clip({lo:g}, {levels:g}), Mul {down:g} are "
                         f"not a QCFS activation (the two Mul factors must be reciprocals); {QCFS_HELP}")
    return QCFS(levels / up, int(levels))


def _read(path_or_model):
    import onnx

    """Load the ModelProto and a label for messages; unreadable input is a NeuroError."""
    if isinstance(path_or_model, onnx.ModelProto):
        return path_or_model, f"'{path_or_model.graph.name}'"
    if isinstance(path_or_model, (bytes, bytearray)):
        label, load = "(in memory)", lambda: onnx.load_from_string(bytes(path_or_model))
    else:
        label = str(path_or_model)
        if not os.path.isfile(label):
            raise NeuroError(f"ONNX file not found: {label}")
        load = lambda: onnx.load(label)  # noqa: E731
    try:
        model = load()
    except Exception as e:  # protobuf raises several types on garbage
        raise NeuroError(f"cannot read ONNX file {label}: {type(e).__name__}: {e}; "
                         "check that it is a complete .onnx model") from None
    if not model.graph.node:
        raise NeuroError(f"cannot read ONNX file {label}: it holds no graph nodes; "
                         "check that it is a complete .onnx model")
    return model, label


def _input_shape(value_info, label):
    dims = value_info.type.tensor_type.shape.dim
    shape = [d.dim_value if d.HasField("dim_value") else None for d in dims[1:]]
    if not shape or None in shape:
        raise NeuroError(f"ONNX model {label}: input '{value_info.name}' has no fixed shape after the "
                         f"batch axis ({[d.dim_param or d.dim_value for d in dims]}); export it with a fixed input size")
    return tuple(shape)


def _attrs(node):
    import onnx

    return {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}


def _convert(node, a, w, shape, layers, what):
    """The IR layer for one ONNX node (None for an identity); ``w`` are its constant inputs in order."""
    op = node.op_type
    if op == "Conv":
        if any(d != 1 for d in a.get("dilations", [1, 1])):
            raise NeuroError(f"{what}: dilated convolutions are not supported")
        return Conv2d(w[0], w[1] if len(w) > 1 else None, a.get("strides", 1),
                      _pads(a, what), a.get("group", 1))
    if op == "Gemm":
        if a.get("transA", 0):
            raise NeuroError(f"{what}: transA=1 is not supported (the input must be batch-first)")
        weight = a.get("alpha", 1.0) * (w[0] if a.get("transB", 0) else w[0].T)
        bias = None
        if len(w) > 1 and w[1] is not None:
            bias = a.get("beta", 1.0) * np.broadcast_to(w[1], (1, weight.shape[0])).reshape(-1)
        return Dense(weight, bias)
    if op == "MatMul":
        return Dense(w[0].T)
    if op == "Add":
        prev = layers[-1] if layers else None
        if not isinstance(prev, (Dense, Conv2d)) or w[0].size not in (1, prev.bias.size):
            raise NeuroError(f"{what}: an Add is supported only as the bias of the Conv/MatMul/Gemm before it")
        prev.bias = prev.bias + np.broadcast_to(w[0].reshape(-1), prev.bias.shape).astype(np.float32)
        return None
    if op == "Relu":
        return ReLU()
    if op in ("AveragePool", "MaxPool"):
        if a.get("ceil_mode", 0):
            raise NeuroError(f"{what}: ceil_mode=1 is not supported; use floor mode (PyTorch's default)")
        pads = _pads(a, what)
        if op == "MaxPool":
            if pads != (0, 0) or any(d != 1 for d in a.get("dilations", [1, 1])):
                raise NeuroError(f"{what}: padded or dilated max pooling is not supported")
            return MaxPool2d(a["kernel_shape"], a.get("strides", 1))
        if pads != (0, 0) and not a.get("count_include_pad", 0):
            raise NeuroError(f"{what}: padded average pooling must count the padding "
                             "(count_include_pad=1, PyTorch's default)")
        return AvgPool2d(a["kernel_shape"], a.get("strides", 1), pads)
    if op == "GlobalAveragePool":
        return AvgPool2d(shape[1:])
    if op == "Flatten":
        if a.get("axis", 1) != 1:
            raise NeuroError(f"{what}: only Flatten(axis=1) is supported")
        return Flatten()
    if op == "Reshape":
        target = [int(v) for v in w[0]]
        if len(target) != 2 or target[1] not in (-1, int(np.prod(shape))):
            raise NeuroError(f"{what}: only a reshape to (batch, -1) is supported, got {target}")
        return Flatten()
    if op == "BatchNormalization":
        if a.get("training_mode", 0):
            raise NeuroError(f"{what}: export the model in eval mode (training_mode=1 found)")
        return BatchNorm(w[0], w[1], w[2], w[3], a.get("epsilon", 1e-5))
    if op == "Dropout":
        return Dropout()
    if op == "Softmax":
        if len(shape) != 1:
            raise NeuroError(f"{what}: Softmax is supported only on a flat (batch, classes) tensor")
        return Softmax()
    return None  # Identity


def _pads(a, what):
    """(pad_h, pad_w) from ONNX pads [top, left, bottom, right]; asymmetric pads are an error."""
    if a.get("auto_pad", b"NOTSET") not in (b"NOTSET", b"VALID"):
        raise NeuroError(f"{what}: auto_pad={a['auto_pad'].decode()} is not supported; export with explicit pads")
    t, l, b, r = a.get("pads", [0, 0, 0, 0])
    if (t, l) != (b, r):
        raise NeuroError(f"{what}: asymmetric padding {[t, l, b, r]} is not supported; "
                         "use equal padding on both sides (e.g. odd kernels with padding k//2)")
    return (t, l)
