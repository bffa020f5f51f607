"""IBM TrueNorth: one neurosynaptic core (256 axons x 256 neurons, 4 axon types) with the published
neuron model, run on the engine's seam (``neuro.sim.Backend``).

Per tick, each neuron j does (docs/references.md section 1, "TrueNorth neuron", from CAS13):

1. integrate  V += sum_i A_i w_ij [(1 - b_j^G) s_j^G + b_j^G F(s_j^G, rho)]     G = type of axon i
2. leak       V += Omega [(1 - c_j) lambda_j + c_j F(lambda_j, rho)],  Omega = (1 - eps_j) + eps_j sgn(V)
3. threshold  eta = rho & (2^TM_j - 1); if V >= alpha_j + eta: spike, and by reset mode gamma_j
              V = R_j (0), V - (alpha_j + eta) (1) or V (2)
4. negative   (no spike) kappa_j = 1: V = max(V, -beta_j); kappa_j = 0: if V < -(beta_j + eta):
              V = -R_j (0), V + (beta_j + eta) (1) or V (2)
5. saturate   V = clip(V, -2^19, 2^19 - 1)                                      20-bit signed V

with F(s, rho) = sgn(s) if |s| >= rho else 0. Steps 1-4 run in int64 and V is clipped once, at step 5,
in the order docs/references.md gives; whether the chip also saturates in between is not published [unsure].
Since rho is uniform on 0..255, a stochastic synapse or leak of value s != 0 adds sgn(s) with
probability (|s| + 1) / 256 (|s| <= 255) and always for s = -256.

**Pseudo-random numbers** (the chip's generator is not published [unsure]; this is our choice). One
generator per core: xorshift32 (Marsaglia 2003, J. Stat. Softw. 8(14); shifts 13, 17, 5; period 2^32 - 1).
Each use takes one fresh number rho = the top 8 bits of the next state. Its start state is the low 32
bits of the first SplitMix64 output for ``seed`` (Steele, Lea & Flood 2014), 1 if those are 0, so
nearby seeds give unrelated streams. A draw is made only where a number is used, in this fixed order
per tick: neurons j = 0..255 in turn; for neuron j first one draw per active synapse (A_i w_ij = 1)
of a stochastic type, types 0..3 in turn; then one draw for the leak if c_j = 1; then one draw for
eta if TM_j > 0 (the same eta serves steps 3 and 4). Each row of an engine batch is an independent
run of the core from that start state, so results do not depend on batch size or thread count.

**Engine seam.** The engine propagates spikes through a float32 synapse op and hands each neuron one
number; a stochastic synapse needs one draw per synaptic event, which a summed current cannot give.
So the core's synapse op is ``graph.Dense`` of the crossbar split by axon type into 4 blocks (shape
(4 x 256, 256), entry [g 256 + j, i] = w_ij if axon i has type g): the engine delivers, per neuron and
type, the number of active synapses (integers <= 256, exact in float32), and the neuron kernel
applies s_j^G or F(s_j^G, rho) per event. The engine's synaptic-op count of that op is MER14's
definition (an active axon x a set crossbar bit). The engine therefore sees a population of 4 x 256
lanes: neuron j's V and spikes live in lane j, lanes 256..1023 stay 0.

Parameter widths the literature leaves open [unsure], our choices: leak lambda signed 9 bits like the
weights; alpha and beta unsigned 18 bits, so alpha + eta and -(beta + eta) stay inside the 20-bit V;
reset value R signed 18 bits; TM 0..8 (eta masks the 8-bit rho, more bits add nothing).
``simulate_core`` is the conformance entry point; docs/chips/truenorth.md has the details.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from neuro import graph
from neuro.encode import Playback
from neuro.errors import NeuroError
from neuro.jit import njit
from neuro.sim import Backend, Engine, NeuronModel
from neuro.snn import SNN, Neurons, Synapses

# --- constants (docs/references.md section 1; tags as there) --------------------------------------------
CORE_AXONS = 256                       # input axons per core (MER14 [sec])
CORE_NEURONS = 256                     # neurons per core, 256 x 256 binary crossbar (MER14 [sec])
AXON_TYPES = 4                         # axon types per core, 2 bits per axon (MER14 [sec])
WEIGHT_MIN, WEIGHT_MAX = -256, 255     # one signed 9-bit weight per neuron and axon type (MER14 S8 [sec])
V_BITS = 20                            # membrane potential, signed 20-bit (MER14 S8 [sec])
V_MIN, V_MAX = -(1 << (V_BITS - 1)), (1 << (V_BITS - 1)) - 1
RHO_BITS = 8                           # rho: a fresh pseudo-random 8-bit number per use (CAS13, docs/references.md)
RESET_MODES = (0, 1, 2)                # gamma: 0 reset to R, 1 subtract threshold, 2 no reset (CAS13, docs/references.md)
# widths the literature leaves open [unsure]: our choices, see the module docstring
LEAK_MIN, LEAK_MAX = -256, 255         # lambda: signed 9-bit, the width of the weights it is added like
THRESHOLD_MAX = (1 << 18) - 1          # alpha, beta: unsigned 18-bit; alpha + 255 < 2^19 keeps them in V's range
RESET_MIN, RESET_MAX = -(1 << 17), (1 << 17) - 1   # R: signed 18-bit
MASK_BITS_MAX = RHO_BITS               # TM: eta = rho & mask, so masks wider than rho add nothing
# the generator (our choice, module docstring)
XORSHIFT_A, XORSHIFT_B, XORSHIFT_C = 13, 17, 5   # xorshift32 triple (Marsaglia 2003, J. Stat. Softw. 8(14))
STATE_MASK = 0xFFFFFFFF
SPLITMIX_GAMMA = 0x9E3779B97F4A7C15    # SplitMix64 increment and mixing constants (Steele, Lea & Flood 2014)
SPLITMIX_M1, SPLITMIX_M2 = 0xBF58476D1CE4E5B9, 0x94D049BB133111EB
U64 = (1 << 64) - 1


# --- the core's parameters --------------------------------------------------------------------------------

# name -> (shape, axis names, lo, hi, what the values are); per-neuron entries accept one value for all
_PER_NEURON = ((CORE_NEURONS,), ("neuron",))
_FIELDS = {
    "crossbar": ((CORE_AXONS, CORE_NEURONS), ("axon", "neuron"), 0, 1, "a crossbar bit (bool)"),
    "axon_types": ((CORE_AXONS,), ("axon",), 0, AXON_TYPES - 1, "an axon type"),
    "weights": ((CORE_NEURONS, AXON_TYPES), ("neuron", "type"), WEIGHT_MIN, WEIGHT_MAX,
                "a signed 9-bit weight (MER14 S8)"),
    "stochastic_synapse": ((CORE_NEURONS, AXON_TYPES), ("neuron", "type"), 0, 1, "a flag (bool)"),
    "leak": (*_PER_NEURON, LEAK_MIN, LEAK_MAX, "a signed 9-bit leak"),
    "leak_reversal": (*_PER_NEURON, 0, 1, "a flag (bool)"),
    "stochastic_leak": (*_PER_NEURON, 0, 1, "a flag (bool)"),
    "alpha": (*_PER_NEURON, 0, THRESHOLD_MAX, "an unsigned 18-bit threshold"),
    "beta": (*_PER_NEURON, 0, THRESHOLD_MAX, "an unsigned 18-bit negative threshold"),
    "threshold_mask_bits": (*_PER_NEURON, 0, MASK_BITS_MAX, "a mask width (bits of the 8-bit rho)"),
    "reset_value": (*_PER_NEURON, RESET_MIN, RESET_MAX, "a signed 18-bit reset value"),
    "reset_mode": (*_PER_NEURON, 0, len(RESET_MODES) - 1, "a reset mode (0 to R, 1 subtract, 2 none)"),
    "kappa": (*_PER_NEURON, 0, 1, "a flag (1 saturate at -beta, 0 reset)"),
    "v0": (*_PER_NEURON, V_MIN, V_MAX, "a signed 20-bit potential (MER14 S8)"),
}


def _checked(name: str, value) -> np.ndarray:
    """``value`` as the int64 array of field ``name``, or a one-line NeuroError naming the entry and limit."""
    shape, axes, lo, hi, what = _FIELDS[name]
    arr = np.asarray(value)
    if arr.dtype == bool:
        arr = arr.astype(np.int64)
    if arr.dtype.kind not in "iuf":
        raise NeuroError(f"CoreConfig: {name} must hold numbers, got {arr.dtype}: give {what} per entry")
    if arr.ndim == 0 and axes == ("neuron",):
        arr = np.full(shape, arr)
    if arr.shape != shape:
        raise NeuroError(f"CoreConfig: {name} has shape {arr.shape}: give a {shape} array "
                         f"[{', '.join(axes)}]" + (" or one value" if axes == ("neuron",) else ""))
    with np.errstate(invalid="ignore"):
        bad = ~np.isfinite(arr) | (arr != np.round(arr)) | (arr < lo) | (arr > hi)
    if bad.any():
        idx = tuple(int(i) for i in np.argwhere(bad)[0])
        where = ", ".join(f"{a} {i}" for a, i in zip(axes, idx))
        raise NeuroError(f"CoreConfig: {name} of {where} is {arr[idx]}, not an integer in [{lo}, {hi}]: "
                         f"give {what}")
    return arr.astype(np.int64)


@dataclass
class CoreConfig:
    """One TrueNorth core: crossbar [axon, neuron], axon types, per-neuron type weights and flags, and the
    per-neuron parameters of the module docstring's equations (``v0`` is V before the first tick).

    Arrays are checked and stored as int64 on construction; a per-neuron parameter may be one value.
    """

    crossbar: np.ndarray
    axon_types: np.ndarray
    weights: np.ndarray
    stochastic_synapse: np.ndarray
    leak: np.ndarray
    leak_reversal: np.ndarray
    stochastic_leak: np.ndarray
    alpha: np.ndarray
    beta: np.ndarray
    threshold_mask_bits: np.ndarray
    reset_value: np.ndarray
    reset_mode: np.ndarray
    kappa: np.ndarray
    v0: np.ndarray

    def __post_init__(self):
        for name in _FIELDS:
            setattr(self, name, _checked(name, getattr(self, name)))

    def crossbar_by_type(self) -> np.ndarray:
        """The synapse matrix the engine runs: (4 x 256, 256) float32, [g 256 + j, i] = w_ij [type(i) = g]."""
        of_type = self.axon_types[None, :] == np.arange(AXON_TYPES)[:, None]          # (type, axon)
        blocks = self.crossbar.T[None, :, :].astype(bool) & of_type[:, None, :]      # (type, neuron, axon)
        return blocks.reshape(AXON_TYPES * CORE_NEURONS, CORE_AXONS).astype(np.float32)

    def kernel_params(self) -> tuple:
        """The per-neuron arrays in ``tick``'s argument order, each in the narrowest dtype that holds its field
        (``KERNEL_DTYPES``); the mask is 2^TM - 1."""
        mask = (1 << self.threshold_mask_bits) - 1
        params = (self.weights, self.stochastic_synapse, self.leak, self.leak_reversal, self.stochastic_leak,
                  self.alpha, self.beta, mask, self.reset_value, self.reset_mode, self.kappa)
        return tuple(p.astype(dtype) for p, dtype in zip(params, KERNEL_DTYPES))


# dtypes of ``kernel_params``: a chip's kernel streams every core's parameters each tick, so narrow types are
# what bounds its speed on thousands of cores (docs/results.md). The kernel computes V in int64 whatever these are.
KERNEL_DTYPES = (np.int16,   # weights: signed 9-bit
                 np.uint8,   # stochastic_synapse: flag
                 np.int16,   # leak: signed 9-bit
                 np.uint8,   # leak_reversal: flag
                 np.uint8,   # stochastic_leak: flag
                 np.int32,   # alpha: unsigned 18-bit
                 np.int32,   # beta: unsigned 18-bit
                 np.uint8,   # mask 2^TM - 1, TM <= 8
                 np.int32,   # reset value: signed 18-bit
                 np.uint8,   # reset mode: 0..2
                 np.uint8)   # kappa: flag


# --- the chip's mesh ---------------------------------------------------------------------------------------

CHIP_CORES = 4096                      # cores per chip, a 64 x 64 mesh (MER14 [sec])
MESH_SIDE = 64                         # mesh width and height in cores (MER14 [sec])
CHIP_NEURONS = CHIP_CORES * CORE_NEURONS


def mesh_hops(source, target) -> np.ndarray:
    """Hops of x-then-y routing between cores at (x, y) on the 64 x 64 mesh: |dx| + |dy|.

    ``source`` and ``target`` are (..., 2) integer coordinates in 0..63 (broadcast against each other).
    """
    src, dst = (np.asarray(c) for c in (source, target))
    for name, c in (("source", src), ("target", dst)):
        if c.ndim < 1 or c.shape[-1] != 2 or c.dtype.kind not in "iu":
            raise NeuroError(f"{name} has shape {c.shape} and dtype {c.dtype}: give integer (x, y) pairs, shape (..., 2)")
        if ((c < 0) | (c >= MESH_SIDE)).any():
            raise NeuroError(f"{name} holds {c[((c < 0) | (c >= MESH_SIDE)).any(axis=-1)][0].tolist()}: "
                             f"core coordinates lie in 0..{MESH_SIDE - 1} on one chip's mesh")
    try:
        np.broadcast_shapes(src.shape, dst.shape)
    except ValueError:
        raise NeuroError(f"source has shape {src.shape}, target {dst.shape}: give one pair or matching shapes") from None
    return np.abs(src - dst).sum(axis=-1)


# --- the pseudo-random generator ---------------------------------------------------------------------------

def seed_state(seed: int) -> int:
    """xorshift32 start state for ``seed``: low 32 bits of SplitMix64's first output, 1 instead of 0."""
    z = (int(seed) + SPLITMIX_GAMMA) & U64
    z = ((z ^ (z >> 30)) * SPLITMIX_M1) & U64
    z = ((z ^ (z >> 27)) * SPLITMIX_M2) & U64
    return ((z ^ (z >> 31)) & STATE_MASK) or 1


