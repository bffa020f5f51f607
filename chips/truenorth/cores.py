"""A compiled converted network (``chips.truenorth.program``) written out as real cores and routes for the chip
simulator (``chips.truenorth.chip``): the independent check that the engine's layer-level program is what
the cores compute.

Per mapped layer, in the order ``chips.truenorth.mapping`` counts and places them: compute cores (one per neuron
group and input piece; an input n of the core drives axons copies x n + a of type a; a neuron's crossbar
column holds the bits of its code for each input), merge cores (partial neuron (piece, sign) of output o on
axon 2 x (o's slot x pieces + piece) + sign, types 0 and 1 weighing +255 and -255), then splitter cores (one
axon per output that reaches several axons, one neuron per target axon; alpha 1, reset to 0: a spike in,
a spike out one tick later). Neuron parameters are read from the program's populations, so both run the
same numbers. Routes: partial -> merge delay 1; a layer's output -> its splitter delay 1 -> target delay 1,
or straight to its one target with delay 2; the last layer's neurons are the chip's outputs (class index);
network inputs go straight to the first layer's axons (delay 0).
"""

from __future__ import annotations

import numpy as np

from chips.truenorth.core import AXON_TYPES, CORE_AXONS, CORE_NEURONS, THRESHOLD_MAX, CoreConfig
from chips.truenorth.chip import Chip
from chips.truenorth.mapping import Quantised, _chunks, _groups, _merge_per_core, _pieces, splitter_packing
from chips.truenorth.program import HOP_DELAY, MERGE_UNIT, SPLIT_DELAY, TrueNorthProgram


def engine_index(shape) -> np.ndarray:
    """Engine position (channel-last) of each IR neuron of a (C, H, W) or (N,) population."""
    if len(shape) == 1:
        return np.arange(shape[0])
    c, h, w = shape
    return np.arange(c * h * w).reshape(h, w, c).transpose(2, 0, 1).ravel()


def _codes(layer, q: Quantised, neurons: np.ndarray, inputs: np.ndarray) -> np.ndarray:
    """(neurons, inputs) codes of output neurons ``neurons`` on population inputs ``inputs`` (IR indices)."""
    if layer.weight.ndim == 2:
        return q.codes[np.ix_(neurons, inputs)]
    cin, h, w = layer.in_shape
    _, oh, ow = layer.out_shape
    kh, kw = layer.weight.shape[2:]
    (sy, sx), (py, px) = layer.stride, layer.padding
    o, oy, ox = np.unravel_index(neurons, (len(q.codes), oh, ow))
    c, iy, ix = np.unravel_index(inputs, (cin, h, w))
    ky = iy[None] + py - oy[:, None] * sy
    kx = ix[None] + px - ox[:, None] * sx
    valid = (ky >= 0) & (ky < kh) & (kx >= 0) & (kx < kw)
    tap = c[None] * kh * kw + np.clip(ky, 0, kh - 1) * kw + np.clip(kx, 0, kw - 1)
    return np.where(valid, q.codes[o[:, None], tap], 0)


def _core(codes: np.ndarray, q: Quantised, params: dict) -> CoreConfig:
    """A compute core: neuron j's column holds the bits of codes[j, n] on axons copies x n + a (type a)."""
    k = q.copies
    n_neurons, n_inputs = codes.shape
    bits = Quantised(codes, np.ones(n_neurons), q.type_codes, q.unit).bits()          # (copies, neurons, inputs)
    crossbar = np.zeros((CORE_AXONS, CORE_NEURONS), bool)
    crossbar[:n_inputs * k, :n_neurons] = bits.transpose(2, 0, 1).reshape(n_inputs * k, n_neurons)
    types = np.zeros(CORE_AXONS, np.int64)
    types[:n_inputs * k] = np.tile(np.arange(k), n_inputs)
    weights = np.zeros((CORE_NEURONS, AXON_TYPES), np.int64)
    weights[:n_neurons, :k] = np.array(q.type_codes) * q.unit
    return _config(crossbar, types, weights, params, n_neurons)


