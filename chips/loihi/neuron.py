"""Intel Loihi 1: CUBA LIF cores, bit-exact to Lava's fixed-point models, on the engine's seam.

Per step, for each population fed by one synapse op (Lava ``PyDenseModelBitAcc`` + ``PyLifModelBitAcc``,
lava-nc 0.10; docs/references.md section 2, "Lava bit-accurate semantics"):

    a[t]  = int32((W s[t-1]) << weight_exp)             one step of synaptic latency; >> if weight_exp < 0
    u     = wrap24(trunc0(u (4096 - du - 1) / 4096) + int32(a[t] << 6))
    v     = clip(trunc0(v (4096 - dv) / 4096) + u + (bias_mant << bias_exp), -(2^23 - 1), 2^23 - 1)
    spike = v > vth << 6;  v = 0 where it spiked        (u is not reset; no refractory period)

trunc0 rounds toward zero (Lava: sign(x) (|x| >> 12)); wrap24 subtracts 2^24 once above 2^23 and adds it
once at or below -2^23. W holds the weights after Lava's clipping and truncation to ``num_weight_bits``.

The engine propagates spikes through W in float32, exact for integer sums below 2^24 (float32 has a
24-bit significand, so every integer of magnitude up to 2^24 is representable; docs/conversion.md); this
module keeps the weights as integers in float32, checks that bound, and runs the integer neuron dynamics
in its own numba kernel. ``simulate_chain`` is the conformance entry point (a Lava chain on the engine);
``compile_snn`` quantises a converted SNN into Loihi layers; ``map_layers`` puts them on cores and chips and
``cost`` estimates time and energy per inference. docs/chips/loihi.md has the details.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from chips.lava_dense import (FLOAT32_EXACT, NUM_WEIGHT_BITS_MAX, NUM_WEIGHT_BITS_MIN, WEIGHT_BITS,  # noqa: F401
                              WEIGHT_MAX, WEIGHT_MIN, quantize_weights, sign_mode)  # re-exported by chips.loihi
from chips.lava_dense import with_weights, wrap32 as _wrap32
from chips.lava_dense import integer as _as_scalar, integers as _as_int, per_neuron as _per_neuron
from neuro import graph
from neuro.encode import Playback
from neuro.errors import NeuroError
from neuro.jit import njit
from neuro.sim import Backend, Engine, NeuronModel
from neuro.snn import SNN, Neurons, Synapses

# --- constants (docs/references.md section 2; Lava = lava-nc 0.10 lava/proc/lif/models.py, dense/models.py,
# lava/utils/weightutils.py) -----------------------------------------------------------------------------
DECAY_SHIFT = 12                     # du, dv are 12-bit: decays are x (4096 - d) >> 12 (Lava decay_shift)
DECAY_UNITY = 1 << DECAY_SHIFT       # 4096 (Lava decay_unity)
DS_OFFSET = 1                        # 1-bit register added to du: current decay 4096 - (du + 1) (Lava ds_offset)
DM_OFFSET = 0                        # the same register for dv, 0 on Loihi 1 (Lava dm_offset)
DECAY_MAX = DECAY_UNITY - 1          # du, dv: unsigned 12-bit, 0..4095 (Lava PyLifModelBitAcc docstring)
UV_BITS = 24                         # u, v are 24-bit signed (Lava uv_bitwidth; docs/references.md "state")
UV_HALF = 1 << (UV_BITS - 1)         # 2^23: u wraps beyond it, v saturates at +-(2^23 - 1) (Lava max_uv_val)
ACT_SHIFT = 6                        # synaptic input MSB-aligned by << 6 (Lava act_shift)
VTH_SHIFT = 6                        # threshold used as vth << 6 (Lava vth_shift)
VTH_MAX = (1 << 17) - 1              # vth: unsigned 17-bit (Lava PyLifModelBitAcc; docs/references.md "state")
BIAS_MANT_BITS = 13                  # bias mantissa: signed 13-bit, -4096..4095 (Lava PyLifModelBitAcc docstring)
BIAS_EXP_MAX = 7                     # bias exponent: 3-bit unsigned on the chip, 0..7 (Lava docstring)
BIAS_EXP_MIN = -BIAS_MANT_BITS       # Lava's scale_bias shifts right for a negative exponent; below -13 a
#                                      13-bit mantissa is entirely shifted out, so lower exponents add nothing
WEIGHT_EXP_MIN, WEIGHT_EXP_MAX = -8, 7   # weight exponent range (docs/references.md "weights": nengo-loihi, Lava)
# weights: Lava's Dense format, 8 bits + sign truncated to num_weight_bits (chips.lava_dense)


# --- parameter checks and the weight format: chips.lava_dense ---------------------------------------------

def _check_exact_sums(name: str, w: np.ndarray) -> None:
    """Every output's largest possible input sum must stay below 2^24, where float32 is exact."""
    worst = np.abs(w).reshape(len(w), -1).sum(axis=1).max(initial=0)
    if worst >= FLOAT32_EXACT:
        raise NeuroError(f"{name}: a neuron's summed |weights| reach {worst} >= 2^24, beyond the exact integer "
                         "range of the engine's float32 synapses: split the layer or use smaller weights")