@njit(nogil=True, cache=True)
def _draw(rng, b):
    """Advance row ``b``'s xorshift32 state and return rho, its top 8 bits."""
    x = rng[b]
    x ^= (x << XORSHIFT_A) & STATE_MASK
    x ^= x >> XORSHIFT_B
    x ^= (x << XORSHIFT_C) & STATE_MASK
    rng[b] = x
    return x >> (32 - RHO_BITS)


# --- the neuron kernel ---------------------------------------------------------------------------------------

@njit(nogil=True, cache=True)
def _sgn(x):
    return 1 if x > 0 else (-1 if x < 0 else 0)


@njit(nogil=True, cache=True)
def _stochastic(s, rho):
    """F(s, rho) = sgn(s) if |s| >= rho else 0."""
    return _sgn(s) if abs(s) >= rho else 0


@njit(nogil=True, cache=True)
def _integrate(counts_b, j, weights, stochastic_synapse, rng, b):
    """Step 1 for neuron j: counts_b[g 256 + j] active synapses of type g, each adding s or F(s, rho)."""
    total = 0
    for g in range(AXON_TYPES):
        k = np.int64(counts_b[g * CORE_NEURONS + j])
        s = weights[j, g]
        if stochastic_synapse[j, g]:
            for _ in range(k):
                total += _stochastic(s, _draw(rng, b))
        else:
            total += k * s
    return total


