"""Compile helpers every chip needs, one copy each: a converted SNN as (synapses, neurons) layers with the pools
folded into the next synapses (``layers``, ``compose``), the per-layer activity of an engine run
(``layer_activity``), the connection list of a conv or dense op (``connections``) and the initial V that
takes out the bias integrated before a delayed first input (``start_ahead``)."""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np

from neuro import graph
from neuro.errors import NeuroError
from neuro.snn import SNN, Neurons, Synapses


@dataclass(frozen=True)
class Layer:
    """One population of a converted SNN and the one synapse op feeding it (pools before it folded in)."""

    name: str                 # "layer k (op i)": k-th population, i its Neurons op's index in snn.ops
    synapse: graph.Dense | graph.Conv2d
    neurons: Neurons
    in_shape: tuple           # the synapse's input shape, as the SNN has it (C, H, W) or (n,)


def memory_cap() -> int:
    """Bytes one array of a compile or mapping may take: half this machine's physical memory (8 GiB if unknown)."""
    try:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE") // 2
    except (AttributeError, ValueError, OSError):
        return 8 << 30


def check_memory(nbytes: int, where: str, what: str, fix: str) -> None:
    """A one-line NeuroError if ``what`` (an array of ``nbytes``) would exceed ``memory_cap``, before allocating it."""
    cap = memory_cap()
    if nbytes > cap:
        raise NeuroError(f"{where}: {what} would take {nbytes / 2 ** 30:.3g} GiB, over the {cap / 2 ** 30:.3g} GiB "
                         f"this machine allows (half its memory): {fix}")


def layers(snn: SNN, title: str, before_fold=None) -> tuple[list[Layer], list[str]]:
    """The SNN's populations, each with one Dense or Conv2d feeding it (an average pool right before neurons
    becomes a conv); and one line per fold, for the program's deviations. ``title`` names the chip in errors;
    ``before_fold(where, first, in_shape, second)``, if given, runs before each fold (a chip's limit check from
    shapes and the unfolded weights, before the folded weights are built)."""
    shapes = snn.shapes()
    out, folded, pending, start = [], [], None, 0
    for i, op in enumerate(snn.ops):
        if isinstance(op, Synapses):
            if pending is None:
                pending, start = op.op, i
            else:
                folded.append(f"op {i} ({type(op.op).__name__}) folded into the synapses of op {start} "
                              f"({type(pending).__name__})")
                if before_fold is not None:
                    before_fold(f"layer {len(out)} (op {i})", pending, shapes[start], op.op)
                pending = compose(pending, shapes[start], op.op, shapes[i], f"op {i}")
        elif isinstance(op, Neurons):
            if pending is None:
                raise NeuroError(f"op {i} (Neurons) has no synapses before it: {title} needs synapses feeding every "
                                 "population")
            if isinstance(pending, graph.AvgPool2d):
                pending = pending.as_conv(shapes[start][0])
            out.append(Layer(f"layer {len(out)} (op {i})", pending, op, tuple(shapes[start])))
            pending = None
        elif not isinstance(op, graph.Flatten):
            raise NeuroError(f"op {i} ({type(op).__name__}) has no {title} equivalent: convert a network with "
                             "average pooling instead of max pooling")
    return out, folded


def compose(first, in_shape, second, mid_shape, where: str):
    """One synapse op equal to ``second`` applied after ``first`` (no neurons between them)."""
    if isinstance(first, graph.AvgPool2d) and isinstance(second, graph.Conv2d):
        return fold_pool_into_conv(first, second, in_shape, mid_shape, where)
    if isinstance(first, graph.AvgPool2d) and isinstance(second, graph.Dense):
        return graph.Dense(spread_pool(second.weight, first, in_shape, where), second.bias)
    if isinstance(second, graph.Dense):
        m = linear_matrix(first, in_shape, where)
        return graph.Dense(second.weight @ m, second.bias + second.weight @ bias_map(first, in_shape))
    raise NeuroError(f"{where}: {type(second).__name__} right after {type(first).__name__} cannot be folded into "
                     "one synapse op: put neurons between them")


def linear_matrix(op, in_shape, where: str = "a fold") -> np.ndarray:
    """The (out, in) matrix of a linear op on flat (C, H, W) inputs, without its bias (probed with the n x n
    identity: refused before allocating it if that would not fit in memory)."""
    n = int(np.prod(in_shape))
    n_out = int(np.prod(op.output_shape(tuple(in_shape))))
    check_memory(4 * n * (n + 2 * n_out), where, f"probing {type(op).__name__} with the {n} x {n} identity",
                 "put neurons after it, or use a smaller input")
    eye = np.eye(n, dtype=np.float32).reshape(n, *in_shape)
    return (op.forward(eye).reshape(n, -1) - bias_map(op, in_shape)).T


def pool_overlaps(pool: graph.AvgPool2d) -> bool:
    """Whether the pool's windows overlap (stride below the kernel on some axis)."""
    return any(s < k for s, k in zip(pool.stride, pool.kernel))


