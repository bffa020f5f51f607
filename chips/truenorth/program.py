"""A converted SNN compiled onto TrueNorth cores and run on the engine with the chip's integer arithmetic.

``compile_snn(snn, scheme, levels)`` maps the SNN (``chips.truenorth.mapping.map_network``) and builds a program
the engine runs one population per mapped layer, in the units and with the timing of the cores:

* synapses: each layer's integer weights over its receptive field (pools and flatten folded in), codes x
  unit, which is exactly what its cores' crossbars and type weights sum to (``mapping.block_core``);
* split fan-in: per piece a positive and a negated partial neuron (threshold alpha of the output neuron,
  reset by subtraction, V saturating at 0: kappa 1, beta 0), then merge neurons with type weights +-255 and
  threshold 255, so one partial spike is one threshold of the output neuron (choice: the largest signed 9-bit
  weight, for the finest bias). The floor at 0 makes the pair send the piece's running sum S: the + neuron
  spikes on each threshold S gains, the - one on each it loses, within one threshold each. Without it (V free
  down to -2^18) a + neuron that has spiked keeps those spikes when S falls back and the - neuron only fires
  below S's lowest point, so the pair sends max S - max(-S), not S, whenever a piece's sum is not monotone.
  ``partial_resolution`` k > 1: partial thresholds alpha / k, merge threshold ~255 k (``_partial_alpha``);
* neurons: the TrueNorth neuron (``chips.truenorth``) with deterministic synapses and leak: lambda = the
  converted bias in integer units, alpha = threshold x unit / scale, reset by subtraction (gamma 1) or to 0
  (gamma 0, R = 0), kappa 1 with beta = 2^18 - 1 (converted neurons have no negative threshold; V saturates
  there), V0 = v_init x alpha less the leak of the ticks before the population's first input arrives (the leak
  runs from tick 0, the input only after the delays below: without this a deep layer's bias ran ahead of its
  input, ~20 ticks on CIFAR-10's 7 layers), capped so that no neuron spikes before any input
  (``chips.compiling.start_ahead``);
* timing: a spike reaches its target axon one tick later at the least (delay 1-15, MER14 [sec]). A layer's
  outputs reach the next layer through splitter cores (two hops), and outputs with one target take axon
  delay 2 (choice: every input of a population arrives equally late), so each population integrates what
  the one before sent 2 ticks earlier; merge neurons get partial spikes 1 tick later; the network input
  comes from off chip onto the first layer's axons in the tick it is sent (``simulate_core``'s convention);
* readout: TrueNorth sends only spikes off chip, so the output layer spikes (an SNN converted with a
  potential readout gets spiking output neurons with that layer's threshold and v_init) and the class is
  the one with the most spikes, ties to the lowest index (``potential`` is 0: V is not read off the chip).

Counts: a ``CoreOp`` stage counts synaptic operations as the chip does (active axon x set crossbar bit,
over the input's axon copies and both partial neurons), plus, for the inputs it receives, the spikes that
carry them: splitter cores' SOPs and spikes (one per target axon of an input with several) and, for the
first layer, one packet from off chip per target axon. So ``result.per_image("synops")`` and
``("spikes")`` are the chip's SOPs and spikes (every spike packet) per image.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, Mapping

import numpy as np

from chips.truenorth.core import (AXON_TYPES, CHIP_CORES, CORE_AXONS, CORE_NEURONS, LEAK_MAX, LEAK_MIN, THRESHOLD_MAX,
                                  V_BITS, WEIGHT_MAX, _fire)
from chips.api import CoefficientSet
from chips.compiling import start_ahead
from chips.truenorth.cost_model import FIT_VOLTAGE, COEFFICIENTS, SETS, TICK_HZ, Cost, cost
from chips.truenorth.mapping import RESET_MODE, Layer, NetworkMap, Quantised, layers, map_network, quantise
from neuro import graph, kernels
from neuro.errors import NeuroError
from neuro.jit import njit
from neuro.sim import Backend, NeuronModel, SimResult
from neuro.snn import SNN, Neurons, Synapses

DEFAULT_SCHEME, DEFAULT_LEVELS = "multilevel", 4   # the scheme that keeps the MNIST CNN within 98.5 % (docs)
MERGE_UNIT = WEIGHT_MAX       # merge type weights +-255, merge threshold 255 (choice, module docstring)
PARTIAL_BETA = 0              # partial neurons' V saturates at 0 (kappa 1, beta 0): module docstring
HOP_DELAY = 1                 # ticks from a spike to its target axon at the least (MER14 [sec]: delay 1-15)
SPLIT_DELAY = 2 * HOP_DELAY   # through a splitter core
PARTIAL_RESOLUTION = 1        # partial thresholds down to alpha / this (``_partial_alpha``); 1: whole thresholds


# --- synapses: one mapped layer's integer input --------------------------------------------------------------

@dataclass
class CoreOp:
    """Integer input current of one mapped layer, split into ``pieces`` partial sums (+ and -) if its
    fan-in exceeds a core; an op with its own engine stage (``neuro.sim`` seam)."""

    weight: np.ndarray        # (out, fan_in) ints: Dense over inputs, Conv2d over taps (ky, kx, c)
    sops: np.ndarray          # (out, fan_in) crossbar bits per input spike (both partial neurons if split)
    pieces: int
    per_core: int             # inputs per core
    kernel: tuple | None      # Conv2d: (kh, kw, sy, sx, py, px); None: Dense
    extra_sops: np.ndarray    # (n_in,) splitter SOPs per input spike (layer-input order)
    extra_spikes: np.ndarray  # (n_in,) spike packets carrying one input spike to its axons (splitters, off chip)
    extra_hops: np.ndarray    # (n_in,) mesh hops of one input spike to all its axons (0 from off chip)

    @property
    def out_channels(self) -> int:
        return len(self.weight) * (1 if self.pieces == 1 else 2 * self.pieces)

    def output_shape(self, shape):
        if self.kernel is None:
            return (self.out_channels,)
        kh, kw, sy, sx, py, px = self.kernel
        return self.out_channels, (shape[1] + 2 * py - kh) // sy + 1, (shape[2] + 2 * px - kw) // sx + 1

    def stage(self, in_shape, out_shape, perm):
        return CoreStage(self, in_shape, out_shape, perm)


class CoreStage:
    """Engine stage of a CoreOp: the partial sums of each piece over its non-zero inputs (event-driven: a converted
    layer's inputs are sparse spikes), and their negated copies."""

    def __init__(self, op: CoreOp, in_shape, out_shape, perm):
        self.op = op
        self.blocks = 1 if op.pieces == 1 else 2 * op.pieces
        wt = np.ascontiguousarray(op.weight.T, np.float32)                       # (fan_in, out)
        piece = (np.arange(op.weight.shape[1]) // op.per_core).astype(np.int64)
        extra_sops, extra_spikes, extra_hops = op.extra_sops, op.extra_spikes, op.extra_hops
        if op.kernel is None:
            taps = op.sops.sum(axis=0).astype(np.float64)
            if perm is not None:                       # engine order (H, W, C) after a Flatten of an image
                wt, piece, taps = wt[perm], piece[perm], taps[perm]
                extra_sops, extra_spikes, extra_hops = extra_sops[perm], extra_spikes[perm], extra_hops[perm]
            self.fanout, self.geom = taps, None
        else:
            c, h, w_ = in_shape
            kh, kw, sy, sx, py, px = op.kernel
            self.geom = (h, w_, c, *out_shape[1:], kh, kw, sy, sx, py, px)
            taps = op.sops.sum(axis=0).reshape(kh, kw, c).transpose(2, 0, 1)
            self.fanout = kernels.conv_tap_fanout(taps, h, w_, *out_shape[1:], sy, sx, py, px)
            hwc = lambda a: a.reshape(c, h, w_).transpose(1, 2, 0).ravel()  # noqa: E731  IR (C, H, W) -> engine
            extra_sops, extra_spikes, extra_hops = hwc(extra_sops), hwc(extra_spikes), hwc(extra_hops)
            pieces = max(self.blocks // 2, 1)   # conv_pieces' scratch: one image's active inputs, one position's sums
            self.scratch = (np.empty(h * w_ + 1, np.int64), np.empty(h * w_ * c, np.int64),
                            np.empty(h * w_ * c, np.float32), np.empty(pieces * wt.shape[1], np.float32))
        self.wt, self.piece = wt, piece
        self.fanout = (self.fanout + extra_sops).astype(np.float64)
        self.extra_spikes, self.extra_hops = extra_spikes.astype(np.float64), extra_hops.astype(np.float64)
        positions = 1 if op.kernel is None else int(np.prod(out_shape[1:]))
        self.connections = int((op.weight != 0).sum()) * positions

    def reset(self, batch):
        pass

    def step(self, x, counts, out):
        _, synops, _ = kernels.activity(x, self.fanout)
        _, packets, _ = kernels.activity(x, self.extra_spikes)
        _, hops, _ = kernels.activity(x, self.extra_hops)
        counts.hops += hops
        counts.synops += synops
        counts.effective_acs += synops
        counts.spikes += packets
        counts.dense += self.connections * x.shape[0]
        counts.event_steps += 1
        if self.geom is None:
            dense_pieces(x, self.wt, self.piece, self.blocks, out)
        else:
            conv_pieces(x, self.wt, self.piece, self.blocks, out, *self.geom, *self.scratch)


@njit(nogil=True, cache=True)
def dense_pieces(x, wt, piece, blocks, out):
    """out[b, (piece(i) x 2 or 0) x O + o] += x[b, i] wt[i, o] over non-zero inputs i; then negated blocks."""
    n_out = wt.shape[1]
    step = 2 if blocks > 1 else 0
    for b in range(x.shape[0]):
        ob = out[b]
        ob[:] = 0.0
        for i in range(x.shape[1]):
            v = x[b, i]
            if v != 0:
                base = piece[i] * step * n_out
                for o in range(n_out):
                    ob[base + o] += v * wt[i, o]
        if step:   # block 2p + 1 = -(block 2p)
            for p in range(0, blocks, 2):
                for o in range(n_out):
                    ob[(p + 1) * n_out + o] = -ob[p * n_out + o]


@njit(nogil=True, fastmath=True, cache=True)
def conv_pieces(x, wt, piece, blocks, out, H, W, C, OH, OW, kh, kw, sy, sx, py, px, start, chan, vals, acc):
    """Conv2d gather: each output position (oy, ox) sums its window's non-zero inputs (iy, ix, c), through tap
    (ky kw + kx) C + c, into the partial sum of piece[tap] (``acc``: one position's pieces, in cache); outputs are
    (position, block, channel), channel fastest, block 2p + 1 = -(block 2p). start, chan, vals: scratch for
    ``kernels.active_inputs``. Sums of whole numbers below 2^24, so exact in any order (fastmath vectorises the
    row updates: 2x)."""
    n_out = wt.shape[1]
    step = 2 if blocks > 1 else 0
    pieces = max(blocks // 2, 1)
    for b in range(x.shape[0]):
        kernels.active_inputs(x[b], H * W, C, start, chan, vals)
        for oy in range(OH):
            for ox in range(OW):
                acc[:] = 0.0
                for ky in range(kh):
                    iy = oy * sy + ky - py
                    if iy < 0 or iy >= H:
                        continue
                    for kx in range(kw):
                        ix = ox * sx + kx - px
                        if ix < 0 or ix >= W:
                            continue
                        q, first_tap = iy * W + ix, (ky * kw + kx) * C
                        for k in range(start[q], start[q + 1]):
                            tap, v = first_tap + chan[k], vals[k]
                            row, weights = acc[piece[tap] * n_out:(piece[tap] + 1) * n_out], wt[tap]
                            for o in range(n_out):
                                row[o] += v * weights[o]
                position = (oy * OW + ox) * blocks * n_out
                for p in range(pieces):
                    for o in range(n_out):
                        total = acc[p * n_out + o]
                        out[b, position + p * step * n_out + o] = total
                        if step:
                            out[b, position + (p * step + 1) * n_out + o] = -total


@dataclass
class MergeOp:
    """Merge neurons' input: +-255 per partial spike, summed over the pieces of each output neuron."""

    pieces: int
    out: int
    image: bool               # a Conv2d layer's population (C, H, W), else a flat vector
    hops: np.ndarray          # per partial neuron (engine order): mesh hops to its merge core

    def output_shape(self, shape):
        return (self.out, *shape[1:]) if self.image else (self.out,)

    def stage(self, in_shape, out_shape, perm):
        return MergeStage(self)


class MergeStage:
    """One SOP per partial spike (it reaches one merge axon of one set crossbar bit)."""

    def __init__(self, op: MergeOp):
        self.op = op
        self.hops = op.hops.astype(np.float64)

    def reset(self, batch):
        pass

    def step(self, x, counts, out):
        spikes, hops = merge_pieces(x, out, 2 * self.op.pieces, self.op.out, float(MERGE_UNIT), self.hops)
        counts.hops += hops
        counts.synops += spikes
        counts.effective_acs += spikes
        counts.event_steps += 1


@njit(nogil=True, fastmath=True, cache=True)
def merge_pieces(x, out, blocks, n_out, unit, hops):
    """out[b, q, o] = unit x sum_p (x[b, q, 2p, o] - x[b, q, 2p + 1, o]), in one branch-free pass over the partial
    spikes x (0 or 1; sums of whole numbers, exact in any order); returns (partial spikes, their mesh hops:
    ``hops`` per partial neuron)."""
    positions = out.shape[1] // n_out
    spikes, hop_totals = 0.0, np.zeros(x.shape[0])   # hops summed per image, then over images (as kernels.activity)
    for b in range(x.shape[0]):
        hop_total = 0.0
        for q in range(positions):
            for o in range(n_out):
                out[b, q * n_out + o] = 0.0
            for p in range(blocks):
                sign = unit if p % 2 == 0 else -unit
                base = (q * blocks + p) * n_out
                for o in range(n_out):
                    s = x[b, base + o]
                    out[b, q * n_out + o] += sign * s
                    spikes += s
                    hop_total += hops[base + o] * s
        hop_totals[b] = hop_total
    return spikes, hop_totals.sum()


# --- neurons -----------------------------------------------------------------------------------------------

@dataclass
class Population:
    """TrueNorth parameters of one population, per neuron in engine order (channel-last for images)."""

    alpha: np.ndarray
    leak: np.ndarray
    v0: np.ndarray
    reset_mode: int
    delay: int                # ticks from a spike here to its target axons (0: the output layer, read off chip)
    beta: int = THRESHOLD_MAX  # V saturates at -beta (kappa 1): partial neurons use 0 (module docstring)


@njit(nogil=True, cache=True)
def population_tick(current, v, spikes, held, alpha, leak, mode, beta):
    """Steps 1-5 of the TrueNorth neuron (``chips.truenorth``) with deterministic synapses and leak (Omega 1),
    no threshold mask, kappa 1 (V saturates at -beta), R = 0; returns the number of spikes. With a delay,
    ``held`` is the ring slot of the spikes sent ``delay`` ticks ago: they go to ``spikes`` and this tick's
    take their place, in the same pass (``held`` of size 0: no delay)."""
    total = 0
    delayed = held.size > 0
    for b in range(v.shape[0]):
        for j in range(v.shape[1]):
            vv = np.int64(v[b, j]) + np.int64(current[b, j]) + leak[j]
            vv, spiked = _fire(vv, alpha[j], beta, 0, 0, mode, 1)
            v[b, j] = vv
            fired = 1.0 if spiked else 0.0
            if delayed:
                spikes[b, j] = held[b, j]
                held[b, j] = fired
            else:
                spikes[b, j] = fired
            total += spiked
    return total


class PopulationNeurons(NeuronModel):
    """int32 V of one population. Its spikes reach the next population's axons ``delay`` ticks later: the
    engine sees them then (a ring of the last ``delay`` ticks' spikes); the spike count is of this tick."""

    def __init__(self, pop: Population):
        self.pop = pop

    def reset(self, batch, n):
        self.v = np.tile(self.pop.v0.astype(np.int32), (batch, 1))
        self.ring = np.zeros((self.pop.delay, batch, n), np.float32)
        self.slot = 0

    def step(self, current, spikes):
        held = self.ring[self.slot] if self.pop.delay else self.ring.reshape(0, 0)
        fired = population_tick(current, self.v, spikes, held, self.pop.alpha, self.pop.leak, self.pop.reset_mode,
                                self.pop.beta)
        if self.pop.delay:
            self.slot = (self.slot + 1) % self.pop.delay
        return fired

    def potential(self):
        return np.zeros(self.v.shape, np.float32)


class ProgramBackend(Backend):
    """Runs a TrueNorthProgram's SNN: its CoreOps and merge ops as they are, its populations' parameters."""

    name = "truenorth"

    def __init__(self, program: "TrueNorthProgram"):
        self.populations = dict(zip((id(op) for op in program.snn.ops if isinstance(op, Neurons)),
                                    program.populations))

    def neuron_model(self, op: Neurons) -> NeuronModel:
        if id(op) not in self.populations:
            raise NeuroError("this Neurons op is not part of the TrueNorth program: run program.snn")
        return PopulationNeurons(self.populations[id(op)])


# --- compilation ---------------------------------------------------------------------------------------------

@dataclass
class TrueNorthProgram:
    """A converted SNN on TrueNorth cores: the SNN the engine runs, its populations, the mapping."""

    snn: SNN
    populations: list
    mapping: NetworkMap
    depth: int                # ticks from an input spike to the output layer's response to it
    leak_clipped: int         # neurons whose bias did not fit the signed 9-bit leak (clipped)
    deviations: list[str] = field(default_factory=list)  # every way the program differs from the converted SNN
    tick_hz: float | str = "max"   # the operating point ``cost`` takes by default (compile options)
    voltage: float = FIT_VOLTAGE

    def backend(self) -> ProgramBackend:
        return ProgramBackend(self)

    def cost(self, result: SimResult, ticks_per_inference: int, coefficients: CoefficientSet | str | None = None, *,
             tick_hz: float | str | None = None, voltage: float | None = None, whole_chips: bool = True) -> Cost:
        """Rate-coded cost: each image holds the cores for ``ticks_per_inference`` ticks; SOPs, spikes and hops
        as the stages counted them; input packets: the first layer's packets from off chip. ``tick_hz``: a
        rate or "max" (``cost_model.fastest_tick_hz``: the chip as fast as its published limits allow, as Loihi
        runs unthrottled); None: the program's (compiled with "max" by default); ``voltage`` None: the
        program's; ``whole_chips``: every core of the chips used, or the share of the cores used. ``variants``
        holds the real-time tick and the per-core share."""
        tick_hz = self.tick_hz if tick_hz is None else tick_hz
        voltage = self.voltage if voltage is None else voltage
        main = self._cost(result, ticks_per_inference, coefficients, tick_hz, voltage, whole_chips)
        other = {f"real-time tick ({TICK_HZ:g} Hz)": dict(tick_hz=TICK_HZ, whole_chips=whole_chips),
                 "share of the cores used (not whole chips)": dict(tick_hz=tick_hz, whole_chips=False)}
        variants = {}
        for label, options in other.items():
            if (options["tick_hz"], options["whole_chips"]) != (tick_hz, whole_chips):
                c = self._cost(result, ticks_per_inference, coefficients, voltage=voltage, **options)
                variants[label] = {k: getattr(c, k) for k in ("energy_per_inference_j", "frames_per_second",
                                                              "latency_s")}
        return replace(main, variants=variants)

    def _cost(self, result, ticks_per_inference, coefficients, tick_hz, voltage, whole_chips) -> Cost:
        if coefficients not in (None, COEFFICIENTS, SETS[COEFFICIENTS]):
            name = getattr(coefficients, "name", coefficients)
            raise NeuroError(f"TrueNorth has one coefficient set, {COEFFICIENTS!r} (fitted to AKO15 Fig. 17 and "
                             f"MER14 at import), got {name!r}: use {COEFFICIENTS}")
        ticks = result.timesteps
        first = next((c for c in result.layers if c.name.endswith(":CoreOp")), None)
        inputs = first.spikes / max(result.n_images, 1) / ticks if first is not None else 0.0
        return cost(result.per_image("synops") / ticks, result.per_image("spikes") / ticks,
                    result.per_image("hops") / ticks, self.mapping.cores, ticks_per_inference=ticks_per_inference,
                    tick_hz=tick_hz, voltage=voltage, whole_chips=whole_chips, input_packets_per_tick=inputs)


def _field_order(layer: Layer, m: np.ndarray) -> np.ndarray:
    """(out, fan_in) over a Conv2d's taps in (c, ky, kx) order -> (ky, kx, c), the mapping's piece order."""
    if layer.weight.ndim == 2:
        return m
    out, c, kh, kw = layer.weight.shape
    return m.reshape(out, c, kh, kw).transpose(0, 2, 3, 1).reshape(out, -1)


def _crossbar_bits(codes: np.ndarray, q: Quantised) -> np.ndarray:
    """Set crossbar bits per (neuron, input): the code's bits over the input's axon copies."""
    return Quantised(codes, np.ones(len(codes)), q.type_codes, q.unit).bits().sum(axis=0)


def _per_neuron(values: np.ndarray, out_shape) -> np.ndarray:
    """Per output channel (Conv2d) or neuron (Dense) -> per neuron in engine order (channel fastest)."""
    positions = int(np.prod(out_shape[1:])) if len(out_shape) == 3 else 1
    return np.tile(values, positions)


def _leak(layer: Layer, scale_int: np.ndarray) -> tuple[np.ndarray, int]:
    """The bias in integer units per tick, clipped to the signed 9-bit leak; and how many were clipped."""
    lam = np.round(layer.bias * scale_int)
    return np.clip(lam, LEAK_MIN, LEAK_MAX).astype(np.int64), int(((lam < LEAK_MIN) | (lam > LEAK_MAX)).sum())


def _partial_alpha(layer: Layer, alpha: np.ndarray, resolution: int) -> np.ndarray:
    """Partial neurons' thresholds: alpha / k, k the finest of 1..``resolution`` at which the merge neurons' leak
    (the bias, in units of their threshold about 255 k) still fits the signed 9-bit leak. A partial pair sends its
    piece's running sum to within one partial threshold, so a neuron split into P pieces is off by up to P of them:
    P output thresholds at k = 1, which swamps an output layer that spikes a few times a run. But a partial neuron
    spikes at most once a tick, so a piece whose sum moves faster than alpha / k a tick lags behind it: a trade-off
    that depends on the activity, hence an option (choice; default 1; measured on CIFAR-10 in docs/results.md)."""
    bias = np.abs(layer.bias / layer.threshold).max(initial=0) * MERGE_UNIT
    k = int(np.clip(LEAK_MAX // bias if bias > 0 else resolution, 1, resolution))
    return np.maximum(1, np.round(alpha / k)).astype(np.int64)


def _layer_ops(layer: Layer, q: Quantised, m, extra: tuple, delay: int, start: int, resolution: int):
    """(ops, populations, clipped leaks, capped V0s) of one mapped layer: CoreOp and neurons, or CoreOp, partial
    neurons, MergeOp and merge neurons; ``delay``: ticks from the layer's output spikes to the next layer's axons;
    ``start``: ticks from the network input to the layer's first input spikes (``chips.compiling.start_ahead``);
    ``resolution``: the finest partial threshold, as a fraction of the output neuron's (``_partial_alpha``)."""
    alpha = np.maximum(1, np.round(layer.threshold * q.unit / q.scale)).astype(np.int64)
    if alpha.max() > THRESHOLD_MAX:
        j = int(alpha.argmax())
        raise NeuroError(f"layer {layer.name}: neuron {j} needs threshold {alpha[j]} > {THRESHOLD_MAX} (18 bits): "
                         f"its weights are too small for the scheme's unit; use another scheme or levels")
    codes = _field_order(layer, q.codes)
    sops = _crossbar_bits(codes, q)
    if m.pieces > 1:
        if q.type_codes != (1, -1) and codes.min() < -((1 << (q.copies - 1)) - 1):
            raise NeuroError(f"layer {layer.name}: code {codes.min()} has no negation in {q.copies} bits")
        sops = sops + _crossbar_bits(-codes, q)
    kernel = None if layer.weight.ndim == 2 else (*layer.weight.shape[2:], *layer.stride, *layer.padding)
    core_op = CoreOp(codes * q.unit, sops, m.pieces, CORE_AXONS // q.copies, kernel, *extra)
    mode, shape = RESET_MODE[layer.reset], layer.out_shape
    v0 = np.round(layer.v_init * alpha).astype(np.int64)
    if m.pieces == 1:
        leak, clipped = _leak(layer, q.unit / q.scale)
        v0, capped = start_ahead(v0, leak, start, alpha - 1 - leak, -THRESHOLD_MAX)
        pop = Population(_per_neuron(alpha, shape), _per_neuron(leak, shape), _per_neuron(v0, shape), mode, delay)
        return [Synapses(core_op), Neurons()], [pop], clipped, capped
    parts, out = 2 * m.pieces, len(alpha)
    fine = _partial_alpha(layer, alpha, resolution)
    partial_alpha = _per_neuron(np.tile(fine, parts), shape)
    partial = Population(partial_alpha, np.zeros(len(partial_alpha), np.int64),
                         _per_neuron(np.tile(np.round(layer.v_init * fine).astype(np.int64), parts), shape),
                         RESET_MODE["subtract"], HOP_DELAY, PARTIAL_BETA)
    merge_alpha = np.round(MERGE_UNIT * alpha / fine).astype(np.int64)   # one partial spike = fine / alpha thresholds
    leak, clipped = _leak(layer, merge_alpha / layer.threshold)
    merge_v0, capped = start_ahead(np.round(layer.v_init * merge_alpha).astype(np.int64), leak, start + HOP_DELAY,
                                   merge_alpha - 1 - leak, -THRESHOLD_MAX)
    merge = Population(_per_neuron(merge_alpha, shape), _per_neuron(leak, shape), _per_neuron(merge_v0, shape), mode,
                       delay)
    hops = m.partial_hops.reshape(out, -1).T[:, None, None, :]           # (positions, piece, sign, channel)
    merge_op = MergeOp(m.pieces, out, kernel is not None, np.broadcast_to(hops, (len(hops), m.pieces, 2, out)).ravel())
    return [Synapses(core_op), Neurons(), Synapses(merge_op), Neurons()], \
        [partial, merge], clipped, capped


def compile_snn(snn: SNN, scheme: str = DEFAULT_SCHEME, levels: int = DEFAULT_LEVELS, tick_hz: float | str = "max",
                voltage: float = FIT_VOLTAGE, partial_resolution: int = PARTIAL_RESOLUTION) -> TrueNorthProgram:
    """Map ``snn`` onto TrueNorth cores under ``scheme`` (``chips.truenorth.mapping``) and build the program that
    runs it; ``tick_hz`` and ``voltage``: the operating point its ``cost`` takes; ``partial_resolution``: split
    layers' partial thresholds down to 1 / this of the output neuron's (``_partial_alpha``)."""
    mapping = map_network(snn, scheme, levels)
    ops, pops, clipped, capped, depth = [], [], 0, 0, 0
    for i, ((layer, q), m) in enumerate(zip(mapping.quantised, mapping.layers)):
        if len(layer.in_shape) == 3 and layer.weight.ndim == 2:
            ops.append(graph.Flatten())
        targets = m.input_axons.astype(np.float64)
        through_splitters = np.where(targets > 1, targets, 0.0)
        if i == 0:                                     # from off chip: one packet per axon, no mesh hops counted
            extra = (np.zeros_like(targets), targets, np.zeros_like(targets))
        else:
            extra = (through_splitters, through_splitters, mapping.layers[i - 1].output_hops)
        last = i == len(mapping.layers) - 1
        delay = 0 if last else SPLIT_DELAY if m.splitter_neurons else HOP_DELAY
        layer_ops, layer_pops, c, v = _layer_ops(layer, q, m, extra, delay, depth, partial_resolution)
        ops, pops, clipped, capped = ops + layer_ops, pops + layer_pops, clipped + c, capped + v
        depth += delay + (HOP_DELAY if m.pieces > 1 else 0)
    program_snn = SNN(snn.input_shape, ops, "spikes", snn.ann, dict(snn.info, chip="truenorth", scheme=scheme,
                                                                    levels=levels))
    return TrueNorthProgram(program_snn, pops, mapping, depth, clipped, _deviations(snn, mapping, clipped, capped, scheme,
                                                                                          levels),
                            tick_hz, voltage)


def float_proxy(snn: SNN, options: Mapping[str, Any]) -> SNN:
    """The float SNN with the weights TrueNorth's cores hold (``Chip.float_proxy``): each layer with the pools
    before it folded in (``mapping.layers``), its weights quantised under the ``scheme`` and ``levels`` options,
    its bias and neurons the converted SNN's; bias calibration on it (``neuro.calibrate``) corrects the per-channel
    shift the weight codes leave. Left out: the split layers' partial neurons, the pipeline's delays, integer V."""
    neurons = [op for op in snn.ops if isinstance(op, Neurons)]
    ops = []
    for layer, n in zip(layers(snn), neurons):
        q = quantise(layer.matrix, options.get("scheme", DEFAULT_SCHEME), options.get("levels", DEFAULT_LEVELS))
        weight = q.weights.reshape(layer.weight.shape)
        if len(layer.in_shape) == 3 and weight.ndim == 2:
            ops.append(graph.Flatten())
        ops += [Synapses(graph.Dense(weight, layer.bias) if weight.ndim == 2 else
                         graph.Conv2d(weight, layer.bias, layer.stride, layer.padding)), n]
    return SNN(snn.input_shape, ops, snn.readout, snn.ann, snn.info)


def _deviations(snn: SNN, mapping: NetworkMap, clipped: int, capped: int, scheme: str, levels: int) -> list[str]:
    """One line per way the program differs from the converted SNN, for the results and the report."""
    out = []
    if snn.readout != "spikes":
        out.append(f"{snn.readout} readout replaced by spiking output neurons (class = most spikes): TrueNorth "
                   "sends only spikes off chip")
    if clipped:
        out.append(f"{clipped} biases clipped to the signed 9-bit leak")
    if capped:
        out.append(f"{capped} channels' initial V capped: the leak of the ticks before their first input spike is "
                   "not all taken out (a spike before any input, or V beyond -beta, otherwise)")
    for m in mapping.layers:
        out.append(f"{m.name}: weights quantised ({scheme}{f' {levels}' if scheme == 'multilevel' else ''}; "
                   f"relative error "
                   f"{m.quantisation_error:.2g})" + (f", fan-in split over {m.pieces} cores and merged"
                                                     if m.pieces > 1 else ""))
    return out


def chip_limits() -> dict:
    """Key limits of a TrueNorth chip (MER14 [sec]), as listed by `neuro chips`."""
    return {"cores per chip": CHIP_CORES, "axons per core": CORE_AXONS, "neurons per core": CORE_NEURONS,
            "axon types": AXON_TYPES, "weight bits": 9, "membrane bits": V_BITS,
            "weight schemes": f"trinary, multilevel 2-4 (default {DEFAULT_SCHEME} {DEFAULT_LEVELS})"}