# --- one compiled layer ----------------------------------------------------------------------------------

@dataclass
class LoihiLayer:
    """A synapse op (graph.Dense or graph.Conv2d holding integer weights) feeding one CUBA LIF population.

    ``weights`` are the synapse's weights as the chip holds them (Lava's clipping and truncation, done on
    construction); ``bias_mant``, ``bias_exp`` and ``v_init`` (v at step 0, Lava LIF's ``v``) take one value or
    one per neuron (per channel for a conv).
    """

    synapse: object
    num_weight_bits: int = 8
    weight_exp: int = 0
    du: int = 0
    dv: int = 0
    vth: int = 10
    bias_mant: object = 0
    bias_exp: object = 0
    v_init: object = 0
    name: str = "layer"

    def __post_init__(self):
        n = self.name
        if not isinstance(self.synapse, (graph.Dense, graph.Conv2d)):
            raise NeuroError(f"{n}: a Loihi layer needs a Dense or Conv2d synapse op, got "
                             f"{type(self.synapse).__name__}")
        self.num_weight_bits = _as_scalar(f"{n}: num_weight_bits", self.num_weight_bits, NUM_WEIGHT_BITS_MIN,
                                          NUM_WEIGHT_BITS_MAX, f"an integer in [{NUM_WEIGHT_BITS_MIN}, "
                                          f"{NUM_WEIGHT_BITS_MAX}]")
        self.weight_exp = _as_scalar(f"{n}: weight_exp", self.weight_exp, WEIGHT_EXP_MIN, WEIGHT_EXP_MAX,
                                     f"an integer in [{WEIGHT_EXP_MIN}, {WEIGHT_EXP_MAX}]")
        self.du = _as_scalar(f"{n}: du", self.du, 0, DECAY_MAX, f"a 12-bit decay in [0, {DECAY_MAX}]")
        self.dv = _as_scalar(f"{n}: dv", self.dv, 0, DECAY_MAX, f"a 12-bit decay in [0, {DECAY_MAX}]")
        self.vth = _as_scalar(f"{n}: vth", self.vth, 0, VTH_MAX, f"a 17-bit threshold in [0, {VTH_MAX}]")
        size = self.synapse.weight.shape[0]
        self.v_init = _per_neuron(f"{n}: v_init", self.v_init, size, -UV_HALF + 1, UV_HALF - 1,
                                  f"24-bit voltages in [{-UV_HALF + 1}, {UV_HALF - 1}]")
        self.weights = quantize_weights(self.synapse.weight, self.num_weight_bits, f"{n}: weights")
        _check_exact_sums(n, self.weights)
        half = 1 << (BIAS_MANT_BITS - 1)
        self.bias_mant = _per_neuron(f"{n}: bias_mant", self.bias_mant, size, -half, half - 1,
                                     f"13-bit signed mantissas in [{-half}, {half - 1}]")
        self.bias_exp = _per_neuron(f"{n}: bias_exp", self.bias_exp, size, BIAS_EXP_MIN, BIAS_EXP_MAX,
                                    f"exponents in [{BIAS_EXP_MIN}, {BIAS_EXP_MAX}]")

    def bias(self) -> np.ndarray:
        """bias_mant << bias_exp per output channel, int32 (Lava scale_bias: >> for a negative exponent)."""
        m, e = self.bias_mant, self.bias_exp
        return np.where(e >= 0, m << np.maximum(e, 0), m >> np.maximum(-e, 0)).astype(np.int32)


