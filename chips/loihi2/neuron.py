"""Intel Loihi 2 sigma-delta neurons with graded spikes, bit-exact to Lava's fixed-point models, on the engine's seam.

Per step, for each population fed by one synapse op (Lava ``PyDenseModelBitAcc`` with ``num_message_bits > 0`` +
``PySigmaDeltaModelFixed``, lava-nc 0.10, lava/proc/dense/models.py and lava/proc/sdn/models.py)::

    a[t]     = int32((W s[t-1]) << weight_exp)           one step of synaptic latency; >> if weight_exp < 0
    sigma    = sigma + a[t]                               sigma: the input integrated (the ANN's pre-activation)
    act      = relu(sigma + bias << (spike_exp + state_exp))   (act_mode UNIT: no relu)
    delta    = act - act_prev + residue
    s        = delta where |delta| >= vth << (spike_exp + state_exp), else 0
               (cum_error: error += delta; s = delta where |error| >= vth'; error = 0 where s != 0)
    residue  = delta - s;  act_prev = act
    out      = s >> state_exp                             the graded spike: an integer payload, 0 = no message

Every operation is Lava's int32 arithmetic (two's-complement wrap-around; Lava declares 24-bit precisions but does
not enforce them, so neither do we). W s is a dot product of integer weights and graded payloads: the engine
propagates it in float32, exact while every partial sum stays below 2^24 (float32's 24-bit significand), so each
population checks, every step, that its largest payload times the next synapses' largest summed |weights| stays
below 2^24 (``payload_limit``), and stops with a one-line error where it would not.

The program's first population may be an input encoder (``delta`` kind: Lava ``PyDeltaModelFixed``): no sigma, no
bias, no synaptic delay; act = round(input) << (spike_exp + state_exp): the host sends each frame as the change
from the last one (lava-dl's PilotNet SDNN: "the data is encoded efficiently as the difference between
individual frames", lava-dl tutorials/lava/lib/dl/netx/pilotnet_sdnn).

``simulate_chain`` is the conformance entry point (a Lava chain RingBuffer -> Dense -> SigmaDelta -> ... on the
engine); docs/chips/loihi2.md has the details.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from chips.api import Backend, NeuronModel
from chips.lava_dense import FLOAT32_EXACT, NUM_WEIGHT_BITS_MAX, NUM_WEIGHT_BITS_MIN, quantize_weights
from chips.lava_dense import with_weights, wrap32 as _wrap32
from chips.lava_dense import integer as _scalar, integers as _as_int
from neuro import graph
from neuro.encode import Playback
from neuro.errors import NeuroError
from neuro.jit import njit
from neuro.sim import Engine
from neuro.snn import SNN, Neurons, Synapses

# --- constants (lava-nc 0.10: lava/proc/dense/models.py, process.py; lava/utils/weightutils.py; lava/proc/sdn/) ------
# weights: Lava's Dense format, 8 bits + sign truncated to num_weight_bits (chips.lava_dense)
WEIGHT_EXP_MIN, WEIGHT_EXP_MAX = -8, 7            # Dense docstring: w_scale = 8 - num_weight_bits + weight_exp
#                                                   (+ mixed); the Loihi 1 range, kept for Loihi 2 [unsure]
MESSAGE_BITS_MAX = 24                # graded payload width: Lava SigmaDelta s_out is int32 "precision=24"; the
#                                      Loihi 2 brief (Intel 2021) says graded spikes carry "up to 32-bit" payloads
#                                      [unsure]; we allow num_message_bits 1..24 (0 = binary spikes: not sigma-delta)
EXP_MAX = 7                          # spike_exp, state_exp: "precision=3" in PySigmaDeltaModelFixed: 0..7
STATE_BITS = 24                      # sigma, act, residue, error, vth: "precision=24" (int32 held, not enforced)
BIAS_BITS = 16                       # bias: "precision=16" (int32 held, not enforced)
INT32 = np.iinfo(np.int32)
ACT_MODES = {0: "unit", 1: "relu", "unit": "unit", "relu": "relu"}   # Lava ActivationMode: UNIT = 0, RELU = 1
KINDS = ("sigma_delta", "delta")
STATES = ("sigma", "act", "residue", "error")   # the Vars Lava's SigmaDelta exposes, besides its parameters


# --- parameter checks and the weight format: chips.lava_dense ------------------------------------------------------

def max_row_sum(w: np.ndarray) -> int:
    """The largest summed |weights| of one output: with payloads up to P, every partial sum is below this x P."""
    return int(np.abs(np.asarray(w, np.int64)).reshape(len(w), -1).sum(axis=1).max(initial=0))


# --- one compiled layer ----------------------------------------------------------------------------------------------

@dataclass
class SigmaDeltaLayer:
    """A synapse op (graph.Dense or graph.Conv2d holding integer weights) feeding one population of sigma-delta
    neurons; parameters under Lava's names (Dense: num_weight_bits, weight_exp, num_message_bits; SigmaDelta: vth,
    bias, act_mode, cum_error, spike_exp, state_exp). ``bias`` takes one value or one per output channel.
    ``kind`` "delta": Lava's Delta encoder (no sigma, bias or synaptic delay; the input rounded to integers), the
    program's input population. ``state``: which Var ``v`` shows (sigma, act, residue or error)."""

    synapse: object
    vth: int = 0
    bias: object = 0
    act_mode: object = "relu"
    cum_error: bool = False
    spike_exp: int = 0
    state_exp: int = 0
    num_weight_bits: int = 8
    weight_exp: int = 0
    num_message_bits: int = MESSAGE_BITS_MAX
    kind: str = "sigma_delta"
    state: str = "sigma"
    name: str = "layer"

    def __post_init__(self):
        n = self.name
        if not isinstance(self.synapse, (graph.Dense, graph.Conv2d)):
            raise NeuroError(f"{n}: a Loihi 2 layer needs a Dense or Conv2d synapse op, got "
                             f"{type(self.synapse).__name__}")
        if self.kind not in KINDS:
            raise NeuroError(f"{n}: kind {self.kind!r} is unknown: use one of {', '.join(KINDS)}")
        if self.state not in STATES:
            raise NeuroError(f"{n}: state {self.state!r} is unknown: use one of {', '.join(STATES)}")
        if self.act_mode not in ACT_MODES or isinstance(self.act_mode, bool):
            raise NeuroError(f"{n}: act_mode {self.act_mode!r} is unknown: use 'relu' (Lava RELU, 1) or 'unit' "
                             "(UNIT, 0)")
        self.act_mode = ACT_MODES[int(self.act_mode) if not isinstance(self.act_mode, str) else self.act_mode]
        if not isinstance(self.cum_error, (bool, np.bool_)) and self.cum_error not in (0, 1):
            raise NeuroError(f"{n}: cum_error must be true or false, got {self.cum_error!r}")
        self.cum_error = bool(self.cum_error)
        self.num_weight_bits = _scalar(f"{n}: num_weight_bits", self.num_weight_bits, NUM_WEIGHT_BITS_MIN,
                                       NUM_WEIGHT_BITS_MAX, f"an integer in [{NUM_WEIGHT_BITS_MIN}, "
                                       f"{NUM_WEIGHT_BITS_MAX}]")
        self.weight_exp = _scalar(f"{n}: weight_exp", self.weight_exp, WEIGHT_EXP_MIN, WEIGHT_EXP_MAX,
                                  f"an integer in [{WEIGHT_EXP_MIN}, {WEIGHT_EXP_MAX}]")
        self.num_message_bits = _scalar(f"{n}: num_message_bits", self.num_message_bits, 1, MESSAGE_BITS_MAX,
                                        f"1..{MESSAGE_BITS_MAX}: sigma-delta payloads are graded (Lava's 0 "
                                        "means binary spikes)")
        self.spike_exp = _scalar(f"{n}: spike_exp", self.spike_exp, 0, EXP_MAX, f"a 3-bit exponent in [0, {EXP_MAX}]")
        self.state_exp = _scalar(f"{n}: state_exp", self.state_exp, 0, EXP_MAX, f"a 3-bit exponent in [0, {EXP_MAX}]")
        shift = self.spike_exp + self.state_exp
        top = (1 << (STATE_BITS - 1)) - 1
        self.vth = _scalar(f"{n}: vth", self.vth, 0, top >> shift,
                           f"a threshold in [0, {top >> shift}] (vth << (spike_exp + state_exp) is 24-bit)")
        out = self.synapse.weight.shape[0]
        b = _as_int(f"{n}: bias", self.bias, -(1 << (BIAS_BITS - 1)), (1 << (BIAS_BITS - 1)) - 1,
                    f"16-bit signed integers in [{-(1 << (BIAS_BITS - 1))}, {(1 << (BIAS_BITS - 1)) - 1}]")
        if b.ndim > 1 or b.size not in (1, out):
            raise NeuroError(f"{n}: bias has shape {b.shape}: give one value or {out} (one per output channel)")
        self.bias = np.broadcast_to(b.reshape(-1), (out,)).copy()
        self.weights = quantize_weights(self.synapse.weight, self.num_weight_bits, f"{n}: weights")