def _config(crossbar, types, weights, params: dict, n: int) -> CoreConfig:
    """CoreConfig with per-neuron ``params`` (alpha, leak, v0, reset_mode, beta) for the first n neurons."""
    full = {name: np.zeros(CORE_NEURONS, np.int64) for name in ("leak", "v0", "reset_mode")}
    full["alpha"] = np.ones(CORE_NEURONS, np.int64)
    full["beta"] = np.full(CORE_NEURONS, THRESHOLD_MAX, np.int64)
    for name, values in params.items():
        full[name][:n] = values
    return CoreConfig(crossbar=crossbar, axon_types=types, weights=weights,
                      stochastic_synapse=np.zeros((CORE_NEURONS, AXON_TYPES), bool), leak_reversal=0,
                      stochastic_leak=0, threshold_mask_bits=0, reset_value=0, kappa=1, **full)


class _Builder:
    """Cores at the indices the mapping places them at (per layer: compute, merge, splitter cores)."""

    def __init__(self, layers):
        self.starts = np.concatenate([[0], np.cumsum([m.cores for m in layers])]).astype(int)
        self.cores = [None] * int(self.starts[-1])
        self.routes = np.full((len(self.cores), CORE_NEURONS, 3), -1, np.int64)
        self.next = list(self.starts[:-1])               # next free compute/merge index per layer

    def add(self, layer: int, core: CoreConfig) -> int:
        k = self.next[layer]
        self.cores[k] = core
        self.next[layer] += 1
        return k


def build_chip(program: TrueNorthProgram) -> Chip:
    """The program's mapped network as cores, routes, inputs (the image's pixels) and outputs (the classes)."""
    b = _Builder(program.mapping.layers)
    pops = iter(program.populations)
    sources = None          # per output of the previous layer: list of (core, neuron)
    in_routes = []
    for li, ((layer, q), m) in enumerate(zip(program.mapping.quantised, program.mapping.layers)):
        n_in, n_out = int(np.prod(layer.in_shape)), int(np.prod(layer.out_shape))
        first = next(pops)
        merge_pop = next(pops) if m.pieces > 1 else None
        out_idx = engine_index(layer.out_shape)
        targets = [[] for _ in range(n_in)]          # per input: (core, axon) it must reach
        partial_of = {}                              # (output, piece) -> [(core, neuron +), (core, neuron -)]
        outputs = [None] * n_out                     # per output neuron: (core, neuron)
        blocks = 2 * m.pieces
        for inputs, group_out in _groups(layer, q.copies):
            parts = _pieces(inputs, q.copies, m.pieces > 1)
            for chunk in _chunks(group_out, m.pieces):
                for p, part in enumerate(parts):
                    codes = _codes(layer, q, chunk, part)
                    if m.pieces == 1:
                        e = out_idx[chunk]
                        params = dict(alpha=first.alpha[e], leak=first.leak[e], v0=first.v0[e],
                                      reset_mode=first.reset_mode)
                        core = b.add(li, _core(codes, q, params))
                        for j, o in enumerate(chunk):
                            outputs[o] = (core, j)
                    else:
                        piece = int(np.flatnonzero(inputs == part[0])[0]) // (CORE_AXONS // q.copies)
                        e = _partial_index(layer, chunk, piece, m.pieces)
                        both = np.concatenate([codes, -codes])
                        params = dict(alpha=np.concatenate([first.alpha[e[0]], first.alpha[e[1]]]),
                                      v0=np.concatenate([first.v0[e[0]], first.v0[e[1]]]), reset_mode=1,
                                      beta=first.beta)
                        core = b.add(li, _core(both, q, params))
                        for j, o in enumerate(chunk):
                            partial_of[(int(o), piece)] = [(core, j), (core, len(chunk) + j)]
                    for n, i in enumerate(part):
                        targets[i] += [(core, n * q.copies + a) for a in range(q.copies)]
        if m.pieces > 1:
            per_core = _merge_per_core(m.pieces)
            for start in range(0, n_out, per_core):
                chunk = np.arange(start, min(start + per_core, n_out))
                crossbar = np.zeros((CORE_AXONS, CORE_NEURONS), bool)
                types = np.zeros(CORE_AXONS, np.int64)
                types[1::2] = 1
                weights = np.zeros((CORE_NEURONS, AXON_TYPES), np.int64)
                weights[:, 0], weights[:, 1] = MERGE_UNIT, -MERGE_UNIT
                for j in range(len(chunk)):
                    crossbar[j * blocks:(j + 1) * blocks, j] = True
                e = out_idx[chunk]
                core = b.add(li, _config(crossbar, types, weights, dict(alpha=merge_pop.alpha[e], leak=merge_pop.leak[e],
                                     v0=merge_pop.v0[e], reset_mode=merge_pop.reset_mode), len(chunk)))
                for j, o in enumerate(chunk):
                    outputs[o] = (core, j)
                    for p in range(m.pieces):
                        for s, (src, neuron) in enumerate(partial_of.get((int(o), p), [])):
                            b.routes[src][neuron] = (core, j * blocks + 2 * p + s, HOP_DELAY)
        if li == 0:
            in_routes = [(i, c, a) for i, ts in enumerate(targets) for c, a in ts]
        else:
            _route(b, li - 1, sources, targets)
        sources = outputs
    out_rows = [(c, j, o) for o, (c, j) in enumerate(sources)]
    return Chip(b.cores, b.routes, np.array(in_routes, np.int64).reshape(-1, 3),
                np.array(out_rows, np.int64), int(np.prod(program.snn.input_shape)), len(sources))