# --- the neuron kernel -----------------------------------------------------------------------------------

@njit(cache=True, inline="always")
def _decay(x, keep):
    """x keep / 4096 rounded toward zero, in int64 (Lava: sign(p) (|p| >> 12))."""
    p = np.int64(x) * keep
    return -((-p) >> DECAY_SHIFT) if p < 0 else p >> DECAY_SHIFT


@njit(cache=True, inline="always")
def _dendrite(total, weight_exp):
    """The synaptic sum shifted by the weight exponent, as the int32 that Lava's Dense port carries."""
    s = np.int64(total)
    return _wrap32(s << weight_exp if weight_exp > 0 else s >> -weight_exp)


@njit(nogil=True, cache=True)
def lif_step(current, a, u, v, spikes, bias, du, dv, vth_scaled, weight_exp):
    """One Loihi step for (batch, n) neurons; ``a`` holds last step's synaptic input and takes this one's.

    ``current`` is W s (float32, exact integers); spikes get 0/1; returns the number of spikes.
    """
    keep_u = DECAY_UNITY - (du + DS_OFFSET)
    keep_v = DECAY_UNITY - (dv + DM_OFFSET)
    total = 0
    for b in range(v.shape[0]):
        for i in range(v.shape[1]):
            act = a[b, i]
            a[b, i] = _dendrite(current[b, i], weight_exp)
            uu = _wrap32(_decay(u[b, i], keep_u) + _wrap32(np.int64(act) << ACT_SHIFT))
            if uu > UV_HALF:
                uu -= 2 * UV_HALF
            elif uu <= -UV_HALF:
                uu += 2 * UV_HALF
            u[b, i] = uu
            vv = _wrap32(_decay(v[b, i], keep_v) + uu + bias[i])
            vv = min(max(vv, -UV_HALF + 1), UV_HALF - 1)
            if vv > vth_scaled:
                spikes[b, i] = 1.0
                vv = 0
                total += 1
            else:
                spikes[b, i] = 0.0
            v[b, i] = vv
    return total