# --- the neuron kernel -----------------------------------------------------------------------------------------------

@njit(nogil=True, cache=True)
def sd_step(current, a, sigma, act, residue, error, out, bias, vth, weight_exp, shift, state_exp,
            relu, cum_error, accumulate, delay):
    """One Loihi 2 step for (batch, n) neurons. ``current`` holds W s (float32, exact integers; the input frame for
    a delta encoder); ``a`` holds last step's dendritic input and takes this one's (``delay``). Writes the graded
    payloads into ``out``; returns (messages sent, largest |payload|)."""
    sent, peak = 0, 0
    for b in range(out.shape[0]):
        for i in range(out.shape[1]):
            if accumulate:
                c = np.int64(current[b, i])
                d = _wrap32(c << weight_exp if weight_exp > 0 else c >> -weight_exp)
            else:
                d = _wrap32(np.int64(np.floor(current[b, i] + 0.5)) << shift)   # Delta: a_in << (spike + state exp)
            if delay:
                a_in = np.int64(a[b, i])
                a[b, i] = d
            else:
                a_in = d
            if accumulate:
                s = _wrap32(np.int64(sigma[b, i]) + a_in)
                sigma[b, i] = s
                new = _wrap32(s + bias[i])
                if relu and new < 0:
                    new = 0
            else:
                new = a_in
            delta = _wrap32(_wrap32(new - np.int64(act[b, i])) + residue[b, i])
            if cum_error:
                e = _wrap32(np.int64(error[b, i]) + delta)
                msg = delta if abs(e) >= vth else 0
                error[b, i] = 0 if msg != 0 else e
            else:
                msg = delta if abs(delta) >= vth else 0
            residue[b, i] = _wrap32(delta - msg)
            act[b, i] = new
            payload = msg >> state_exp
            out[b, i] = payload
            if payload != 0:
                sent += 1
                peak = max(peak, abs(payload))
    return sent, peak