def _partial_index(layer, chunk: np.ndarray, piece: int, pieces: int) -> tuple[np.ndarray, np.ndarray]:
    """Engine indices of the + and - partial neurons (piece ``piece``) of output neurons ``chunk``."""
    out_ch = layer.weight.shape[0]
    channels = 2 * pieces * out_ch
    if layer.weight.ndim == 2:
        return piece * 2 * out_ch + chunk, piece * 2 * out_ch + out_ch + chunk
    _, oh, ow = layer.out_shape
    o, oy, ox = np.unravel_index(chunk, (out_ch, oh, ow))
    base = (oy * ow + ox) * channels + piece * 2 * out_ch + o
    return base, base + out_ch


def _route(b: _Builder, layer: int, sources: list, targets: list) -> None:
    """Each previous-layer output to the axons it must reach: straight to its one target (delay 2) or through
    its splitter core (``splitter_packing``; delay 1 there, 1 on)."""
    for (c, j), t in zip(sources, targets):
        if len(t) == 1:
            b.routes[c][j] = (t[0][0], t[0][1], SPLIT_DELAY)
    weights = np.zeros((CORE_NEURONS, AXON_TYPES), np.int64)
    weights[:, 0] = 1
    for packed in splitter_packing(np.array([len(t) for t in targets])):
        crossbar = np.zeros((CORE_AXONS, CORE_NEURONS), bool)
        first = np.concatenate([[0], np.cumsum([len(targets[i]) for i in packed])])
        for axon, i in enumerate(packed):
            crossbar[axon, first[axon]:first[axon + 1]] = True
        core = b.add(layer, _config(crossbar, np.zeros(CORE_AXONS, np.int64), weights, dict(reset_mode=0),
                                    int(first[-1])))
        for axon, i in enumerate(packed):
            c, j = sources[i]
            b.routes[c][j] = (core, axon, HOP_DELAY)
            for k, (tc, ta) in enumerate(targets[i]):
                b.routes[core][first[axon] + k] = (tc, ta, HOP_DELAY)