@njit(nogil=True, cache=True)
def _leak(v, lam, reversal, stochastic, rng, b):
    """Step 2: V + Omega lambda (or Omega F(lambda, rho)); Omega = sgn(V) with leak reversal, else 1."""
    omega = _sgn(v) if reversal else 1
    step = _stochastic(lam, _draw(rng, b)) if stochastic else lam
    return v + omega * step


@njit(nogil=True, cache=True)
def _fire(v, alpha, beta, eta, reset, mode, kappa):
    """Steps 3-5: (V after the thresholds and the 20-bit clip, spiked)."""
    spiked = v >= alpha + eta
    if spiked:
        if mode == 0:
            v = reset
        elif mode == 1:
            v -= alpha + eta
    elif kappa:
        v = max(v, -beta)
    elif v < -(beta + eta):
        if mode == 0:
            v = -reset
        elif mode == 1:
            v += beta + eta
    return min(max(v, V_MIN), V_MAX), spiked


@njit(nogil=True, cache=True)
def core_update(counts_b, v_b, spikes_b, rng, b, weights, stochastic_synapse, leak, leak_reversal, stochastic_leak,
                alpha, beta, mask, reset, mode, kappa):
    """Steps 1-5 for the 256 neurons of one core, drawing from ``rng[b]`` in the documented order:
    ``counts_b`` (4 x 256) active synapses per type and neuron, V in ``v_b[:256]``; writes 0/1 spikes into
    ``spikes_b[:256]`` and returns their number."""
    total = 0
    for j in range(CORE_NEURONS):
        s = stochastic_synapse[j]
        if s[0] | s[1] | s[2] | s[3] | stochastic_leak[j] | mask[j]:   # draws, in the documented order
            vv = np.int64(v_b[j]) + _integrate(counts_b, j, weights, stochastic_synapse, rng, b)
            vv = _leak(vv, leak[j], leak_reversal[j], stochastic_leak[j], rng, b)
            eta = _draw(rng, b) & mask[j] if mask[j] else 0
        else:   # no draws: the same sums without the per-event branches, several times faster (bench_truenorth)
            vv = np.int64(v_b[j])
            for g in range(AXON_TYPES):
                vv += np.int64(counts_b[g * CORE_NEURONS + j]) * weights[j, g]
            vv = _leak(vv, leak[j], leak_reversal[j], 0, rng, b)
            eta = 0
        vv, spiked = _fire(vv, alpha[j], beta[j], eta, reset[j], mode[j], kappa[j])
        v_b[j] = vv
        spikes_b[j] = 1 if spiked else 0
        if spiked:
            total += 1
    return total


