"""Mapping a converted SNN onto TrueNorth cores: weight schemes, fan-in split, fan-out splitters, placement.

A core has 256 axons, 256 neurons, a binary crossbar and 4 axon types; neuron j's synapse on axon i is
crossbar[i, j] x weights[j, type(i)] (MER14 S8, docs/references.md section 1). A float weight matrix W (out, in)
is written as codes x per-neuron scale, each input driving ``copies`` axons of types 0..copies-1:

* ``trinary``: codes in {-1, 0, +1}, two copies per input (type 0 weight +u, type 1 weight -u), so 128
  inputs fit a core. Per neuron the threshold delta and scale s minimise ||w - s sign(w) [|w| > delta]||^2:
  keeping the k largest |w|, s = their mean and the error falls by (sum of them)^2 / k, maximised over k
  exactly (the optimum that Li, Zhang & Liu 2016, "Ternary weight networks", arXiv:1605.04711,
  approximate by delta = 0.7 mean|w|).
* ``multilevel`` with ``levels`` = b in 2..4: b-bit two's-complement codes in [-2^(b-1), 2^(b-1) - 1],
  b copies per input with type weights +1, +2, ..., +2^(b-2), -2^(b-1) (times u), so 256 // b inputs fit
  a core; s = max|w| / (2^(b-1) - 1) per neuron, codes = round(w / s). b is at most 4: one type per bit.

u is the largest integer unit keeping every type weight within the signed 9-bit range; the neuron's
threshold in integer units is theta x u / s.

Cores. The neurons of a layer are grouped by shared inputs: a Dense layer's neurons all share the input;
a Conv2d layer's neurons are tiled in t x t output positions (all channels), t chosen to need the fewest
cores. A group whose inputs exceed one core's axon budget is split into contiguous input slices
("pieces"); each piece's core holds two partial neurons per output neuron (for the positive and for the
negated partial sum, each integrate-and-fire with reset by subtraction, so its rate passes the clipped
partial sum), and a merge core sums them: each output neuron takes 2 x pieces axons (types 0 and 1,
weights +u and -u). More than 128 pieces cannot be merged in one core: that layer raises a NeuroError.
This is a counting model of the split; the partial neurons are not simulated here.

Fan-out: a neuron targets one axon (MER14), so an output feeding m axons (target cores x copies) goes
through a splitter core that copies it m times: m splitter neurons (one axon each), packed in output order
into splitter cores, an output's copies in one core (``splitter_packing``). Network inputs come
from off chip and are not split; the last layer's outputs leave the chip.

Placement: cores are numbered in layer order (compute cores, merge cores, splitter cores) and placed
row-major on 64 x 64 meshes, 4,096 per chip (MER14); hops are counted with ``mesh_hops`` between
connected compute/merge cores of the same chip.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from chips.compiling import check_memory, spread_pool
from chips.truenorth.core import (AXON_TYPES, CHIP_CORES, CORE_AXONS, CORE_NEURONS, MESH_SIDE, THRESHOLD_MAX,
                                  WEIGHT_MAX, WEIGHT_MIN, CoreConfig, mesh_hops)
from neuro import graph
from neuro.errors import NeuroError
from neuro.snn import SNN, MaxPoolGate, Neurons, Synapses

SCHEMES = ("trinary", "multilevel")
MAX_LEVELS = AXON_TYPES                  # multilevel: one axon type per bit, 4 types (MER14)
MIN_LEVELS = 2                           # one bit has no sign: two's complement needs two
RESET_MODE = {"subtract": 1, "zero": 0}  # neuro.snn reset -> TrueNorth gamma (CAS13, docs/references.md)


# --- weight schemes --------------------------------------------------------------------------------------

@dataclass
class Quantised:
    """W ~ codes x scale[:, None]; input copy a carries type a with integer type weight type_codes[a] x unit."""

    codes: np.ndarray        # (out, in) int
    scale: np.ndarray        # (out,) float
    type_codes: tuple        # code value of each axon copy / type
    unit: int                # integer weight of code 1

    @property
    def copies(self) -> int:
        return len(self.type_codes)

    @property
    def weights(self) -> np.ndarray:
        """The quantised float weights."""
        return self.codes * self.scale[:, None]

    def bits(self) -> np.ndarray:
        """(copies, out, in) crossbar bits with sum_a bits[a] x type_codes[a] = codes."""
        if self.type_codes == (1, -1):
            return np.stack([self.codes > 0, self.codes < 0])
        unsigned = np.mod(self.codes, 1 << self.copies)
        return np.stack([(unsigned >> a) & 1 for a in range(self.copies)]).astype(bool)


def _unit(type_codes) -> int:
    """Largest integer unit with every type weight within the signed 9-bit range (MER14 S8)."""
    return min(WEIGHT_MAX // c if c > 0 else WEIGHT_MIN // c for c in type_codes)


def trinary(w: np.ndarray) -> Quantised:
    """Per-neuron optimal ternary codes and scale (module docstring)."""
    w = np.asarray(w, np.float64)
    mag = -np.sort(-np.abs(w), axis=1)
    k = np.arange(1, w.shape[1] + 1)
    csum = np.cumsum(mag, axis=1)
    best = np.argmax(csum ** 2 / k, axis=1) + 1                   # how many weights to keep
    rows = np.arange(w.shape[0])
    scale = csum[rows, best - 1] / best
    rank = np.argsort(np.argsort(-np.abs(w), axis=1, kind="stable"), axis=1)
    codes = (np.sign(w) * (rank < best[:, None])).astype(np.int64)
    scale = np.where(scale > 0, scale, 1.0)                        # an all-zero row: codes 0, any scale
    return Quantised(codes, scale, (1, -1), _unit((1, -1)))


def multilevel(w: np.ndarray, levels: int) -> Quantised:
    """Two's-complement codes of ``levels`` bits, per-neuron scale max|w| / (2^(levels-1) - 1)."""
    if not MIN_LEVELS <= levels <= MAX_LEVELS:
        raise NeuroError(f"levels {levels} is out of range: use {MIN_LEVELS}..{MAX_LEVELS} (one axon type per bit)")
    w = np.asarray(w, np.float64)
    top = (1 << (levels - 1)) - 1
    peak = np.abs(w).max(axis=1)
    scale = np.where(peak > 0, peak / top, 1.0)
    codes = np.clip(np.round(w / scale[:, None]), -top - 1, top).astype(np.int64)
    type_codes = tuple(1 << a for a in range(levels - 1)) + (-(1 << (levels - 1)),)
    return Quantised(codes, scale, type_codes, _unit(type_codes))


