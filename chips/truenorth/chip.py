"""IBM TrueNorth chip: many cores of ``chips.truenorth`` connected by the spike router, run tick by tick.

Per tick t (docs/references.md section 1; MER14 [sec] for routing and delays):

1. Axons active in tick t: the external inputs of ``input_spikes[t]`` (delay 0, as in ``simulate_core``)
   and the routed spikes scheduled for tick t. Axons are binary: an axon reached twice in one tick (by two
   spikes, or a spike and an input) is one activation.
2. Every core updates its 256 neurons exactly as ``chips.truenorth.tick`` does (the same function,
   ``core_update``: counts per neuron and axon type, stochastic synapses, leak, threshold mask, resets,
   20-bit clip), drawing from its own generator in the documented order. Core k's generator starts from
   ``seed_state(seed + k)``, so core k alone behaves as ``simulate_core(core, ..., seed=seed + k)``.
3. A neuron that spikes in tick t with route (c, a, d) makes axon a of core c active in tick t + d,
   d in 1..15: each neuron targets exactly one axon (MER14). Spikes wait in a ring buffer of 16 tick slots
   per axon, the chip's axon scheduler. Output neurons' spikes are recorded.

Placement: core k sits on chip k // 4096 at mesh (x, y) = (k % 4096 % 64, k % 4096 // 64). A routed spike
costs ``mesh_hops`` between its cores when both are on one chip, else one chip crossing (the hops of a
multi-chip path are not counted). SOPs are MER14's: an active axon x a set crossbar bit.

The kernel is numba, GIL-free: the cores of a tick update in parallel (``prange``; each core owns its
generator, V and spike buffer, so results do not depend on the thread count) and look up their spikes' routes,
then one serial pass sets the target axons. A core's crossbar is stored by axon (CSR), so an active axon costs
its set bits.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from numba import prange   # numba at import is fine here: `neuro chips` does not import this module
from tqdm.auto import tqdm

from chips.truenorth.core import (AXON_TYPES, CHIP_CORES, CORE_AXONS, CORE_NEURONS, MESH_SIDE, THRESHOLD_MAX,
                                  CoreConfig, core_update, mesh_hops, seed_state)
from chips.truenorth.cost_model import TICK_HZ
from neuro.errors import NeuroError
from neuro.jit import njit

DELAY_MIN, DELAY_MAX = 1, 15           # a spike reaches its target axon 1-15 ticks later (MER14 [sec])
SLOTS = DELAY_MAX + 1                  # ring buffer of the axon scheduler: this tick and 15 ahead
CORE_BLOCK = 32                        # cores per parallel work item (one counts buffer each); a tuning choice
TICKS_PER_CALL = 100                   # ticks per kernel call, between progress-bar updates


def placement(cores) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(chip, x, y) of core indices ``cores``: chip k // 4096, mesh ((k % 4096) % 64, (k % 4096) // 64)."""
    k = np.asarray(cores, np.int64)
    local = k % CHIP_CORES
    return k // CHIP_CORES, local % MESH_SIDE, local // MESH_SIDE


# --- the chip's description ------------------------------------------------------------------------------------

def _int_table(name: str, value, shape: tuple, what: str) -> np.ndarray:
    """``value`` as an int64 array of ``shape`` (None = any length), or a one-line NeuroError."""
    arr = np.asarray(value)
    if arr.size == 0 and len(shape) == 2:
        arr = arr.reshape(0, shape[1]).astype(np.int64)
    if arr.dtype.kind not in "iu" or arr.ndim != len(shape) or any(
            s is not None and n != s for n, s in zip(arr.shape, shape)):
        want = ", ".join("n" if s is None else str(s) for s in shape)
        raise NeuroError(f"Chip: {name} has shape {arr.shape} and dtype {arr.dtype}: give an integer ({want}) "
                         f"array of {what}")
    return arr.astype(np.int64)


def _check_column(name: str, rows: np.ndarray, column: int, field_name: str, lo: int, hi: int, why: str):
    """A one-line NeuroError naming the first row of ``rows`` whose ``column`` is outside [lo, hi]."""
    bad = np.flatnonzero((rows[:, column] < lo) | (rows[:, column] > hi))
    if len(bad):
        r = int(bad[0])
        raise NeuroError(f"Chip: {name} row {r}: {field_name} is {int(rows[r, column])}, not in [{lo}, {hi}]: {why}")