def spread_pool(weight: np.ndarray, pool: graph.AvgPool2d, in_shape, where: str = "a fold") -> np.ndarray:
    """``weight`` (out, C OH OW) over an average pool's output as the (out, C H W) float32 weight over its input,
    weight x P with P the pool's matrix: each column spread over its window / (kh kw), built window offset by
    window offset (no n x n identity); padding positions dropped. Equal to probing with the identity (bit for
    bit where the windows do not overlap)."""
    c, h, wd = in_shape
    (k0, k1), (s0, s1), (p0, p1) = pool.kernel, pool.stride, pool.padding
    _, oh, ow = pool.output_shape(tuple(in_shape))
    out = len(weight)
    check_memory(4 * out * c * (h + 2 * p0) * (wd + 2 * p1) * 2, where,
                 f"the {out} x {c * h * wd} weights of the pooling folded into the Dense layer",
                 "put neurons after the pooling, pool more, or use a smaller input")
    share = np.asarray(weight, np.float32).reshape(out, c, oh, ow) * np.float32(1.0 / (k0 * k1))
    full = np.zeros((out, c, h + 2 * p0, wd + 2 * p1), np.float32)
    for ky in range(k0):
        for kx in range(k1):
            full[:, :, ky:ky + s0 * (oh - 1) + 1:s0, kx:kx + s1 * (ow - 1) + 1:s1] += share
    return np.ascontiguousarray(full[:, :, p0:p0 + h, p1:p1 + wd]).reshape(out, -1)


def bias_map(op, in_shape) -> np.ndarray:
    """The op's output for a zero input, flat."""
    return op.forward(np.zeros((1, *in_shape), np.float32)).reshape(-1)


def start_ahead(v0: np.ndarray, per_step: np.ndarray, steps: int, highest: np.ndarray, lowest: int) \
        -> tuple[np.ndarray, int]:
    """Initial V less the ``steps`` steps of bias (``per_step``) a population integrates before its first input
    arrives on a chip with per-layer delays, so that V is the converted neuron's V0 when the input starts, as in
    the float SNN, whose bias and input start together. Kept within [``lowest``, max(v0, ``highest``)]: ``highest``
    is the chip's largest V0 that does not spike before any input (a large negative bias would need more; a V0
    already above it stays, as the converted neuron spikes in its first step too); returns (V0, how many were
    clipped)."""
    want = v0 - steps * per_step
    kept = np.clip(want, lowest, np.maximum(v0, highest))
    return kept, int((kept != want).sum())


def fold_pool_into_conv(pool: graph.AvgPool2d, conv: graph.Conv2d, in_shape, mid_shape, where: str):
    """conv(avgpool(x)) as one conv: kernel s (K - 1) + k, stride s S, each tap spread over its window / k^2."""
    if pool.padding != (0, 0) or conv.padding != (0, 0) or conv.groups != 1:
        raise NeuroError(f"{where}: only unpadded average pooling before an unpadded, ungrouped conv can be "
                         "folded into one synapse op: put neurons after the pooling (convert with pool_neurons=True)")
    (k0, k1), (s0, s1) = pool.kernel, pool.stride
    o, c, kh, kw = conv.weight.shape
    w = np.zeros((o, c, s0 * (kh - 1) + k0, s1 * (kw - 1) + k1), np.float64)
    for ky in range(kh):
        for kx in range(kw):
            w[:, :, s0 * ky:s0 * ky + k0, s1 * kx:s1 * kx + k1] += conv.weight[:, :, ky, kx, None, None] / (k0 * k1)
    folded = graph.Conv2d(w, conv.bias, (s0 * conv.stride[0], s1 * conv.stride[1]), (0, 0))
    if folded.output_shape(in_shape) != conv.output_shape(mid_shape):
        raise NeuroError(f"{where}: the pooling's windows do not tile its input, so it cannot be folded into "
                         "the next conv: crop the input or put neurons after the pooling")
    return folded


@dataclass(frozen=True)
class LayerActivity:
    """A layer's mean activity per step of one inference: synaptic ops into it and spikes out of it."""

    synops: float
    spikes: float


def layer_activity(snn: SNN, result) -> list[LayerActivity]:
    """Per (synapses, neurons) layer of ``snn``, its activity per step and image in ``result`` (a ``SimResult``
    of ``snn`` on the engine)."""
    per = max(result.n_images, 1) * result.timesteps
    syn = [c.synops for c, op in zip(result.layers, snn.ops) if isinstance(op, Synapses)]
    spk = [c.spikes for c, op in zip(result.layers, snn.ops) if isinstance(op, Neurons)]
    return [LayerActivity(s / per, k / per) for s, k in zip(syn, spk)]


def connections(op, in_shape) -> tuple[np.ndarray, np.ndarray]:
    """(target, source) flat indices of every non-zero weight of a Dense or Conv2d op, sorted by target; a conv's
    in the engine's channel-last order."""
    w = op.weight
    if isinstance(op, graph.Dense):
        return np.nonzero(w)
    c, h, wd = in_shape
    o, oh, ow = op.output_shape(in_shape)
    oc, cg, ky, kx = np.nonzero(w)
    ch = (oc // (o // op.groups)) * w.shape[1] + cg   # input channel of each tap
    oy, ox = np.divmod(np.arange(oh * ow), ow)
    iy = oy[:, None] * op.stride[0] - op.padding[0] + ky[None]
    ix = ox[:, None] * op.stride[1] - op.padding[1] + kx[None]
    ok = (iy >= 0) & (iy < h) & (ix >= 0) & (ix < wd)
    target = (np.arange(oh * ow)[:, None] * o + oc[None])[ok]
    source = ((iy * wd + ix) * c + ch[None])[ok]
    order = np.argsort(target, kind="stable")
    return target[order], source[order]
