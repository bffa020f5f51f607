"""Intel Loihi 1: CUBA LIF cores, bit-exact to Lava's fixed-point models, on the engine's seam.

Per step, for each population fed by one synapse op (Lava ``PyDenseModelBitAcc`` + ``PyLifModelBitAcc``,
lava-nc 0.10; REFERENCES.md section 2, "Lava bit-accurate semantics"):

    a[t]  = int32((W s[t-1]) << weight_exp)             one step of synaptic latency; >> if weight_exp < 0
    u     = wrap24(trunc0(u (4096 - du - 1) / 4096) + int32(a[t] << 6))
    v     = clip(trunc0(v (4096 - dv) / 4096) + u + (bias_mant << bias_exp), -(2^23 - 1), 2^23 - 1)
    spike = v > vth << 6;  v = 0 where it spiked        (u is not reset; no refractory period)

trunc0 rounds toward zero (Lava: sign(x) (|x| >> 12)); wrap24 subtracts 2^24 once above 2^23 and adds it
once at or below -2^23. W holds the weights after Lava's clipping and truncation to ``num_weight_bits``.

The engine propagates spikes through W in float32, exact for integer sums below 2^24 (DESIGN.md); this
module keeps the weights as integers in float32, checks that bound, and runs the integer neuron dynamics
in its own numba kernel. ``simulate_chain`` is the conformance entry point (a Lava chain on the engine);
``compile_snn`` quantises a converted SNN into Loihi layers; ``map_layers`` puts them on cores and chips and
``cost`` estimates time and energy per inference. docs/chips/loihi.md has the details.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numba import njit

from neuro import graph
from neuro.encode import Playback
from neuro.errors import NeuroError
from neuro.sim import Backend, Engine, NeuronModel
from neuro.snn import SNN, Neurons, Synapses

# --- constants (REFERENCES.md section 2; Lava = lava-nc 0.10 lava/proc/lif/models.py, dense/models.py,
# lava/utils/weightutils.py) -----------------------------------------------------------------------------
DECAY_SHIFT = 12                     # du, dv are 12-bit: decays are x (4096 - d) >> 12 (Lava decay_shift)
DECAY_UNITY = 1 << DECAY_SHIFT       # 4096 (Lava decay_unity)
DS_OFFSET = 1                        # 1-bit register added to du: current decay 4096 - (du + 1) (Lava ds_offset)
DM_OFFSET = 0                        # the same register for dv, 0 on Loihi 1 (Lava dm_offset)
DECAY_MAX = DECAY_UNITY - 1          # du, dv: unsigned 12-bit, 0..4095 (Lava PyLifModelBitAcc docstring)
UV_BITS = 24                         # u, v are 24-bit signed (Lava uv_bitwidth; REFERENCES "state")
UV_HALF = 1 << (UV_BITS - 1)         # 2^23: u wraps beyond it, v saturates at +-(2^23 - 1) (Lava max_uv_val)
ACT_SHIFT = 6                        # synaptic input MSB-aligned by << 6 (Lava act_shift)
VTH_SHIFT = 6                        # threshold used as vth << 6 (Lava vth_shift)
VTH_MAX = (1 << 17) - 1              # vth: unsigned 17-bit (Lava PyLifModelBitAcc docstring; REFERENCES "state")
BIAS_MANT_BITS = 13                  # bias mantissa: signed 13-bit, -4096..4095 (Lava PyLifModelBitAcc docstring)
BIAS_EXP_MAX = 7                     # bias exponent: 3-bit unsigned on the chip, 0..7 (Lava docstring)
BIAS_EXP_MIN = -BIAS_MANT_BITS       # Lava's scale_bias shifts right for a negative exponent; below -13 a
#                                      13-bit mantissa is entirely shifted out, so lower exponents add nothing
WEIGHT_BITS = 8                      # weights clipped to 8 bits + sign: mixed [-256, 255], excitatory
#                                      [0, 255], inhibitory [-255, 0] (Lava clip_weights(num_bits=8))
WEIGHT_MIN, WEIGHT_MAX = -(1 << WEIGHT_BITS), (1 << WEIGHT_BITS) - 1
WEIGHT_EXP_MIN, WEIGHT_EXP_MAX = -8, 7   # weight exponent range (REFERENCES "weights": nengo-loihi, Lava)
NUM_WEIGHT_BITS_MIN, NUM_WEIGHT_BITS_MAX = 1, 8  # Lava truncate_weights(max_num_weight_bits=8)
FLOAT32_EXACT = 1 << 24              # integer sums below 2^24 are exact in the engine's float32 (DESIGN.md)


# --- parameter checks ------------------------------------------------------------------------------------

def _as_int(name: str, value, lo: int, hi: int, what: str) -> np.ndarray:
    """``value`` as an int64 array whose entries are integers in [lo, hi]; otherwise a one-line NeuroError."""
    arr = np.asarray(value)
    if arr.dtype == bool:
        arr = arr.astype(np.int64)
    if not np.issubdtype(arr.dtype, np.number) or not np.all(np.isfinite(arr)):
        raise NeuroError(f"{name} must be integers, got {value!r:.60}: give {what}")
    if np.any(arr != np.round(arr)):
        raise NeuroError(f"{name} must be integers, got non-integer values: give {what}")
    if arr.size and (arr.min() < lo or arr.max() > hi):
        bad = arr.min() if arr.min() < lo else arr.max()
        raise NeuroError(f"{name} = {int(bad)} is out of range: give {what}")
    return arr.astype(np.int64)


def _as_scalar(name: str, value, lo: int, hi: int, what: str) -> int:
    arr = _as_int(name, value, lo, hi, what)
    if arr.size != 1:
        raise NeuroError(f"{name} must be one integer, got shape {arr.shape}: give {what}")
    return int(arr.reshape(()))


def _per_neuron(name: str, value, n: int, lo: int, hi: int, what: str) -> np.ndarray:
    arr = _as_int(name, value, lo, hi, what)
    if arr.ndim > 1 or arr.size not in (1, n):
        raise NeuroError(f"{name} has shape {arr.shape}: give one value or {n} values (one per neuron)")
    return np.broadcast_to(arr.reshape(-1), (n,)).copy()


# --- weight format (Lava dense/models.py + utils/weightutils.py) ------------------------------------------

def sign_mode(weights: np.ndarray) -> str:
    """Lava's determine_sign_mode: all >= 0 excitatory, else all <= 0 inhibitory, else mixed."""
    if weights.min(initial=0) >= 0:
        return "excitatory"
    return "inhibitory" if weights.max(initial=0) <= 0 else "mixed"