@dataclass
class Chip:
    """Cores, per-neuron routes, external inputs and recorded outputs; checked and compiled on construction
    (build a new Chip after changing a field).

    ``routes`` (n_cores, 256, 3): per neuron (target core, target axon, delay 1..15), target core -1 = not
    routed on chip. ``inputs`` rows (input index, core, axon): input i active in tick t makes that axon active
    in tick t. ``outputs`` rows (core, neuron, output index): that neuron's spikes are output channel
    ``output index``. Core k is placed as ``placement(k)``.
    """

    cores: list
    routes: np.ndarray
    inputs: np.ndarray
    outputs: np.ndarray
    n_inputs: int
    n_outputs: int
    _program: tuple = field(init=False, repr=False, compare=False)

    def __post_init__(self):
        if not isinstance(self.cores, (list, tuple)) or not self.cores:
            raise NeuroError("Chip: cores must be a non-empty list of chips.truenorth.CoreConfig")
        for k, core in enumerate(self.cores):
            if not isinstance(core, CoreConfig):
                raise NeuroError(f"Chip: cores[{k}] is a {type(core).__name__}: give a chips.truenorth.CoreConfig")
        for name in ("n_inputs", "n_outputs"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
                raise NeuroError(f"Chip: {name} is {value!r}: give an integer >= 0")
        n = len(self.cores)
        self.routes = _int_table("routes", self.routes, (n, CORE_NEURONS, 3),
                                 "(target core, target axon, delay) per core and neuron")
        self._check_routes(n)
        self.inputs = _int_table("inputs", self.inputs, (None, 3), "(input index, core, axon) rows")
        for column, (what, hi) in enumerate((("input index", self.n_inputs - 1), ("core", n - 1),
                                             ("axon", CORE_AXONS - 1))):
            _check_column("inputs", self.inputs, column, what, 0, hi, f"give a {what} in range")
        self.outputs = _int_table("outputs", self.outputs, (None, 3), "(core, neuron, output index) rows")
        for column, (what, hi) in enumerate((("core", n - 1), ("neuron", CORE_NEURONS - 1),
                                             ("output index", self.n_outputs - 1))):
            _check_column("outputs", self.outputs, column, what, 0, hi, f"give a {what} in range")
        self._program = _compile(self)

    def _check_routes(self, n: int):
        target, axon, delay = self.routes[..., 0], self.routes[..., 1], self.routes[..., 2]
        routed = target >= 0
        for bad, what, value, limits, why in (
                (target < -1, "target core", target, f"[-1, {n - 1}]", "give a core index, or -1 for not routed"),
                (target >= n, "target core", target, f"[-1, {n - 1}]", "give a core index, or -1 for not routed"),
                (routed & ((axon < 0) | (axon >= CORE_AXONS)), "target axon", axon, f"[0, {CORE_AXONS - 1}]",
                 "a core has 256 axons (MER14)"),
                (routed & ((delay < DELAY_MIN) | (delay > DELAY_MAX)), "delay", delay,
                 f"[{DELAY_MIN}, {DELAY_MAX}]", "a spike reaches its axon 1-15 ticks later (MER14)")):
            if bad.any():
                k, j = (int(i) for i in np.argwhere(bad)[0])
                raise NeuroError(f"Chip: routes of core {k}, neuron {j}: {what} is {int(value[k, j])}, "
                                 f"not in {limits}: {why}")


@dataclass
class ChipRun:
    """What ``run_chip`` measured over ``ticks`` ticks."""

    spikes: np.ndarray       # (T, n_outputs) bool: output spikes emitted in tick t
    sops: int                # active axon x set crossbar bit (MER14), summed over the run
    neuron_spikes: int       # all neuron spikes of all cores
    hops: int                # sum over routed spikes of mesh_hops(source, target), same chip
    chip_crossings: int      # routed spikes whose target core is on another chip
    ticks: int


def _csr(keys: np.ndarray, values: np.ndarray, n_keys: int) -> tuple[np.ndarray, np.ndarray]:
    """(pointers (n_keys + 1), values grouped by key in row order)."""
    order = np.argsort(keys, kind="stable")
    ptr = np.zeros(n_keys + 1, np.int64)
    ptr[1:] = np.cumsum(np.bincount(keys, minlength=n_keys))
    return ptr, values[order]


ROUTE = np.dtype([("dest", np.int32),       # target axon, core x 256 + axon; -1 = not routed on chip
                  ("delay", np.uint8), ("hops", np.uint8), ("crossing", np.uint8),
                  ("output", np.uint8)])     # 1: the neuron's spikes are recorded
# one 8-byte record per neuron: routing a spike reads one record (it is a random access into a large table)


def _compile(chip: Chip) -> tuple:
    """The kernel's arrays: stacked neuron parameters, crossbars as CSR by axon, routes, inputs, outputs."""
    n = len(chip.cores)
    params = [np.empty((n, *p.shape), p.dtype) for p in chip.cores[0].kernel_params()]
    v0 = np.empty((n, CORE_NEURONS), np.int32)
    row_bits = np.empty(n * CORE_AXONS, np.int64)
    synapses = []                                     # per core: g 256 + j of each set bit, by axon then neuron
    for k, core in enumerate(chip.cores):
        for stacked, p in zip(params, core.kernel_params()):
            stacked[k] = p
        v0[k] = core.v0
        axon, neuron = np.nonzero(core.crossbar)
        row_bits[k * CORE_AXONS:(k + 1) * CORE_AXONS] = np.bincount(axon, minlength=CORE_AXONS)
        synapses.append((core.axon_types[axon] * CORE_NEURONS + neuron).astype(np.int16))
    ptr = np.zeros(n * CORE_AXONS + 1, np.int64)
    ptr[1:] = np.cumsum(row_bits)
    idx = np.concatenate(synapses)

    target = chip.routes[..., 0].reshape(-1)
    routed = target >= 0
    source = np.repeat(np.arange(n), CORE_NEURONS)
    (src_chip, sx, sy), (dst_chip, dx, dy) = placement(source), placement(np.maximum(target, 0))
    same = routed & (src_chip == dst_chip)
    route = np.zeros(n * CORE_NEURONS, ROUTE)
    route["dest"] = np.where(routed, target * CORE_AXONS + chip.routes[..., 1].reshape(-1), -1)
    route["delay"] = chip.routes[..., 2].reshape(-1)
    route["hops"] = np.where(same, mesh_hops(np.stack([sx, sy], -1), np.stack([dx, dy], -1)), 0)
    route["crossing"] = routed & ~same
    out = chip.outputs
    route["output"][out[:, 0] * CORE_NEURONS + out[:, 1]] = 1

    inp = chip.inputs
    in_ptr, in_dest = _csr(inp[:, 0], inp[:, 1] * CORE_AXONS + inp[:, 2], chip.n_inputs)
    out_ptr, out_idx = _csr(out[:, 0] * CORE_NEURONS + out[:, 1], out[:, 2], n * CORE_NEURONS)
    return (tuple(params), v0, ptr, idx, route, in_ptr, in_dest, out_ptr, out_idx)


# --- the kernel -----------------------------------------------------------------------------------------------------

@njit(nogil=True, cache=True, parallel=True)
def _run_ticks(t0, x, out, active, v, rng, spiked, targets, recorded, n_fired, core_totals, totals, ptr, idx, route,
               in_ptr, in_dest, out_ptr, out_idx, weights, stochastic_synapse, leak, leak_reversal,
               stochastic_leak, alpha, beta, mask, reset, mode, kappa):
    """Ticks t0 .. t0 + len(x) - 1: ``active`` (16, cores x 256) the axon scheduler, ``v`` and ``rng`` per
    core; writes output spikes into ``out``, adds SOPs, spikes, hops, crossings to ``totals``.

    The parallel pass also looks up each spike's route (a random read into a large table); the serial pass only
    sets the target axons."""
    n = v.shape[0]
    blocks = (n + CORE_BLOCK - 1) // CORE_BLOCK
    for step in range(x.shape[0]):
        slot = (t0 + step) % SLOTS
        for i in range(x.shape[1]):                       # (1) external inputs, delay 0
            if x[step, i]:
                for p in range(in_ptr[i], in_ptr[i + 1]):
                    active[slot, in_dest[p]] = 1
        for blk in prange(blocks):                        # (2) every core, in parallel
            counts = np.zeros(AXON_TYPES * CORE_NEURONS, np.int32)
            for k in range(blk * CORE_BLOCK, min(n, (blk + 1) * CORE_BLOCK)):
                counts[:] = 0
                sops = 0
                for a in range(k * CORE_AXONS, (k + 1) * CORE_AXONS):
                    if active[slot, a]:
                        active[slot, a] = 0
                        for p in range(ptr[a], ptr[a + 1]):
                            counts[idx[p]] += 1
                        sops += ptr[a + 1] - ptr[a]
                m = core_update(counts, v[k], spiked[k], rng, k, weights[k], stochastic_synapse[k], leak[k],
                                leak_reversal[k], stochastic_leak[k], alpha[k], beta[k], mask[k], reset[k], mode[k],
                                kappa[k])
                hops = crossings = q = 0
                if m:
                    for j in range(CORE_NEURONS):
                        if spiked[k, j]:
                            r = route[k * CORE_NEURONS + j]
                            # the target axon's flat index in active (-1: none); the neuron if recorded (else -1)
                            targets[k, q] = ((slot + r.delay) % SLOTS) * active.shape[1] + r.dest if r.dest >= 0 else -1
                            recorded[k, q] = k * CORE_NEURONS + j if r.output else -1
                            hops += r.hops
                            crossings += r.crossing
                            q += 1
                n_fired[k] = m
                core_totals[k, 0], core_totals[k, 1], core_totals[k, 2] = sops, hops, crossings
        flat = active.reshape(-1)
        for k in range(n):                                # (3) route and record, serially
            totals[0] += core_totals[k, 0]
            totals[1] += n_fired[k]
            totals[2] += core_totals[k, 1]
            totals[3] += core_totals[k, 2]
            for q in range(n_fired[k]):
                if targets[k, q] >= 0:
                    flat[targets[k, q]] = 1
                neuron = recorded[k, q]
                if neuron >= 0:
                    for p in range(out_ptr[neuron], out_ptr[neuron + 1]):
                        out[step, out_idx[p]] = True


def _input_spikes(input_spikes, n_inputs: int) -> np.ndarray:
    """(T, n_inputs) bool, or a one-line NeuroError."""
    arr = np.asarray(input_spikes)
    if arr.ndim != 2 or arr.shape[1] != n_inputs or arr.shape[0] < 1:
        raise NeuroError(f"input_spikes has shape {arr.shape}: give a (T, {n_inputs}) bool array "
                         f"(T >= 1 ticks x the chip's n_inputs)")
    if arr.dtype != bool and (arr.dtype.kind not in "iuf" or not np.isin(arr, (0, 1)).all()):
        raise NeuroError("input_spikes must be bool (or 0/1): an input is active in a tick or not")
    return np.ascontiguousarray(arr, dtype=bool)


def run_chip(chip: Chip, input_spikes, seed: int = 0, progress: bool = False) -> ChipRun:
    """Run ``chip`` for T ticks: ``input_spikes`` (T, n_inputs) bool, row t active in tick t; core k's
    generator starts from ``seed_state(seed + k)``."""
    if not isinstance(chip, Chip):
        raise NeuroError(f"chip must be a chips.truenorth.chip.Chip, got {type(chip).__name__}")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise NeuroError(f"seed must be an integer, got {seed!r}")
    x = _input_spikes(input_spikes, chip.n_inputs)
    params, v0, *arrays = chip._program
    n, T = len(chip.cores), len(x)
    v, rng = v0.copy(), np.array([seed_state(int(seed) + k) for k in range(n)], np.int64)
    active = np.zeros((SLOTS, n * CORE_AXONS), np.uint8)
    spiked = np.zeros((n, CORE_NEURONS), np.uint8)
    targets, recorded = np.zeros((n, CORE_NEURONS), np.int64), np.zeros((n, CORE_NEURONS), np.int64)  # per spike
    n_fired = np.zeros(n, np.int64)
    core_totals, totals = np.zeros((n, 3), np.int64), np.zeros(4, np.int64)
    out = np.zeros((T, chip.n_outputs), bool)
    with tqdm(total=T, unit="tick", disable=not progress, leave=False, desc=f"TrueNorth {n} cores") as bar:
        for t0 in range(0, T, TICKS_PER_CALL):
            t1 = min(T, t0 + TICKS_PER_CALL)
            _run_ticks(t0, x[t0:t1], out[t0:t1], active, v, rng, spiked, targets, recorded, n_fired, core_totals, totals,
                       *arrays, *params)
            bar.update(t1 - t0)
    sops, spikes, hops, crossings = (int(c) for c in totals)
    return ChipRun(spikes=out, sops=sops, neuron_spikes=spikes, hops=hops, chip_crossings=crossings, ticks=T)


# --- the MER14 benchmark workload ------------------------------------------------------------------------------------

MER14_RATE_HZ = 20.0                   # mean firing rate of MER14's power benchmark (MER14 p.7, AKO15 sec. VII [sec])
MER14_SYNAPSES = 128                   # active synapses per neuron in that benchmark (same sources [sec])
MER14_WEIGHT = 2                       # our choice: +2 / -2 per synapse type; see mer14_workload
HALF = CORE_AXONS // 2                 # axons 0..127 are excitatory (type 0), 128..255 inhibitory (type 1)


def mer14_workload(cores: int = CHIP_CORES, rate_hz: float = MER14_RATE_HZ, synapses: int = MER14_SYNAPSES,
                   seed: int = 0) -> Chip:
    """A recurrent chip shaped like MER14's benchmark: every neuron fires at ``rate_hz`` on average (1 kHz
    tick) and each of its spikes reaches an axon with ``synapses`` set crossbar bits (SOPs per spike).

    The construction (our choice; MER14 does not publish its network): every core's crossbar column has
    synapses / 2 set bits among the 128 type-0 axons (weight +2) and as many among the 128 type-1 axons
    (weight -2), and every axon row has ``synapses`` set bits (a circulant pattern with random row and column
    permutations per core). Neurons are routed by one random permutation of all axons of the chip(s), delay 1,
    so every axon has exactly one source neuron. Each neuron has leak +1, threshold alpha = round(1000 /
    rate_hz), subtractive reset and a floor far away (beta = 2^18 - 1): then V = v0 + t - alpha x spikes +
    (balanced input of mean 0), so in the long run every neuron fires 1 / alpha per tick, 20 Hz for
    alpha = 50. The +-2 synapses make the intervals irregular; a larger weight makes the balanced network's
    rate feedback (about 2 x sqrt(128) / alpha) exceed 1. v0 is uniform in [0, alpha) so the neurons
    start out of phase. No stochastic features (no draws).
    """
    for name, value in (("cores", cores), ("synapses", synapses), ("seed", seed)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
            raise NeuroError(f"mer14_workload: {name} is {value!r}: give an integer")
    if cores < 1:
        raise NeuroError(f"mer14_workload: cores is {cores}: give at least 1")
    if synapses % 2 or not 2 <= synapses <= CORE_AXONS:
        raise NeuroError(f"mer14_workload: synapses is {synapses}: give an even number in [2, {CORE_AXONS}] "
                         f"(half excitatory, half inhibitory)")
    alpha = round(TICK_HZ / rate_hz) if isinstance(rate_hz, (int, float)) and rate_hz > 0 else 0
    if not 1 <= alpha <= THRESHOLD_MAX:
        raise NeuroError(f"mer14_workload: rate_hz is {rate_hz!r}: give a rate in [{TICK_HZ / THRESHOLD_MAX:.3g}, "
                         f"{TICK_HZ:g}] Hz (one spike every 1..2^18 - 1 ticks at 1 kHz)")
    rng = np.random.default_rng(seed)
    per_half = synapses // 2
    circulant = (np.arange(HALF)[:, None] - np.arange(CORE_NEURONS)[None, :]) % HALF < per_half   # (128, 256)
    types = np.repeat([0, 1], HALF)
    weights = np.zeros((CORE_NEURONS, AXON_TYPES), np.int64)
    weights[:, 0], weights[:, 1] = MER14_WEIGHT, -MER14_WEIGHT
    configs = []
    for _ in range(cores):
        halves = [circulant[rng.permutation(HALF)][:, rng.permutation(CORE_NEURONS)] for _ in range(2)]
        configs.append(CoreConfig(
            crossbar=np.concatenate(halves), axon_types=types, weights=weights,
            stochastic_synapse=np.zeros((CORE_NEURONS, AXON_TYPES), bool), leak=1, leak_reversal=0,
            stochastic_leak=0, alpha=alpha, beta=THRESHOLD_MAX, threshold_mask_bits=0, reset_value=0,
            reset_mode=1, kappa=1, v0=rng.integers(0, alpha, CORE_NEURONS)))
    axons = rng.permutation(cores * CORE_AXONS)
    routes = np.stack([axons // CORE_AXONS, axons % CORE_AXONS, np.ones_like(axons)], -1)
    return Chip(cores=configs, routes=routes.reshape(cores, CORE_NEURONS, 3), inputs=np.zeros((0, 3), np.int64),
                outputs=np.zeros((0, 3), np.int64), n_inputs=0, n_outputs=0)