@njit(nogil=True, cache=True)
def tick(counts, v, spikes, rng, weights, stochastic_synapse, leak, leak_reversal, stochastic_leak,
         alpha, beta, mask, reset, mode, kappa):
    """One tick of a core for each batch row: ``counts`` (batch, 4 x 256) active synapses per type and
    neuron, ``v`` (batch, 4 x 256) int32 with V in lanes 0..255; writes 0/1 spikes, returns their number."""
    total = 0
    for b in range(v.shape[0]):
        total += core_update(counts[b], v[b], spikes[b], rng, b, weights, stochastic_synapse, leak, leak_reversal,
                             stochastic_leak, alpha, beta, mask, reset, mode, kappa)
    return total


# --- on the engine ---------------------------------------------------------------------------------------------

LANES = AXON_TYPES * CORE_NEURONS   # the population size the engine sees for one core


class TrueNorthNeurons(NeuronModel):
    """The 256 neurons of one core: V (int32, in lanes 0..255) and the core's generator state per batch row."""

    def __init__(self, core: CoreConfig, seed: int):
        self.core, self.start = core, seed_state(seed)
        self.params = core.kernel_params()
        self.scale = np.ones(LANES, np.float32)
        self.scale[:CORE_NEURONS] = np.maximum(core.alpha, 1)

    def reset(self, batch, n):
        if n != LANES:
            raise NeuroError(f"a TrueNorth core's population has {LANES} lanes (4 axon types x 256 neurons), "
                             f"got {n}: build the SNN with core_snn")
        self.v = np.zeros((batch, n), np.int32)
        self.v[:, :CORE_NEURONS] = self.core.v0
        self.rng = np.full(batch, self.start, np.int64)

    def step(self, current, spikes):
        return tick(current, self.v, spikes, self.rng, *self.params)

    def potential(self):
        """V in units of alpha (lanes 256.. are 0)."""
        return self.v / self.scale