def quantise(w: np.ndarray, scheme: str, levels: int = 3) -> Quantised:
    """W quantised under ``scheme`` ("trinary" or "multilevel" with ``levels`` bits)."""
    if scheme == "trinary":
        return trinary(w)
    if scheme == "multilevel":
        return multilevel(w, levels)
    raise NeuroError(f"scheme {scheme!r} is unknown: use one of {SCHEMES}")


def relative_error(w: np.ndarray, q: Quantised) -> float:
    """Relative RMS error ||Q - W|| / ||W|| of the quantised weights."""
    norm = np.linalg.norm(w)
    return float(np.linalg.norm(q.weights - w) / norm) if norm > 0 else 0.0


# --- core configs ----------------------------------------------------------------------------------------

def block_core(q: Quantised, inputs: np.ndarray, neurons: np.ndarray, threshold: float = 1.0,
               reset: str = "subtract") -> CoreConfig:
    """The core for rows ``neurons`` and columns ``inputs`` of q: input n uses axons copies x n + a (type a).

    Threshold alpha = theta x unit / scale; V may go down to -alpha_max (kappa 1 saturates there), as the
    converted neurons have no negative threshold."""
    k = q.copies
    if len(inputs) * k > CORE_AXONS or len(neurons) > CORE_NEURONS:
        raise NeuroError(f"{len(inputs)} inputs x {k} copies and {len(neurons)} neurons do not fit a core of "
                         f"{CORE_AXONS} axons and {CORE_NEURONS} neurons")
    bits = q.bits()[:, neurons][:, :, inputs]                             # (copies, neurons, inputs)
    crossbar = np.zeros((CORE_AXONS, CORE_NEURONS), bool)
    crossbar[:len(inputs) * k, :len(neurons)] = bits.transpose(2, 0, 1).reshape(len(inputs) * k, len(neurons))
    axon_types = np.zeros(CORE_AXONS, np.int64)
    axon_types[:len(inputs) * k] = np.tile(np.arange(k), len(inputs))
    weights = np.zeros((CORE_NEURONS, AXON_TYPES), np.int64)
    weights[:len(neurons), :k] = np.array(q.type_codes) * q.unit
    alpha = np.ones(CORE_NEURONS, np.int64)
    alpha[:len(neurons)] = np.maximum(1, np.round(threshold * q.unit / q.scale[neurons]))
    return CoreConfig(crossbar=crossbar, axon_types=axon_types, weights=weights,
                      stochastic_synapse=np.zeros((CORE_NEURONS, AXON_TYPES), bool), leak=0, leak_reversal=0,
                      stochastic_leak=0, alpha=alpha, beta=THRESHOLD_MAX, threshold_mask_bits=0, reset_value=0,
                      reset_mode=RESET_MODE[reset], kappa=1, v0=0)