class SigmaDeltaNeurons(NeuronModel):
    """One layer's integer state, int32 each: sigma, act, residue, error and the buffered dendritic input ``a``;
    ``v`` is the one of them the layer's ``state`` names. Writes graded payloads (``graded = True``)."""

    graded = True

    def __init__(self, layer: SigmaDeltaLayer, n: int, payload_limit: int | None = None, unit: float = 1.0):
        self.layer, self.payload_limit, self.unit = layer, payload_limit, unit
        self.trace = None    # a list: every step's (payloads, v) of the first image (simulate_chain records them)
        shift = layer.spike_exp + layer.state_exp
        self.bias = np.tile(layer.bias << shift, n // len(layer.bias))   # conv outputs channel-last: per position
        self.vth = np.int64(layer.vth) << shift
        self.shift = shift

    def reset(self, batch, n):
        self.sigma, self.act, self.residue, self.error, self.a = (np.zeros((batch, n), np.int32) for _ in range(5))
        self.v = getattr(self, self.layer.state)

    def step(self, current, spikes):
        layer = self.layer
        sd = layer.kind == "sigma_delta"
        sent, peak = sd_step(current, self.a, self.sigma, self.act, self.residue, self.error, spikes, self.bias,
                             self.vth, layer.weight_exp, self.shift, layer.state_exp, layer.act_mode == "relu",
                             layer.cum_error, sd, sd)
        if self.trace is not None:
            self.trace.append((spikes[0].astype(np.int64), self.v[0].astype(np.int64)))
        if self.payload_limit is not None and peak > self.payload_limit:
            raise NeuroError(f"{layer.name}: a graded payload of {peak} times the next synapses' summed |weights| "
                             "reaches 2^24, beyond the engine's exact float32 sums: lower the activation scale "
                             "(act_bits) or the weights")
        return sent

    def potential(self):
        return self.act / np.float32(self.unit)


class Loihi2Backend(Backend):
    """Runs ``SigmaDeltaLayer``s on the engine: their integer weights as synapses, ``SigmaDeltaNeurons`` as neurons
    (each with the payload bound its next synapses allow, and ``units``: act per unit of activation, for
    ``potential()``)."""

    name = "loihi2"

    def __init__(self, layers: list[SigmaDeltaLayer], snn: SNN, units: list[float] | None = None):
        self.layers = layers
        self._by_synapse = {id(layer.synapse): layer for layer in layers}
        neurons = [op for op in snn.ops if isinstance(op, Neurons)]
        if len(neurons) != len(layers):
            raise NeuroError(f"{len(layers)} Loihi 2 layers for {len(neurons)} populations: compile the SNN again")
        sums = [max_row_sum(layer.weights) for layer in layers]
        limits = [(FLOAT32_EXACT - 1) // s if s else None for s in sums[1:]] + [None]
        sizes = {id(op): int(np.prod(s)) for op, s in zip(snn.ops, snn.shapes()[1:]) if isinstance(op, Neurons)}
        units = units or [1.0] * len(layers)
        self._by_neurons = {id(op): (layer, sizes[id(op)], limit, unit)
                            for op, layer, limit, unit in zip(neurons, layers, limits, units)}

    def synapse_op(self, op):
        if id(op) not in self._by_synapse:
            raise NeuroError(f"{type(op).__name__} op is not part of this Loihi 2 program: compile the SNN for Loihi 2")
        return with_weights(op, self._by_synapse[id(op)].weights)

    def neuron_model(self, op: Neurons) -> NeuronModel:
        return SigmaDeltaNeurons(*self._by_neurons[id(op)])


def program_snn(layers: list[SigmaDeltaLayer], input_shape) -> SNN:
    """The SNN the engine runs for a stack of Loihi 2 layers (flattening between conv and dense); its readout sums
    the last layer's graded payloads (the sum of a sigma-delta neuron's messages is its activation)."""
    ops, shape = [], tuple(input_shape)
    for layer in layers:
        if isinstance(layer.synapse, graph.Dense) and len(shape) > 1:
            ops.append(graph.Flatten())
            shape = (int(np.prod(shape)),)
        ops += [Synapses(layer.synapse), Neurons(float(max(layer.vth, 1)), reset="zero")]
        shape = layer.synapse.output_shape(shape)
    return SNN(input_shape, ops, readout="spikes")


# --- conformance entry point -----------------------------------------------------------------------------------------

REQUIRED_KEYS = ("weights", "vth")
OPTIONAL_KEYS = ("num_weight_bits", "weight_exp", "num_message_bits", "bias", "act_mode", "cum_error", "spike_exp",
                 "state_exp")


def chain_layers(layers: list[dict], n_in: int, state: str = "sigma") -> list[SigmaDeltaLayer]:
    """``SigmaDeltaLayer``s of dense synapses from the dicts of ``simulate_chain``, checked to chain up."""
    if not layers:
        raise NeuroError("simulate_chain needs at least one layer")
    out, size = [], n_in
    for i, spec in enumerate(layers):
        missing = [k for k in REQUIRED_KEYS if k not in spec]
        unknown = sorted(set(spec) - set(REQUIRED_KEYS) - set(OPTIONAL_KEYS))
        if missing or unknown:
            raise NeuroError(f"layer {i}: {'lacks ' + ', '.join(missing) if missing else 'has unknown ' + ', '.join(unknown)}"
                             f": give {', '.join(REQUIRED_KEYS)} and optionally {', '.join(OPTIONAL_KEYS)}")
        w = np.asarray(spec["weights"])
        if w.ndim != 2:
            raise NeuroError(f"layer {i}: weights must be (n_out, n_in), got shape {w.shape}")
        if w.shape[1] != size:
            source = "the source has" if i == 0 else f"layer {i - 1} has"
            raise NeuroError(f"layer {i}: weights take {w.shape[1]} inputs but {source} {size}: give "
                             f"({w.shape[0]}, {size}) weights")
        params = {k: spec[k] for k in OPTIONAL_KEYS + ("vth",) if k in spec}
        out.append(SigmaDeltaLayer(graph.Dense(w), name=f"layer {i}", state=state, **params))
        size = w.shape[0]
    return out


def simulate_chain(source, layers: list[dict], state: str = "sigma") -> list[tuple[np.ndarray, np.ndarray]]:
    """Lava's RingBuffer -> Dense -> SigmaDelta -> Dense -> SigmaDelta ... (``Loihi2SimCfg(select_tag="fixed_pt")``),
    run on the engine.

    ``source``: (n_in, T) integers, graded payloads, column t sent at step t. ``layers``: dicts of Lava's Dense and
    SigmaDelta parameters under Lava's names: ``weights`` (n_out, n_in) and ``vth`` required; ``num_weight_bits``
    (8), ``weight_exp`` (0), ``num_message_bits`` (24), ``bias`` (0), ``act_mode`` ("relu" or Lava's 1; "unit"/0),
    ``cum_error`` (False), ``spike_exp`` (0), ``state_exp`` (0). Returns per layer (graded outputs s_out (n, T),
    the Var ``state`` (n, T): sigma, act, residue or error), both int64.
    """
    src = _as_int("source", source, INT32.min, INT32.max, "an int array (n_in, T)")
    if src.ndim != 2 or src.shape[1] < 1:
        raise NeuroError(f"source must be (n_in, T) with T >= 1, got shape {src.shape}")
    chain = chain_layers(layers, src.shape[0], state)
    first = max_row_sum(chain[0].weights)
    if first and np.abs(src).max(initial=0) * first >= FLOAT32_EXACT:
        raise NeuroError("the source's largest payload times layer 0's summed |weights| reaches 2^24, beyond the "
                         "engine's exact float32 sums: give smaller payloads or weights")
    snn = program_snn(chain, (src.shape[0],))
    engine = Engine(snn, _Recording(chain, snn), threads=1)
    engine.run(np.zeros((1, src.shape[0]), np.float32), np.zeros(1, np.int64), src.shape[1],
               encoding=Playback(src.T[None], graded=True), progress=False)
    models = [stage.model for stage in engine.stages if isinstance(getattr(stage, "model", None), SigmaDeltaNeurons)]
    return [tuple(np.stack(x, axis=1) for x in zip(*m.trace)) for m in models]


class _Recording(Loihi2Backend):
    """Hands out neuron models that keep every step's payloads and state (the engine records 0/1 spikes)."""

    def neuron_model(self, op):
        model = super().neuron_model(op)
        model.trace = []
        return model