def quantize_weights(weights, num_weight_bits: int, name: str = "weights") -> np.ndarray:
    """Integer weights as the chip holds them: Lava's clip to 8 bits (+ sign) then truncation to
    ``num_weight_bits``: (w >> t) << t with t = 8 - num_weight_bits (+ 1 for mixed sign); inhibitory
    matrices are negated around both steps, so they truncate toward zero."""
    w = _as_int(name, weights, WEIGHT_MIN, WEIGHT_MAX,
                f"integers in [{WEIGHT_MIN}, {WEIGHT_MAX}] (8 bits + sign; scale them with weight_exp)")
    nwb = _as_scalar("num_weight_bits", num_weight_bits, NUM_WEIGHT_BITS_MIN, NUM_WEIGHT_BITS_MAX,
                     f"an integer in [{NUM_WEIGHT_BITS_MIN}, {NUM_WEIGHT_BITS_MAX}]")
    mode = sign_mode(w)
    sign = -1 if mode == "inhibitory" else 1
    mixed = int(mode == "mixed")
    w = np.clip(sign * w, WEIGHT_MIN * mixed, WEIGHT_MAX)
    t = WEIGHT_BITS - nwb + mixed
    return sign * ((w >> t) << t)


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
    construction); ``bias_mant`` and ``bias_exp`` take one value or one per neuron (per channel for a conv);
    ``v_init`` is v at step 0 (Lava LIF's ``v``).
    """

    synapse: object
    num_weight_bits: int = 8
    weight_exp: int = 0
    du: int = 0
    dv: int = 0
    vth: int = 10
    bias_mant: object = 0
    bias_exp: object = 0
    v_init: int = 0
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
        self.v_init = _as_scalar(f"{n}: v_init", self.v_init, -UV_HALF + 1, UV_HALF - 1,
                                 f"a 24-bit voltage in [{-UV_HALF + 1}, {UV_HALF - 1}]")
        size = self.synapse.weight.shape[0]
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


def _with_weights(op, w: np.ndarray):
    """A copy of ``op`` holding the integer weights ``w`` (in float32) and no bias (the neurons hold it)."""
    if isinstance(op, graph.Dense):
        return graph.Dense(w.astype(np.float32), None)
    return graph.Conv2d(w.astype(np.float32), None, op.stride, op.padding, op.groups)


# --- the neuron kernel -----------------------------------------------------------------------------------

@njit(cache=True, inline="always")
def _wrap32(x):
    """x (int64) as int32 arithmetic leaves it: two's-complement wrap-around."""
    return ((x + (1 << 31)) & 0xFFFFFFFF) - (1 << 31)


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
        per_channel = layer.bias()
        # conv outputs are channel-last (y, x, channel): the bias repeats over positions
        self.bias = np.tile(per_channel, n // len(per_channel))
        self.vth_scaled = np.int64(layer.vth) << VTH_SHIFT

    def reset(self, batch, n):
        self.u = np.zeros((batch, n), np.int32)
        self.v = np.full((batch, n), self.layer.v_init, np.int32)
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
        return _with_weights(op, self._by_synapse[id(op)].weights)

    def neuron_model(self, op: Neurons) -> NeuronModel:
        return LoihiNeurons(self._by_neurons[id(op)], self._sizes[id(op)])


def program_snn(layers: list[LoihiLayer], input_shape) -> SNN:
    """The SNN the engine runs for a stack of Loihi layers (flattening between conv and dense)."""
    ops, shape = [], tuple(input_shape)
    for layer in layers:
        if isinstance(layer.synapse, graph.Dense) and len(shape) > 1:
            ops.append(graph.Flatten())
            shape = (int(np.prod(shape)),)
        ops += [Synapses(layer.synapse), Neurons(float(max(layer.vth, 1) << VTH_SHIFT), reset="zero")]
        shape = layer.synapse.output_shape(shape)
    return SNN(input_shape, ops, readout="spikes")


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


def simulate_chain(source, layers: list[dict]) -> list[tuple[np.ndarray, np.ndarray]]:
    """Lava's RingBuffer -> Dense -> LIF -> Dense -> LIF ... (``Loihi1SimCfg(select_tag="fixed_pt")``), run
    on the engine.

    ``source``: (n_in, T) ints, non-zero = spike, column t played at step t. ``layers``: dicts with
    ``LAYER_KEYS``. Returns per layer (spikes (n, T) bool, v (n, T) int64 after the step's reset).
    """
    src = _as_int("source", source, np.iinfo(np.int32).min, np.iinfo(np.int32).max, "an int array (n_in, T)")
    if src.ndim != 2 or src.shape[1] < 1:
        raise NeuroError(f"source must be (n_in, T) with T >= 1, got shape {src.shape}")
    chain = chain_layers(layers, src.shape[0])
    snn = program_snn(chain, (src.shape[0],))
    result = Engine(snn, LoihiBackend(chain, snn)).run(
        np.zeros((1, src.shape[0]), np.float32), np.zeros(1, np.int64), src.shape[1],
        encoding=Playback(src.T[None]), record_steps=True, progress=False)
    return [(tr["spikes"][0].T.astype(bool), tr["v"][0].T.astype(np.int64)) for tr in result.traces]


# --- compiling a converted SNN (neuro.convert) ---------------------------------------------------------------

DEFAULT_VTH = 1 << 10   # threshold mantissa: v counts 2^16 units per threshold, so u and v hold +-128 thresholds
#                         before wrapping or saturating (24-bit state) while 8-bit weights set the precision
MANTISSA_MAX = 254      # mixed-sign 8-bit weights are even values in [-256, 254] (REFERENCES "weights")


@dataclass
class LoihiProgram:
    """A converted SNN compiled for Loihi: its layers, the SNN the engine runs, the per-layer quantisation."""

    layers: list[LoihiLayer]
    snn: SNN
    quantisation: list[dict]

    def backend(self) -> LoihiBackend:
        return LoihiBackend(self.layers, self.snn)

    def cost(self, result, steps_per_inference: int, coefficients_name: str | None = None) -> "LoihiCost":
        """Energy, latency and frames/s of this program for the activity of an engine run (``SimResult``);
        coefficients ``None``: dav18."""
        return cost(map_program(self), activity_from_result(self, result), steps_per_inference,
                    coefficients_name or "dav18")


def compile_snn(snn: SNN, vth: int = DEFAULT_VTH) -> LoihiProgram:
    """Quantise a converted SNN onto Loihi layers: pooling folded into the next synapses (netx and NxTF do
    the same), integrate-and-fire as du = 4095 (the current lasts one step) and dv = leak x 4096, reset to
    zero (the chip's native reset; a subtractive reset is not emulated), spiking output (class = most spikes)."""
    shapes = snn.shapes()
    layers, report, pending, start = [], [], None, 0
    for i, op in enumerate(snn.ops):
        if isinstance(op, Synapses):
            if pending is None:
                pending, start = op.op, i
            else:
                pending = _compose(pending, shapes[start], op.op, shapes[i], f"op {i}")
        elif isinstance(op, Neurons):
            if pending is None:
                raise NeuroError(f"op {i} (Neurons) has no synapses before it: Loihi needs synapses feeding every "
                                 "population")
            if isinstance(pending, graph.AvgPool2d):
                pending = pending.as_conv(shapes[start][0])
            layer, errors = _quantize_layer(pending, op, vth, f"layer {len(layers)} (op {i})")
            layers.append(layer)
            report.append(errors)
            pending = None
        elif not isinstance(op, graph.Flatten):
            raise NeuroError(f"op {i} ({type(op).__name__}) has no Loihi equivalent: convert a network with "
                             "average pooling instead of max pooling")
    return LoihiProgram(layers, program_snn(layers, snn.input_shape), report)


def _compose(first, in_shape, second, mid_shape, where: str):
    """One synapse op equal to ``second`` applied after ``first`` (no neurons between them)."""
    if isinstance(first, graph.AvgPool2d) and isinstance(second, graph.Conv2d):
        return _fold_pool_into_conv(first, second, in_shape, mid_shape, where)
    if isinstance(second, graph.Dense):
        m = _matrix(first, in_shape)
        return graph.Dense(second.weight @ m, second.bias + second.weight @ _bias_map(first, in_shape))
    raise NeuroError(f"{where}: {type(second).__name__} right after {type(first).__name__} cannot be folded into "
                     "one Loihi synapse: put neurons between them")


def _matrix(op, in_shape) -> np.ndarray:
    """The (out, in) matrix of a linear op on flat (C, H, W) inputs, without its bias."""
    n = int(np.prod(in_shape))
    eye = np.eye(n, dtype=np.float32).reshape(n, *in_shape)
    return (op.forward(eye).reshape(n, -1) - _bias_map(op, in_shape)).T


def _bias_map(op, in_shape) -> np.ndarray:
    """The op's output for a zero input, flat."""
    return op.forward(np.zeros((1, *in_shape), np.float32)).reshape(-1)


def _fold_pool_into_conv(pool: graph.AvgPool2d, conv: graph.Conv2d, in_shape, mid_shape, where: str):
    """conv(avgpool(x)) as one conv: kernel s (K - 1) + k, stride s S, each tap spread over its window / k^2."""
    if pool.padding != (0, 0) or conv.padding != (0, 0) or conv.groups != 1:
        raise NeuroError(f"{where}: only unpadded average pooling before an unpadded, ungrouped conv can be "
                         "folded for Loihi: put neurons after the pooling (convert with pool_neurons=True)")
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


def _quantize_layer(op, neurons: Neurons, vth: int, name: str) -> tuple[LoihiLayer, dict]:
    """Integer weights, exponent, bias and initial v of one layer, v in units of threshold / (vth << 6)."""
    w = op.weight.astype(np.float64) / neurons.threshold
    b = op.bias.astype(np.float64) / neurons.threshold
    wmax = float(np.abs(w).max())
    if wmax == 0:
        raise NeuroError(f"{name}: all weights are zero: nothing to compile")
    weight_exp = int(np.ceil(np.log2(wmax * vth / MANTISSA_MAX)))
    if weight_exp > WEIGHT_EXP_MAX:  # weights too large for this threshold: lower the threshold mantissa
        vth, weight_exp = int(MANTISSA_MAX * 2 ** WEIGHT_EXP_MAX / wmax), WEIGHT_EXP_MAX
    if weight_exp < WEIGHT_EXP_MIN or vth < 1:
        raise NeuroError(f"{name}: weights (max |w| = {wmax:.3g} thresholds) do not fit the Loihi format "
                         f"(8-bit mantissa, exponent in [{WEIGHT_EXP_MIN}, {WEIGHT_EXP_MAX}]): rescale the layer")
    scaled = w * vth / 2.0 ** weight_exp   # weight units: 2^(weight_exp + 6) / (vth << 6) thresholds
    mant = np.clip(2 * np.round(scaled / 2), WEIGHT_MIN, MANTISSA_MAX)
    unit = float(vth << VTH_SHIFT)         # v per threshold
    bias_mant, bias_exp = _bias_mant_exp(b * unit, name)
    layer = LoihiLayer(_with_weights(op, mant), num_weight_bits=8, weight_exp=weight_exp, du=DECAY_MAX,
                       dv=int(round(neurons.leak * DECAY_UNITY)), vth=vth, bias_mant=bias_mant, bias_exp=bias_exp,
                       v_init=int(round(neurons.v_init * unit)), name=name)
    effective = layer.weights * 2.0 ** weight_exp / vth
    b_eff = layer.bias() / unit
    errors = dict(layer=name, weight_exp=weight_exp, vth=vth,
                  weight_rel_rms=float(np.sqrt(np.mean((effective - w) ** 2) / np.mean(w ** 2))),
                  weight_max_abs=float(np.abs(effective - w).max()),
                  bias_max_abs=float(np.abs(b_eff - b).max(initial=0)),
                  reset="zero" if neurons.reset == "zero" else "zero (the SNN asked for subtract)")
    return layer, errors


def _bias_mant_exp(bias_v: np.ndarray, name: str) -> tuple[np.ndarray, np.ndarray]:
    """Per-neuron 13-bit mantissa and 0..7 exponent closest to ``bias_v`` (v units per step)."""
    half = 1 << (BIAS_MANT_BITS - 1)
    need = np.ceil(np.log2(np.maximum(np.abs(bias_v), 1) / (half - 1)))
    exp = np.maximum(need, 0).astype(np.int64)
    if exp.max(initial=0) > BIAS_EXP_MAX:
        raise NeuroError(f"{name}: a bias of {np.abs(bias_v).max() / 2 ** BIAS_EXP_MAX:.3g} x 2^7 overflows the "
                         "13-bit mantissa with exponent <= 7: use a smaller threshold mantissa (vth)")
    mant = np.clip(np.round(bias_v / 2.0 ** exp), -half, half - 1).astype(np.int64)
    return mant, exp


# =================================================================================================================
# --- mapping onto cores and chips (issue 3 item 5; docs/chips/loihi.md "Mapping") ---------------------------------
# =================================================================================================================
#
# Each layer's neurons, in the engine's flat order (channel-last (y, x, c) for a conv), are cut into k contiguous,
# near-equal slices, one per core, with k the smallest count under which every slice meets all four per-core
# limits. Layers are cut last to first, because a neuron's output axons are the cores of the next layer it
# reaches. Cores are numbered in layer order and placed in that order: 4 per tile, tiles row by row on each
# chip's mesh, chips side by side. The input is injected into the first layer's axons and takes no core.
#
# Synapse memory follows nengo-loihi's encoding (SynapseFmt.bits_per_axon): an input axon's synapses on a core
# are stored in groups of up to 64, each group n x bits + a 10-bit header, rounded up to 64-bit words. Dense
# layers use the dense format (compression 3): an axon stores a weight for every compartment of the slice, no
# index. Conv layers are stored as their unrolled matrix in the sparse format (compression 0): one entry per
# non-zero weight, weight bits + index bits. Weight sharing (NxTF's conv compression) is not modelled, so conv
# memory is an upper bound.

CHIP_CORES = 128                       # neuromorphic cores per Loihi 1 chip (DAV18 [sec])
CORE_COMPARTMENTS = 1024               # compartments per core (DAV18 [sec]; nengo-loihi MAX_COMPARTMENTS)
CORE_INPUT_AXONS = 4096                # input axons per core (DAV18 [sec]; nengo-loihi MAX_IN_AXONS)
CORE_OUTPUT_AXONS = 4096               # output axons per core (DAV18 [sec]; nengo-loihi MAX_OUT_AXONS)
WORD_BITS = 64                         # synapse memory word (REFERENCES: 128 KB = 16,384 x 64-bit words)
CORE_SYNAPSE_WORDS = 16384             # 128 KB per core (DAV18 [sec]; nengo-loihi MAX_SYNAPSE_BITS = 2^20)
SYNAPSE_GROUP = 64                     # synapses per group: numSynapses + 1 with the 6-bit count field
#                                        (nengo-loihi SynapseFmt, N_SYNAPSES_BITS = 6) [unsure: nengo-loihi sets 63]
GROUP_HEADER_BITS = 4 + 6              # SYNAPSE_FMT_IDX_BITS + N_SYNAPSES_BITS per group (nengo-loihi bits_per_axon)
STORED_WEIGHT_BITS = (0, 1, 2, 3, 4, 5, 6, 8, 8)   # bits stored for num_weight_bits 0..8: 7 is stored as 8
#                                                    (nengo-loihi SynapseFmt.WEIGHT_BITS_MAP)
INDEX_BITS = (6, 7, 8, 9, 10, 11, 12)  # compartment index widths of the sparse format (nengo-loihi INDEX_BITS_MAP)
CORES_PER_TILE = 4                     # 4 cores per tile, 32 tiles per chip (DAV18 [sec]; Table 2's "1-32 tiles")
MESH_TILES_X, MESH_TILES_Y = 8, 4      # one chip's tiles as an 8 x 4 mesh [unsure: the aspect is our reading]


@dataclass
class LayerMap:
    """One layer on its cores: per-core usage (arrays over the layer's cores) and its spike traffic."""

    name: str
    kind: str                          # "dense" or "conv" (synapse format and, for SANA-FE, synapse energy)
    neurons: int
    biased: bool                       # a non-zero bias changes v every step: all neurons update every step
    first_core: int
    compartments: np.ndarray
    input_axons: np.ndarray
    output_axons: np.ndarray
    synapse_words: np.ndarray
    packets_per_spike: float = 0.0     # destination cores per spike, mean over the layer's neurons
    hops_x: float = 0.0                # mean east-west tile hops per packet
    hops_y: float = 0.0                # mean north-south tile hops per packet

    @property
    def cores(self) -> int:
        return len(self.compartments)


@dataclass
class LoihiMapping:
    """Every layer on its cores; ``cores`` and ``chips`` in all, and the utilisation of what they hold."""

    layers: list[LayerMap]

    @property
    def cores(self) -> int:
        return sum(m.cores for m in self.layers)

    @property
    def chips(self) -> int:
        return -(-self.cores // CHIP_CORES)

    def utilisation(self) -> dict:
        """Fractions of the used cores' compartments and synapse memory, and of the chips' cores, in use."""
        used = {k: float(sum(getattr(m, k).sum() for m in self.layers)) for k in ("compartments", "synapse_words")}
        return dict(compartments=used["compartments"] / (self.cores * CORE_COMPARTMENTS),
                    synapse_memory=used["synapse_words"] / (self.cores * CORE_SYNAPSE_WORDS),
                    cores=self.cores / (self.chips * CHIP_CORES))


def _connections(layer: LoihiLayer, in_shape) -> tuple[np.ndarray, np.ndarray]:
    """(target, source) flat indices of every non-zero weight, sorted by target; conv in channel-last order."""
    w = layer.weights
    if isinstance(layer.synapse, graph.Dense):
        return np.nonzero(w)
    conv = layer.synapse
    c, h, wd = in_shape
    o, oh, ow = conv.output_shape(in_shape)
    oc, cg, ky, kx = np.nonzero(w)
    ch = (oc // (o // conv.groups)) * w.shape[1] + cg   # input channel of each tap
    oy, ox = np.divmod(np.arange(oh * ow), ow)
    iy = oy[:, None] * conv.stride[0] - conv.padding[0] + ky[None]
    ix = ox[:, None] * conv.stride[1] - conv.padding[1] + kx[None]
    ok = (iy >= 0) & (iy < h) & (ix >= 0) & (ix < wd)
    target = (np.arange(oh * ow)[:, None] * o + oc[None])[ok]
    source = ((iy * wd + ix) * c + ch[None])[ok]
    order = np.argsort(target, kind="stable")
    return target[order], source[order]


def _group_words(n, bits: int):
    """64-bit words of one group of n synapses: n x bits + the header, rounded up."""
    return -(-(n * bits + GROUP_HEADER_BITS) // WORD_BITS)


def _words(synapses: np.ndarray, bits: int) -> np.ndarray:
    """64-bit words for axons with ``synapses`` synapses each, in groups of up to 64."""
    full, rest = np.divmod(synapses, SYNAPSE_GROUP)
    return full * _group_words(SYNAPSE_GROUP, bits) + np.where(rest > 0, _group_words(rest, bits), 0)


def _index_bits(compartments: int) -> int:
    """The narrowest index of the sparse format that addresses ``compartments`` compartments."""
    need = max(int(compartments) - 1, 1).bit_length()
    return next(b for b in INDEX_BITS if b >= need)


def _slices(n: int, k: int) -> np.ndarray:
    """Bounds of k contiguous, near-equal slices of n neurons."""
    return np.arange(k + 1) * n // k


def _usage(kind, bits, target, source, bounds) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per slice: compartments, input axons, synapse words."""
    cuts = np.searchsorted(target, bounds)
    comps, axons, words = np.diff(bounds), [], []
    for (a, b), size in zip(zip(cuts[:-1], cuts[1:]), comps):
        _, per_axon = np.unique(source[a:b], return_counts=True)
        axons.append(len(per_axon))
        if kind == "dense":   # dense format: every axon stores all of the slice's compartments
            words.append(len(per_axon) * int(_words(np.array(size), bits)))
        else:                 # sparse format: one entry per non-zero weight, with its compartment index
            words.append(int(_words(per_axon, bits + _index_bits(size)).sum()))
    return comps, np.array(axons), np.array(words)


def _fanout_cores(source, target, next_bounds) -> tuple[np.ndarray, np.ndarray]:
    """The distinct (neuron, next-layer core) pairs, sorted by neuron: neuron and core (within the next layer)."""
    core = np.searchsorted(next_bounds, target, side="right") - 1
    pairs = np.unique(source.astype(np.int64) * (len(next_bounds) - 1) + core)
    return np.divmod(pairs, len(next_bounds) - 1)


def _binding(comps, axons, words, out_axons) -> str | None:
    """The first per-core limit a slice breaks, or None."""
    for used, limit, what in ((comps, CORE_COMPARTMENTS, "compartments"), (axons, CORE_INPUT_AXONS, "input axons"),
                              (words, CORE_SYNAPSE_WORDS, "synapse memory words"),
                              (out_axons, CORE_OUTPUT_AXONS, "output axons")):
        if used.max(initial=0) > limit:
            return f"{what} ({int(used.max())} > {limit})"
    return None


def _partition(layer, target, source, n, out_axons) -> tuple[np.ndarray, tuple]:
    """The fewest near-equal slices that meet every per-core limit; a NeuroError naming the limit if none do.

    ``out_axons(bounds)`` gives each slice's output axons for given slice bounds.
    """
    bits = STORED_WEIGHT_BITS[layer.num_weight_bits]
    k = -(-n // CORE_COMPARTMENTS)
    while True:
        bounds = _slices(n, k)
        usage = _usage(_kind(layer), bits, target, source, bounds)
        broken = _binding(*usage, out_axons(bounds))
        if broken is None:
            return bounds, usage
        if k == n:
            raise NeuroError(f"{layer.name}: does not fit a Loihi core even with one neuron per core: "
                             f"{broken}: give its neurons fewer inputs")
        k += 1


def _layer_shapes(layers: list[LoihiLayer], input_shape) -> list[tuple]:
    """Each layer's input shape (flattened before a dense layer, as ``program_snn`` does)."""
    shapes, shape = [], tuple(input_shape)
    for layer in layers:
        if isinstance(layer.synapse, graph.Dense) and len(shape) > 1:
            shape = (int(np.prod(shape)),)
        shapes.append(shape)
        shape = layer.synapse.output_shape(shape)
    return shapes + [shape]


def core_position(core: int) -> tuple[int, int]:
    """(x, y) tile of a core numbered in placement order: 4 per tile, tiles row by row, chips side by side."""
    chip, local = divmod(int(core), CHIP_CORES)
    y, x = divmod(local // CORES_PER_TILE, MESH_TILES_X)
    return chip * MESH_TILES_X + x, y


def _positions(first: int, count: int) -> np.ndarray:
    """(count, 2) tiles of the cores first .. first + count - 1."""
    return np.array([core_position(first + i) for i in range(count)]).reshape(count, 2)


def _kind(layer: LoihiLayer) -> str:
    """The synapse format (and SANA-FE synapse class) of a layer: "dense" or "conv"."""
    return "dense" if isinstance(layer.synapse, graph.Dense) else "conv"


def _per_slice(sorted_ids: np.ndarray, bounds: np.ndarray) -> np.ndarray:
    """How many of ``sorted_ids`` fall into each slice."""
    return np.diff(np.searchsorted(sorted_ids, bounds))


def map_layers(layers: list[LoihiLayer], input_shape) -> LoihiMapping:
    """Partition every layer onto cores under the per-core limits and place the cores in order on the mesh."""
    shapes = _layer_shapes(layers, input_shape)
    conns = [_connections(layer, shape) for layer, shape in zip(layers, shapes)]
    sizes = [int(np.prod(s)) for s in shapes[1:]]
    n = len(layers)
    bounds, usages = [None] * n, [None] * n
    fanouts = [(np.zeros(0, np.int64),) * 2] * n   # the last layer's spikes go to the host: no output axons
    for i in reversed(range(n)):
        if i + 1 < n:
            fanouts[i] = _fanout_cores(*conns[i + 1][::-1], bounds[i + 1])
        bounds[i], usages[i] = _partition(layers[i], *conns[i], sizes[i],
                                          lambda b, neuron=fanouts[i][0]: _per_slice(neuron, b))
    maps, first = [], 0
    for layer, b, (comps, axons, words), (neuron, _), size in zip(layers, bounds, usages, fanouts, sizes):
        maps.append(LayerMap(layer.name, _kind(layer), size, bool(np.any(layer.bias_mant)), first, comps, axons,
                             _per_slice(neuron, b), words))
        first += len(comps)
    for i in range(n - 1):
        _traffic(maps[i], maps[i + 1], bounds[i], *fanouts[i])
    return LoihiMapping(maps)


def _traffic(src: LayerMap, dst: LayerMap, bounds, neuron, dst_core) -> None:
    """Packets per spike and mean tile hops per packet from ``src``'s cores to ``dst``'s."""
    src_core = np.searchsorted(bounds, neuron, side="right") - 1
    a, b = _positions(src.first_core, src.cores)[src_core], _positions(dst.first_core, dst.cores)[dst_core]
    src.packets_per_spike = len(neuron) / src.neurons
    hops = np.abs(a - b).reshape(-1, 2)
    src.hops_x, src.hops_y = (float(hops[:, j].mean()) if len(hops) else 0.0 for j in (0, 1))


def map_program(program: LoihiProgram) -> LoihiMapping:
    """``map_layers`` for a compiled program."""
    return map_layers(program.layers, program.snn.input_shape)


# =================================================================================================================
# --- cost model: time per step, energy per inference, frames/s (issue 3 item 6; docs/chips/loihi.md "Cost model") -
# =================================================================================================================
#
# Per step and core: synaptic ops, neuron updates (active or inactive), spikes out and packets (one per spike
# and destination core), each with an energy and a time. A core works serially, so its time is the sum of its
# events' times; the step takes the slowest core's time plus the mesh-wide barrier. Energy per step = the sum of
# all events' energies + static power x step time. A layer's activity is spread evenly over its cores. A neuron
# update is active when the neuron gets synaptic input that step (with input spread at random over the layer's
# neurons, a fraction 1 - exp(-synops / neurons)) or when its layer has a bias (v changes every step). Host I/O
# (injecting the input, reading the output) and the x86 cores are not modelled; an image is one inference of
# ``steps_per_inference`` steps, run alone (latency = steps x step time, frames/s = 1 / latency).

BARRIER_1_TILE_S, BARRIER_32_TILES_S = 113e-9, 465e-9   # end-of-step barrier, 1 and 32 tiles (DAV18 Table 2 [sec])
CHIP_STATIC_W = 0.104                  # static power per Loihi 1 chip: 3.34 W for 32 chips (Frady et al. 2020 [sec])


@dataclass(frozen=True)
class Coefficients:
    """Energy (J) and time (s) per event; "active"/"inactive" neuron updates, packets = spike messages."""

    name: str
    e_synop_dense: float
    e_synop_conv: float
    t_synop_dense: float
    t_synop_conv: float
    e_active: float
    e_inactive: float
    t_active: float
    t_inactive: float
    e_spike: float
    t_spike: float
    e_packet: float
    t_packet: float
    e_hop_x: float
    e_hop_y: float


COEFFICIENTS = {
    # DAV18 Table 2 (pre-silicon, 0.75 V): synaptic op 23.6 pJ (min) / 3.5 ns (max); neuron update 81 / 52 pJ,
    # 8.4 / 5.3 ns (active / inactive); within-tile spike 1.7 pJ (charged per packet); tile hop 3.0 (E-W) /
    # 4.0 (N-S) pJ. The table gives no time for spikes or packets: 0.
    "dav18": Coefficients("dav18", 23.6e-12, 23.6e-12, 3.5e-9, 3.5e-9, 81e-12, 52e-12, 8.4e-9, 5.3e-9,
                          0.0, 0.0, 1.7e-12, 0.0, 3.0e-12, 4.0e-12),
    # SANA-FE arch/loihi.yaml (calibrated on Loihi): dense synapse 35.5 pJ / 3.8 ns, conv synapse 24.0 pJ / 3.1 ns;
    # every neuron accessed 51.2 pJ / 6.0 ns, an active one + update 21.6 pJ / 3.7 ns; spike out 69.3 pJ / 30 ns;
    # axon out (per packet) 111 pJ / 5.1 ns; hop 3.0-4.2 pJ, taken as 3.0 E-W and 4.2 N-S [unsure which is which].
    "sana-fe": Coefficients("sana-fe", 35.5e-12, 24.0e-12, 3.8e-9, 3.1e-9, 51.2e-12 + 21.6e-12, 51.2e-12,
                            6.0e-9 + 3.7e-9, 6.0e-9, 69.3e-12, 30e-9, 111e-12, 5.1e-9, 3.0e-12, 4.2e-12),
}


def chip_limits() -> dict:
    """Key limits of a Loihi 1 chip (DAV18 [sec]), as listed by `neuro chips`."""
    return {"cores per chip": CHIP_CORES, "compartments per core": CORE_COMPARTMENTS,
            "input axons per core": CORE_INPUT_AXONS, "output axons per core": CORE_OUTPUT_AXONS,
            "synaptic memory per core (KB)": CORE_SYNAPSE_WORDS * WORD_BITS // 8 // 1024,
            "weight bits": WEIGHT_BITS, "coefficient sets": ", ".join(COEFFICIENTS)}


def coefficients(name: str) -> Coefficients:
    """A coefficient set by name, or a one-line NeuroError listing the names."""
    if name not in COEFFICIENTS:
        raise NeuroError(f"unknown Loihi coefficient set {name!r}: give one of {', '.join(COEFFICIENTS)}")
    return COEFFICIENTS[name]


def barrier_s(tiles: int) -> float:
    """End-of-step barrier: DAV18 Table 2's 113 ns (1 tile) to 465 ns (32 tiles), linear in the tiles used;
    beyond one chip extrapolated on the same line (no published point)."""
    return BARRIER_1_TILE_S + (BARRIER_32_TILES_S - BARRIER_1_TILE_S) * (tiles - 1) / (32 - 1)


@dataclass(frozen=True)
class LayerActivity:
    """A layer's mean activity per step of one inference: synaptic ops into it and spikes out of it."""

    synops: float
    spikes: float


def activity_from_result(program: LoihiProgram, result) -> list[LayerActivity]:
    """Per-layer activity per step and image from a ``SimResult`` of ``program`` run on the engine."""
    per = max(result.n_images, 1) * result.timesteps
    syn = [c.synops for c, op in zip(result.layers, program.snn.ops) if isinstance(op, Synapses)]
    spk = [c.spikes for c, op in zip(result.layers, program.snn.ops) if isinstance(op, Neurons)]
    return [LayerActivity(s / per, k / per) for s, k in zip(syn, spk)]


@dataclass(frozen=True)
class LoihiCost:
    """Time and energy of one inference; ``energy_j`` splits it by component (J per inference)."""

    coefficients: str
    cores: int
    chips: int
    step_s: float
    slowest_core_s: float
    barrier_s: float
    latency_s: float
    frames_per_second: float
    energy_per_inference_j: float
    dynamic_energy_per_inference_j: float
    energy_j: dict


def _layer_step(m: LayerMap, act: LayerActivity, c: Coefficients) -> tuple[dict, float]:
    """Energy per step by component (J) of one layer, and the time per step (s) of each of its cores."""
    if act.synops < 0 or act.spikes < 0 or act.spikes > m.neurons:
        raise NeuroError(f"{m.name}: activity {act} is impossible: give synops >= 0 and 0 <= spikes <= "
                         f"{m.neurons} (its neurons) per step")
    active = m.neurons if m.biased else m.neurons * -np.expm1(-act.synops / m.neurons)
    e_syn, t_syn = (c.e_synop_dense, c.t_synop_dense) if m.kind == "dense" else (c.e_synop_conv, c.t_synop_conv)
    packets = act.spikes * m.packets_per_spike
    energy = dict(synops=act.synops * e_syn,
                  neurons=active * c.e_active + (m.neurons - active) * c.e_inactive,
                  spikes=act.spikes * c.e_spike,
                  network=packets * (c.e_packet + m.hops_x * c.e_hop_x + m.hops_y * c.e_hop_y))
    time = (act.synops * t_syn + active * c.t_active + (m.neurons - active) * c.t_inactive
            + act.spikes * c.t_spike + packets * c.t_packet) / m.cores
    return energy, time


def cost(mapping: LoihiMapping, activity: list[LayerActivity], steps_per_inference: int,
         coefficients_name: str = "dav18") -> LoihiCost:
    """Latency, frames/s and energy per inference of a mapped network with the given per-step activity."""
    c = coefficients(coefficients_name)
    if len(activity) != len(mapping.layers):
        raise NeuroError(f"{len(activity)} layer activities for {len(mapping.layers)} mapped layers: "
                         "give one per layer")
    if isinstance(steps_per_inference, bool) or not isinstance(steps_per_inference, (int, np.integer)) \
            or steps_per_inference < 1:
        raise NeuroError(f"steps_per_inference is {steps_per_inference!r}: give an integer >= 1")
    per_layer = [_layer_step(m, a, c) for m, a in zip(mapping.layers, activity)]
    slowest = float(max(t for _, t in per_layer))
    barrier = barrier_s(-(-mapping.cores // CORES_PER_TILE))
    step = slowest + barrier
    energy = {k: float(steps_per_inference * sum(e[k] for e, _ in per_layer)) for k in per_layer[0][0]}
    dynamic = sum(energy.values())
    energy["static"] = steps_per_inference * step * CHIP_STATIC_W * mapping.chips
    latency = steps_per_inference * step
    return LoihiCost(c.name, mapping.cores, mapping.chips, step, slowest, barrier, latency, 1 / latency,
                     dynamic + energy["static"], dynamic, energy)