def core_weights(core: CoreConfig, n_inputs: int, copies: int) -> np.ndarray:
    """(neurons, inputs) integer synapse sums read back from a core: sum over copies of crossbar x type weight."""
    axons = n_inputs * copies
    per_axon = core.crossbar[:axons].T * core.weights[:, core.axon_types[:axons]]       # (neuron, axon)
    return per_axon.reshape(CORE_NEURONS, n_inputs, copies).sum(axis=2)


# --- layers as (out, in) matrices over the previous population ---------------------------------------------

@dataclass
class Layer:
    """One mapped layer: its effective weights over the previous population and how its neurons group."""

    name: str
    weight: np.ndarray       # Dense: (out, in); Conv2d: (out, cin, kh, kw)
    in_shape: tuple          # shape of the previous neuron population (or the network input)
    out_shape: tuple
    stride: tuple = (1, 1)
    padding: tuple = (0, 0)
    threshold: float = 1.0
    reset: str = "subtract"
    bias: np.ndarray | None = None    # (out,) constant current per step (per output channel of a Conv2d)
    v_init: float = 0.0               # V before the first step, in thresholds

    @property
    def matrix(self) -> np.ndarray:
        """(out, in) matrix of one neuron's (one output position's) receptive field."""
        return self.weight.reshape(self.weight.shape[0], -1)


def _probe(ops, shape, n, name="a fold"):
    """Push the n basis vectors of ``shape`` through the linear ops (biases zeroed): (n, *out) outputs."""
    n_out = int(np.prod(graph.chain_shapes(tuple(shape), ops)[-1]))
    check_memory(8 * n * (n + n_out), f"layer {name}", f"probing its ops with the {n} x {n} identity",
                 "put neurons between the pools and the weights, or use a smaller input")
    x = np.eye(n, dtype=np.float32).reshape(n, *shape)
    for op in ops:
        if isinstance(op, (graph.Dense, graph.Conv2d)):
            op = type(op)(**{**op.__dict__, "bias": None})
        x = op.forward(x)
    return x