class TrueNorthBackend(Backend):
    """Runs a ``core_snn`` on the engine: the crossbar split by type as synapses, the core's neurons as model."""

    name = "truenorth"

    def __init__(self, core: CoreConfig, snn: SNN, seed: int = 0):
        self.core, self.seed = core, seed
        self._synapses = {id(op.op) for op in snn.ops if isinstance(op, Synapses)}

    def synapse_op(self, op):
        if id(op) not in self._synapses:
            raise NeuroError(f"{type(op).__name__} op is not part of this TrueNorth core: build the SNN with core_snn")
        return op

    def neuron_model(self, op: Neurons) -> NeuronModel:
        return TrueNorthNeurons(self.core, self.seed)


def core_snn(core: CoreConfig) -> SNN:
    """The SNN of one core: 256 axons -> Dense(crossbar by type) -> the core's neurons (4 x 256 lanes).

    The ``Neurons`` op only marks the population: the backend's model takes its parameters from ``core``.
    """
    return SNN((CORE_AXONS,), [Synapses(graph.Dense(core.crossbar_by_type())), Neurons()], readout="spikes")


# --- conformance entry point -----------------------------------------------------------------------------------

def _axon_input(axon_spikes) -> np.ndarray:
    """(T, 256) 0/1 as float32, or a one-line NeuroError."""
    arr = np.asarray(axon_spikes)
    if arr.ndim != 2 or arr.shape[1] != CORE_AXONS or arr.shape[0] < 1:
        raise NeuroError(f"axon_spikes has shape {arr.shape}: give a (T, {CORE_AXONS}) bool array with T >= 1")
    if arr.dtype != bool and (arr.dtype.kind not in "iuf" or not np.isin(arr, (0, 1)).all()):
        raise NeuroError("axon_spikes must be bool (or 0/1): an axon is active in a tick or not")
    return arr.astype(np.float32)


def simulate_core(core: CoreConfig, axon_spikes, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Run one core on the engine for T ticks; ``axon_spikes[t]`` is integrated in tick t.

    Returns (spikes (T, 256) bool, V (T, 256) int64 at the end of each tick).
    """
    if not isinstance(core, CoreConfig):
        raise NeuroError(f"core must be a chips.truenorth.CoreConfig, got {type(core).__name__}")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise NeuroError(f"seed must be an integer, got {seed!r}")
    x = _axon_input(axon_spikes)
    snn = core_snn(core)
    result = Engine(snn, TrueNorthBackend(core, snn, int(seed)), threads=1).run(
        np.zeros((1, CORE_AXONS), np.float32), np.zeros(1, np.int64), len(x), encoding=Playback(x[None]),
        record_steps=True, progress=False)
    trace = result.traces[0]
    return trace["spikes"][0, :, :CORE_NEURONS].astype(bool), trace["v"][0, :, :CORE_NEURONS].astype(np.int64)