class LoihiNeurons(NeuronModel):
    """The integer state (u, v, buffered synaptic input a) of one layer's neurons, int32."""

    def __init__(self, layer: LoihiLayer, n: int):
        self.layer = layer
        # conv outputs are channel-last (y, x, channel): the bias and initial v repeat over positions
        self.bias = np.tile(layer.bias(), n // len(layer.bias_mant))
        self.v_init = np.tile(layer.v_init, n // len(layer.v_init)).astype(np.int32)
        self.vth_scaled = np.int64(layer.vth) << VTH_SHIFT

    def reset(self, batch, n):
        self.u = np.zeros((batch, n), np.int32)
        self.v = np.tile(self.v_init, (batch, 1))
        self.a = np.zeros((batch, n), np.int32)

    def step(self, current, spikes):
        layer = self.layer
        return lif_step(current, self.a, self.u, self.v, spikes, self.bias, layer.du, layer.dv,
                        self.vth_scaled, layer.weight_exp)

    def potential(self):
        return self.v / np.float32(max(self.vth_scaled, 1))


class LoihiBackend(Backend):
    """Runs ``LoihiLayer``s on the engine: their integer weights as synapses, ``LoihiNeurons`` as neurons."""

    name = "loihi"

    def __init__(self, layers: list[LoihiLayer], snn: SNN):
        self._by_synapse = {id(layer.synapse): layer for layer in layers}
        neurons = [op for op in snn.ops if isinstance(op, Neurons)]
        self._by_neurons = {id(op): layer for op, layer in zip(neurons, layers)}
        self._sizes = {id(op): int(np.prod(s)) for op, s in
                       zip(snn.ops, snn.shapes()[1:]) if isinstance(op, Neurons)}

    def synapse_op(self, op):
        """The op with the layer's clipped and truncated integer weights (in float32) and no bias."""
        if id(op) not in self._by_synapse:
            raise NeuroError(f"{type(op).__name__} op is not part of this Loihi program: compile the SNN for Loihi")
        return with_weights(op, self._by_synapse[id(op)].weights)

    def neuron_model(self, op: Neurons) -> NeuronModel:
        return LoihiNeurons(self._by_neurons[id(op)], self._sizes[id(op)])


def program_snn(layers: list[LoihiLayer], input_shape, readout: str = "spikes") -> SNN:
    """The SNN the engine runs for a stack of Loihi layers (flattening between conv and dense); ``readout``
    "potential": the class is the output layer's largest v (a voltage probe), "spikes": its most spikes."""
    ops, shape = [], tuple(input_shape)
    for layer in layers:
        if isinstance(layer.synapse, graph.Dense) and len(shape) > 1:
            ops.append(graph.Flatten())
            shape = (int(np.prod(shape)),)
        ops += [Synapses(layer.synapse), Neurons(float(max(layer.vth, 1) << VTH_SHIFT), reset="zero")]
        shape = layer.synapse.output_shape(shape)
    return SNN(input_shape, ops, readout=readout)


# --- conformance entry point -------------------------------------------------------------------------------

LAYER_KEYS = ("weights", "num_weight_bits", "weight_exp", "du", "dv", "vth", "bias_mant", "bias_exp")


def chain_layers(layers: list[dict], n_in: int) -> list[LoihiLayer]:
    """``LoihiLayer``s of dense synapses from the dicts of ``simulate_chain``, checked to chain up."""
    if not layers:
        raise NeuroError("simulate_chain needs at least one layer")
    out, size = [], n_in
    for i, spec in enumerate(layers):
        missing = [k for k in LAYER_KEYS if k not in spec]
        if missing:
            raise NeuroError(f"layer {i} lacks {', '.join(missing)}: each layer needs {', '.join(LAYER_KEYS)}")
        w = np.asarray(spec["weights"])
        if w.ndim != 2:
            raise NeuroError(f"layer {i}: weights must be (n_out, n_in), got shape {w.shape}")
        if w.shape[1] != size:
            source = "the source has" if i == 0 else f"layer {i - 1} has"
            raise NeuroError(f"layer {i}: weights take {w.shape[1]} inputs but {source} {size}: give "
                             f"({w.shape[0]}, {size}) weights")
        params = {k: spec[k] for k in LAYER_KEYS if k != "weights"}
        out.append(LoihiLayer(graph.Dense(w), name=f"layer {i}", **params))
        size = w.shape[0]
    return out


def simulate_chain(source, layers: list[dict], time_batch: int | None = None) -> list[tuple[np.ndarray, np.ndarray]]:
    """Lava's RingBuffer -> Dense -> LIF -> Dense -> LIF ... (``Loihi1SimCfg(select_tag="fixed_pt")``), run
    on the engine.

    ``source``: (n_in, T) ints, non-zero = spike, column t played at step t. ``layers``: dicts with
    ``LAYER_KEYS``. Returns per layer (spikes (n, T) bool, v (n, T) int64 after the step's reset).
    ``time_batch``: the engine's tile length (``neuro.sim.Engine.run``); the bits do not depend on it.
    """
    src = _as_int("source", source, np.iinfo(np.int32).min, np.iinfo(np.int32).max, "an int array (n_in, T)")
    if src.ndim != 2 or src.shape[1] < 1:
        raise NeuroError(f"source must be (n_in, T) with T >= 1, got shape {src.shape}")
    chain = chain_layers(layers, src.shape[0])
    snn = program_snn(chain, (src.shape[0],))
    result = Engine(snn, LoihiBackend(chain, snn)).run(
        np.zeros((1, src.shape[0]), np.float32), np.zeros(1, np.int64), src.shape[1],
        encoding=Playback(src.T[None]), record_steps=True, progress=False, time_batch=time_batch)
    return [(tr["spikes"][0].T.astype(bool), tr["v"][0].T.astype(np.int64)) for tr in result.traces]