def _check_fan_in(name, fan_in: int, copies: int) -> int:
    """Cores one neuron's inputs are split over; a NeuroError if more than one merge core can add."""
    pieces = -(-fan_in // (CORE_AXONS // copies))
    if 2 * pieces > CORE_AXONS:
        raise NeuroError(f"layer {name}: fan-in {fan_in} needs {pieces} cores of {CORE_AXONS // copies} "
                         f"inputs, beyond the {CORE_AXONS // 2} partial sums one merge core can add: pool more "
                         "before the layer or give its neurons fewer inputs")
    return pieces


def _dense_over(ops, in_shape, name):
    """The last op (a Dense) as an (out, in) float32 matrix over ``in_shape``, the average pools and flattens
    before it folded in window by window (``spread_pool``, no identity); None if another op is among them."""
    shapes = graph.chain_shapes(tuple(in_shape), ops[:-1])     # each op's input, then the Dense's
    w = np.asarray(ops[-1].weight, np.float32)
    for op, shape in zip(reversed(ops[:-1]), reversed(shapes[:-1])):
        if isinstance(op, graph.AvgPool2d):
            w = spread_pool(w, op, shape, f"layer {name}")
        elif not isinstance(op, graph.Flatten):
            return None
    return w


def _fold(name, ops, in_shape, out_shape, neurons, copies=None) -> Layer:
    """The ops between two neuron populations (pools, flatten, then one Conv2d/Dense) as one Layer; with
    ``copies`` (axons per input), a fan-in beyond what one merge core can add is refused before folding."""
    last = ops[-1]
    if isinstance(last, graph.AvgPool2d):           # a pool with its own neurons (convert's pool_neurons)
        last = _pool_as_conv(last, in_shape[0])
        ops = [*ops[:-1], last]
    if neurons.leak:
        raise NeuroError(f"{name}: leaky neurons (leak {neurons.leak}) cannot be mapped: a TrueNorth leak is linear, "
                         "not a decay; convert with leak 0 (integrate-and-fire)")
    kw = dict(threshold=neurons.threshold, reset=neurons.reset, bias=np.asarray(last.bias, np.float64),
              v_init=neurons.v_init)
    if isinstance(last, graph.Dense):
        n = int(np.prod(in_shape))
        if copies:
            _check_fan_in(name, n, copies)
        weight = _dense_over(ops, in_shape, name)
        if weight is None:
            weight = _probe(ops, in_shape, n, name).reshape(n, -1).T
        return Layer(name, weight, in_shape, out_shape, **kw)
    pre = ops[:-1]
    if any(not isinstance(op, graph.AvgPool2d) or op.padding != (0, 0) for op in pre) or last.groups != 1 \
            or (pre and last.padding != (0, 0)):
        raise NeuroError(f"{name}: only unpadded average pools before an ungrouped Conv2d can be mapped")
    size, stride = np.array(last.weight.shape[2:]), np.array(last.stride)
    for op in reversed(pre):                        # receptive field and stride over the population
        size, stride = (size - 1) * op.stride + op.kernel, stride * op.stride
    cin = in_shape[0]
    if copies:
        _check_fan_in(name, cin * int(np.prod(size)), copies)
    if pre:                                         # pools folded in: probe the field (unpadded, so out is 1 x 1)
        probe = _probe(ops, (cin, *size), cin * int(np.prod(size)), name)      # (n, out, 1, 1)
        weight = probe.reshape(cin, *size, -1).transpose(3, 0, 1, 2)
    else:
        weight = np.asarray(last.weight, np.float64)
    return Layer(name, weight, in_shape, out_shape, tuple(int(s) for s in stride), last.padding, **kw)


def _pool_as_conv(pool: graph.AvgPool2d, channels: int) -> graph.Conv2d:
    """An average pool feeding neurons as an ungrouped Conv2d (weight 1 / (kh kw) from each channel to itself,
    0 across channels): cores take any weights over a receptive field, not a grouped convolution's."""
    kh, kw = pool.kernel
    w = np.zeros((channels, channels, kh, kw), np.float32)
    w[np.arange(channels), np.arange(channels)] = 1.0 / (kh * kw)
    return graph.Conv2d(w, np.zeros(channels, np.float32), pool.stride, pool.padding)


def layers(snn: SNN, copies: int | None = None) -> list[Layer]:
    """The SNN's Conv2d/Dense layers, each with the pools and flatten before it folded in; with ``copies``
    (axons per input of the weight scheme), a layer whose fan-in no merge core can add is refused before its
    weights are folded."""
    shapes, out, ops, start = snn.shapes(), [], [], snn.input_shape
    for i, op in enumerate(snn.ops):
        if isinstance(op, MaxPoolGate):
            raise NeuroError(f"op {i}: max-pool gates cannot be mapped to TrueNorth cores: convert with average pooling")
        if isinstance(op, Neurons):
            if not ops:
                raise NeuroError(f"op {i}: a neuron population without synapses before it cannot be mapped")
            name = f"{len(out)}:{type(ops[-1]).__name__}"
            out.append(_fold(name, ops, start, shapes[i + 1], op, copies))
            ops, start = [], shapes[i + 1]
            continue
        inner = op.op if isinstance(op, Synapses) else op
        if ops and isinstance(ops[-1], (graph.Dense, graph.Conv2d)):
            raise NeuroError(f"op {i}: two weight layers without neurons between them cannot be mapped")
        ops.append(inner)
    return out


# --- neuron groups, cores, fan-out ---------------------------------------------------------------------------

def _conv_groups(layer: Layer, t: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """(input indices, output indices) of each t x t tile of output positions (all channels).

    Inputs are listed in (y, x, c) order over the tile's padded field, -1 for a padding position, so for
    t = 1 entry f is field tap f = (ky kw + kx) cin + c at every output position."""
    cin, h, w = layer.in_shape
    cout, oh, ow = layer.out_shape
    kh, kw = layer.weight.shape[2:]
    (sy, sx), (py, px) = layer.stride, layer.padding
    padded = np.full((h + 2 * py, w + 2 * px, cin), -1, np.int64)
    padded[py:py + h, px:px + w] = np.arange(cin * h * w).reshape(cin, h, w).transpose(1, 2, 0)
    out_idx = np.arange(cout * oh * ow).reshape(cout, oh, ow)
    groups = []
    for y0 in range(0, oh, t):
        for x0 in range(0, ow, t):
            ys = slice(y0 * sy, (min(y0 + t, oh) - 1) * sy + kh)
            xs = slice(x0 * sx, (min(x0 + t, ow) - 1) * sx + kw)
            groups.append((padded[ys, xs].ravel(), out_idx[:, y0:y0 + t, x0:x0 + t].ravel()))
    return groups


def _groups(layer: Layer, copies: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """Neuron groups sharing inputs: the whole Dense layer, or the Conv2d tiling needing fewest cores."""
    if layer.weight.ndim == 2:
        return [(np.arange(layer.weight.shape[1]), np.arange(layer.weight.shape[0]))]
    if layer.matrix.shape[1] * copies > CORE_AXONS:
        return _conv_groups(layer, 1)               # one field is split already: larger tiles only split more
    best = None
    for t in range(1, max(layer.out_shape[1:]) + 1):
        groups = _conv_groups(layer, t)
        if t > 1 and (max((g[0] >= 0).sum() for g in groups) * copies > CORE_AXONS
                      or len(groups[0][1]) > CORE_NEURONS):
            break                                   # larger tiles need more than one core each
        cores = sum(len(_chunks(o, 1)) for _, o in groups)      # unsplit here: one piece per group
        if best is None or cores < best[0]:
            best = (cores, groups)
    return best[1]


def _pieces(inputs: np.ndarray, copies: int, split: bool) -> list[np.ndarray]:
    """The inputs (padding, -1, dropped) as one piece if the layer's fan-in fits a core, else contiguous
    slices of the list that fit, empty slices left out, so a piece is the same field taps at every position."""
    per_core = CORE_AXONS // copies
    if not split:
        return [inputs[inputs >= 0]]
    parts = (inputs[i:i + per_core] for i in range(0, len(inputs), per_core))
    return [part[part >= 0] for part in parts if (part >= 0).any()]


def _chunks(outputs: np.ndarray, pieces: int) -> list[np.ndarray]:
    """Output neurons per core: 256, or 128 when split (two partial neurons each)."""
    per_core = CORE_NEURONS if pieces == 1 else CORE_NEURONS // 2
    return [outputs[i:i + per_core] for i in range(0, len(outputs), per_core)]


@dataclass
class LayerMap:
    """How one layer maps: core and neuron counts, utilisation, splitters, quantisation error."""

    name: str
    fan_in: int
    pieces: int              # cores one neuron's inputs are split over (1: no split)
    compute_cores: int
    merge_cores: int
    splitter_cores: int
    axons_used: int          # over compute and merge cores
    neurons_used: int        # over compute and merge cores
    splitter_neurons: int
    quantisation_error: float
    input_axons: np.ndarray  # (inputs,) axons each input of the layer reaches: cores holding it x copies
    partial_hops: np.ndarray | None = None  # per output neuron: mesh hops of a partial spike to its merge core
    #                                           (mean over the neuron's pieces)
    output_hops: np.ndarray | None = None   # per output neuron: mesh hops of one spike to all its target axons

    @property
    def cores(self) -> int:
        return self.compute_cores + self.merge_cores + self.splitter_cores

    @property
    def utilisation(self) -> float:
        """Fraction of the compute and merge cores' neurons in use."""
        return self.neurons_used / ((self.compute_cores + self.merge_cores) * CORE_NEURONS)


@dataclass
class NetworkMap:
    """Per-layer maps and totals."""

    layers: list
    cores: int
    chips: int
    mean_hops: float
    quantised: list          # per layer (Layer, Quantised): the weights the cores hold


def _merge_per_core(pieces: int) -> int:
    """Merge neurons per core when each sums 2 x pieces partial-neuron axons."""
    return min(CORE_NEURONS, CORE_AXONS // (2 * pieces))


def _plan(layer: Layer, q: Quantised):
    """(LayerMap without splitters, input mask per compute core, output mask per output core, output mask
    per compute core)."""
    n_in, n_out = int(np.prod(layer.in_shape)), int(np.prod(layer.out_shape))
    fan_in = layer.matrix.shape[1]
    pieces = _check_fan_in(layer.name, fan_in, q.copies)
    ins, outs, part_outs, axons, neurons = [], [], [], 0, 0
    for inputs, outputs in _groups(layer, q.copies):
        parts = _pieces(inputs, q.copies, pieces > 1)
        for chunk in _chunks(outputs, pieces):
            for part in parts:
                ins.append(np.isin(np.arange(n_in), part))
                part_outs.append(np.isin(np.arange(n_out), chunk))
                axons += len(part) * q.copies
                neurons += len(chunk) * (1 if pieces == 1 else 2)
            if pieces == 1:
                outs.append(np.isin(np.arange(n_out), chunk))
    merge = 0 if pieces == 1 else -(-n_out // _merge_per_core(pieces))
    if merge:
        outs = [(np.arange(n_out) // _merge_per_core(pieces)) == m for m in range(merge)]
        axons, neurons = axons + n_out * 2 * pieces, neurons + n_out
    m = LayerMap(layer.name, fan_in, pieces, len(ins), merge, 0, axons, neurons, 0,
                 relative_error(layer.matrix, q), np.sum(ins, axis=0) * q.copies)
    return m, np.array(ins), np.array(outs), np.array(part_outs)


def splitter_packing(targets: np.ndarray) -> list[list[int]]:
    """Outputs reaching more than one axon, packed in order into splitter cores (next fit): each output takes
    one axon and one neuron per target axon, all in one core (a neuron targets one axon, MER14)."""
    cores, current, used = [], [], 0
    for i in np.flatnonzero(targets > 1):
        m = int(targets[i])
        if current and (used + m > CORE_NEURONS or len(current) == CORE_AXONS):
            cores.append(current)
            current, used = [], 0
        current.append(int(i))
        used += m
    return cores + [current] if current else cores


def _splitters(targets: np.ndarray) -> tuple[int, int]:
    """(splitter neurons, splitter cores) for outputs reaching ``targets`` axons of the next layer each."""
    return int(targets[targets > 1].sum()), len(splitter_packing(targets))


def _place(start: int, count: int) -> np.ndarray:
    """(count, 3) chip, x, y of cores numbered from ``start``, row-major on 64 x 64 meshes (MER14)."""
    g = np.arange(start, start + count)
    local = g % CHIP_CORES
    return np.stack([g // CHIP_CORES, local % MESH_SIDE, local // MESH_SIDE], axis=1)


def _connected(src_outputs, dst_inputs) -> np.ndarray:
    """(sources, targets) bool: some output of the source core is an input of the target core."""
    return src_outputs.astype(np.float32) @ dst_inputs.T.astype(np.float32) > 0


def _hops(src_pos, dst_pos, connected) -> np.ndarray:
    """Hops of each connected (source, target) core pair on the same chip."""
    s, d = np.nonzero(connected)
    same = src_pos[s, 0] == dst_pos[d, 0]
    return mesh_hops(src_pos[s[same], 1:], dst_pos[d[same], 1:])


def _output_hops(src_pos, next_ins, next_pos, split_pos, targets) -> np.ndarray:
    """Per output neuron: mesh hops of one spike to every axon it reaches, straight (one target) or to its
    splitter core and on from there (``copies`` spikes per target core); x-then-y routing on (x, y) (cores on
    other chips are counted by their mesh coordinates: chip crossings are not modelled here)."""
    k, i = np.nonzero(next_ins)
    copies = np.divide(targets, next_ins.sum(axis=0), out=np.zeros(len(targets)), where=targets > 0)
    via = np.full((len(targets), 2), -1)
    for core, outputs in enumerate(splitter_packing(targets)):
        via[outputs] = split_pos[core, 1:]
    split = targets[i] > 1
    start = np.where(split[:, None], via[i], src_pos[i, 1:])
    onward = np.bincount(i, mesh_hops(start, next_pos[k, 1:]) * np.where(split, copies[i], 1), len(targets))
    return onward + np.where(targets > 1, mesh_hops(src_pos[:, 1:], np.maximum(via, 0)), 0)


PLAN_BYTES = 6   # per core and per input or output of its layer: the bool masks of _plan (list and array)
#                  and their float32 copy in _connected


def _check_size(found: list[Layer], copies: int) -> None:
    """From shapes alone, before _plan allocates its per-core masks (cores x (inputs + outputs) of the layer):
    a lower bound on each layer's compute cores (256 neurons each, 128 when its fan-in is split, times the pieces)
    and a NeuroError naming the layer if those masks would not fit in memory."""
    for layer in found:
        n_in, n_out = int(np.prod(layer.in_shape)), int(np.prod(layer.out_shape))
        pieces = _check_fan_in(layer.name, layer.matrix.shape[1], copies)
        if layer.weight.ndim == 2:
            cores = -(-n_out // (CORE_NEURONS if pieces == 1 else CORE_NEURONS // 2)) * pieces
        else:
            cores = -(-n_out // CORE_NEURONS)
        check_memory(PLAN_BYTES * cores * (n_in + n_out), f"layer {layer.name}",
                     f"mapping its {n_out} neurons (at least {cores} cores, {-(-cores // CHIP_CORES)} chips) over "
                     f"{n_in} inputs", "use a smaller input or fewer channels, or pool earlier")


def map_network(snn: SNN, scheme: str = "trinary", levels: int = 3) -> NetworkMap:
    """Map every Conv2d/Dense layer of ``snn`` under one weight scheme; see the module docstring. Limits that
    shapes alone decide (fan-in, the mapping's memory) are checked before anything proportional to them is built."""
    copies = quantise(np.ones((1, 1)), scheme, levels).copies    # checks scheme and levels first
    found = layers(snn, copies)
    _check_size(found, copies)
    quantised = [(layer, quantise(layer.matrix, scheme, levels)) for layer in found]
    plans = [_plan(layer, q) for layer, q in quantised]
    for i, (m, *_) in enumerate(plans[:-1]):
        m.splitter_neurons, m.splitter_cores = _splitters(plans[i + 1][0].input_axons)
    starts = np.concatenate([[0], np.cumsum([p[0].cores for p in plans])])
    hops = []
    for i, (m, ins, outs, part_outs) in enumerate(plans):
        compute = _place(starts[i], m.compute_cores)
        merge = _place(starts[i] + m.compute_cores, m.merge_cores)
        out_pos = merge if m.merge_cores else compute
        if i:
            hops.append(_hops(prev_out[0], compute, _connected(prev_out[1], ins)))
        if m.merge_cores:
            hops.append(_hops(compute, merge, _connected(part_outs, outs)))
            k, o = np.nonzero(part_outs)
            m.partial_hops = np.bincount(o, mesh_hops(compute[k, 1:], merge[outs.argmax(axis=0)[o], 1:]),
                                         part_outs.shape[1]) / np.maximum(part_outs.sum(axis=0), 1)
        if i + 1 < len(plans):
            splitters = _place(starts[i] + m.compute_cores + m.merge_cores, m.splitter_cores)
            nxt = plans[i + 1]
            m.output_hops = _output_hops(out_pos[outs.argmax(axis=0)], nxt[1],
                                         _place(starts[i + 1], nxt[0].compute_cores), splitters,
                                         nxt[0].input_axons.astype(np.float64))
        prev_out = (out_pos, outs)
    hops = np.concatenate(hops) if hops else np.zeros(0)
    return NetworkMap([p[0] for p in plans], int(starts[-1]), -(-int(starts[-1]) // CHIP_CORES),
                      float(hops.mean()) if hops.size else 0.0, quantised)
