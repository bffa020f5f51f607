"""TrueNorth core: hand-derived traces per mode, CAS13-style behaviours, stochastic statistics, a literal
reference of docs/references.md's equations on random cores, seeding, bad inputs."""

import numpy as np
import pytest

from neuro.encode import Playback
from chips.truenorth.core import (THRESHOLD_MAX, V_MAX, V_MIN, CoreConfig, TrueNorthBackend, _draw, core_snn,
                                  seed_state, simulate_core)
from neuro.errors import NeuroError
from neuro.sim import Engine

N = 256


def _core(connect=(), types=None, **params):
    """A core with no synapses but ``connect`` = [(axon, neuron, weight)] on the axon's type; all neurons
    get ``params`` (one value or 256); defaults: no leak, deterministic, thresholds out of reach."""
    spec = dict(crossbar=np.zeros((N, N), bool), axon_types=np.zeros(N, int) if types is None else types,
                weights=np.zeros((N, 4), int), stochastic_synapse=np.zeros((N, 4), bool), leak=0,
                leak_reversal=0, stochastic_leak=0, alpha=THRESHOLD_MAX, beta=THRESHOLD_MAX,
                threshold_mask_bits=0, reset_value=0, reset_mode=0, kappa=1, v0=0)
    for axon, neuron, weight in connect:
        spec["crossbar"][axon, neuron] = True
        spec["weights"][neuron, spec["axon_types"][axon]] = weight
    spec.update(params)
    return CoreConfig(**spec)


def _inputs(T, active=(0,)):
    """(T, 256): the axons in ``active`` spike every tick."""
    x = np.zeros((T, N), bool)
    x[:, list(active)] = True
    return x


# --- the documented generator, re-derived from the module docstring ----------------------------------------

def _splitmix_low32(seed):
    m = (1 << 64) - 1
    z = (seed + 0x9E3779B97F4A7C15) & m
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & m
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & m
    return ((z ^ (z >> 31)) & 0xFFFFFFFF) or 1


def _rho_stream(seed):
    x = _splitmix_low32(seed)
    while True:
        x ^= (x << 13) & 0xFFFFFFFF
        x ^= x >> 17
        x ^= (x << 5) & 0xFFFFFFFF
        yield x >> 24


def test_generator_known_answers():
    # SplitMix64's first outputs for seeds 0 and 1234567 are 0xE220A8397B1DCDAF and 6457827717110365317
    assert seed_state(0) == 0x7B1DCDAF
    assert seed_state(1234567) == 6457827717110365317 & 0xFFFFFFFF
    for seed in (1, 2, 2**40, -5):
        assert seed_state(seed) == _splitmix_low32(seed)
    # Marsaglia 2003's xorshift32 example: y = 2463534242 -> 723471715; rho is its top byte
    state = np.array([2463534242], np.int64)
    assert _draw(state, 0) == 723471715 >> 24 and state[0] == 723471715


# --- deterministic modes, hand-derived ---------------------------------------------------------------------

def test_integration_uses_the_weight_of_each_axon_type():
    types = np.zeros(N, int)
    types[[1, 2]] = [1, 3]
    weights = np.zeros((N, 4), int)
    weights[0] = [3, -2, 100, 7]   # type 2: no axon of that type reaches neuron 0
    core = _core([(0, 0, 3), (1, 0, -2), (2, 0, 7)], types=types, weights=weights)
    x = np.zeros((4, N), bool)
    x[0, 0] = x[1, [0, 1]] = x[2, [2, 3]] = True   # axon 3 (type 0) is not connected to neuron 0
    spikes, v = simulate_core(core, x)
    np.testing.assert_array_equal(v[:, 0], [3, 4, 11, 11])
    assert not spikes.any() and not v[:, 1:].any()


@pytest.mark.parametrize("mode,v_trace,spike_ticks", [
    (0, [2, 4, 1, 3, 1, 3, 1, 3], [2, 4, 6]),        # reset to R = 1
    (1, [2, 4, 1, 3, 0, 2, 4, 1], [2, 4, 7]),        # subtract alpha = 5
    (2, [2, 4, 6, 8, 10, 12, 14, 16], [2, 3, 4, 5, 6, 7]),  # no reset
])
def test_positive_reset_modes(mode, v_trace, spike_ticks):
    # +2 per tick, alpha 5: the tick that reaches >= 5 spikes and resets by mode
    core = _core([(0, 0, 2)], alpha=5, reset_value=1, reset_mode=mode)
    spikes, v = simulate_core(core, _inputs(8))
    np.testing.assert_array_equal(v[:, 0], v_trace)
    np.testing.assert_array_equal(np.flatnonzero(spikes[:, 0]), spike_ticks)


@pytest.mark.parametrize("kappa,mode,v_trace", [
    (1, 0, [-2, -3, -3, -3, -3, -3, -3]),    # saturate at -beta whatever the reset mode
    (1, 1, [-2, -3, -3, -3, -3, -3, -3]),
    (0, 0, [-2, -1, -3, -1, -3, -1, -3]),    # below -3: V = -R = -1
    (0, 1, [-2, -1, -3, -2, -1, -3, -2]),    # below -3: V += beta = 3
    (0, 2, [-2, -4, -6, -8, -10, -12, -14]),  # no reset
])
def test_negative_threshold_saturate_or_reset(kappa, mode, v_trace):
    core = _core([(0, 0, -2)], alpha=5, beta=3, reset_value=1, reset_mode=mode, kappa=kappa)
    spikes, v = simulate_core(core, _inputs(7))
    np.testing.assert_array_equal(v[:, 0], v_trace)
    assert not spikes.any()


def test_leak_and_leak_reversal():
    v0 = [3, -3, 6, -6, 3, -3, 0, 1]
    leak = [-1, 2, -2, -2, 2, 2, 2, -2]
    reversal = [0, 0, 1, 1, 1, 1, 1, 1]
    core = _core(v0=np.resize(v0, N), leak=np.resize(leak, N), leak_reversal=np.resize(reversal, N))
    spikes, v = simulate_core(core, _inputs(4, active=()))
    np.testing.assert_array_equal(v[:, :8].T, [
        [2, 1, 0, -1],       # constant leak, crosses zero
        [-1, 1, 3, 5],
        [4, 2, 0, 0],        # reversal, lambda < 0: toward zero, then Omega = sgn(0) = 0
        [-4, -2, 0, 0],
        [5, 7, 9, 11],       # reversal, lambda > 0: away from zero on either side
        [-5, -7, -9, -11],
        [0, 0, 0, 0],
        [-1, 1, -1, 1],      # the equation overshoots: |lambda| > |V| flips the sign
    ])


def test_threshold_mask_draws_eta_from_the_documented_stream():
    # only neuron 0 draws (TM 3): spike iff V = 3 >= alpha + (rho & 7), alpha 0, no reset keeps V
    tm = np.zeros(N, int)
    tm[0] = 3
    core = _core(v0=3, alpha=0, threshold_mask_bits=tm, reset_mode=2)
    spikes, v = simulate_core(core, _inputs(64, active=()), seed=7)
    rho = _rho_stream(7)
    np.testing.assert_array_equal(spikes[:, 0], [3 >= (next(rho) & 7) for _ in range(64)])
    assert 0 < spikes[:, 0].sum() < 64
    assert spikes[:, 1:].all() and (v == 3).all()   # TM 0: eta = 0, 3 >= 0 every tick


def test_subtract_reset_removes_alpha_plus_eta():
    # V = 10 and alpha 4, TM 2: spike every tick, V -= 4 + eta, then +10 next tick
    tm = np.zeros(N, int)
    tm[0] = 2
    core = _core([(0, 0, 10)], alpha=4, threshold_mask_bits=tm, reset_mode=1)
    spikes, v = simulate_core(core, _inputs(20), seed=3)
    rho, expected, vv = _rho_stream(3), [], 0
    for _ in range(20):
        vv += 10
        eta = next(rho) & 3
        vv -= 4 + eta if vv >= 4 + eta else 0
        expected.append(vv)
    np.testing.assert_array_equal(v[:, 0], expected)


def test_potential_saturates_at_20_bits():
    # +255 x 256 axons = +65280 per tick with no reset; -256 x 256 = -65536 per tick with no negative reset
    connect = [(i, 0, 255) for i in range(N)] + [(i, 1, -256) for i in range(N)]
    mode = np.full(N, 2)
    kappa = np.ones(N, int)
    kappa[1] = 0
    core = _core(connect, reset_mode=mode, kappa=kappa)
    spikes, v = simulate_core(core, _inputs(12, active=range(N)))
    up = np.minimum(65280 * np.arange(1, 13), V_MAX)
    down = np.maximum(-65536 * np.arange(1, 13), V_MIN)
    np.testing.assert_array_equal(v[:, 0], up)
    np.testing.assert_array_equal(v[:, 1], down)
    assert v[-1, 0] == 2**19 - 1 and v[-1, 1] == -2**19
    np.testing.assert_array_equal(spikes[:, 0], up >= THRESHOLD_MAX)   # no reset: spikes on at the top


# --- behaviours used to validate TrueNorth simulators (CAS13, Izhikevich's set) --------------------------------

def test_phasic_spiking_one_spike_at_onset():
    """One spike when a sustained input starts, none after it (Izhikevich 2004, "phasic spiking").

    Derived: input +5 per tick on axon 0 from tick 10 to 29; leak reversal with lambda = +10 pushes V away
    from 0. At rest V = 0 stays (Omega = 0). First input tick: 0 + 5 + 10 = 15 >= alpha 15: spike, V = R =
    -10. Below zero the leak (-10) beats the input (+5): V falls 5 per tick to -beta = -100 (kappa 1 saturates
    there) and stays, input or not."""
    core = _core([(0, 0, 5)], leak=10, leak_reversal=1, alpha=15, beta=100, reset_value=-10, reset_mode=0)
    x = np.zeros((40, N), bool)
    x[10:30, 0] = True
    spikes, v = simulate_core(core, x)
    np.testing.assert_array_equal(np.flatnonzero(spikes[:, 0]), [10])
    np.testing.assert_array_equal(v[9:16, 0], [0, -10, -15, -20, -25, -30, -35])
    assert (v[28:, 0] == -100).all()


def test_tonic_bursting_from_a_pacemaker_and_a_burst_neuron():
    """Periodic bursts of 3 spikes under a constant input (Izhikevich 2004, "tonic bursting").

    One neuron cannot burst under a constant input: V is its only state; a reset to R repeats one trajectory
    (one interval), and subtracting alpha keeps V >= 0, where the drive per tick is constant (but at V = 0),
    so intervals stay within a tick of each other: no silences between bursts. Two neurons can:
    pacemaker P (neuron 0) integrates the input (+1 per tick, alpha 10, reset to 0) and spikes every 10
    ticks; its spike is routed to axon 1 (delay 1 tick, as TrueNorth routes each neuron to one axon),
    where it gives burst neuron B (neuron 1) +150 = 3 alpha_B; B subtracts alpha_B = 50 per spike, so it
    spikes on 3 consecutive ticks and falls silent at V = 0. The routing is closed by running the core
    with P's output, one tick later, on axon 1 (P does not see axon 1, so its output is unchanged)."""
    types = np.zeros(N, int)
    types[1] = 1
    alpha = np.full(N, THRESHOLD_MAX)
    alpha[:2] = [10, 50]
    core = _core([(0, 0, 1), (1, 1, 150)], types=types, alpha=alpha, reset_mode=np.resize([0, 1], N))
    x = _inputs(45)
    pacemaker = simulate_core(core, x)[0][:, 0]
    x[1:, 1] = pacemaker[:-1]
    spikes, v = simulate_core(core, x)
    np.testing.assert_array_equal(spikes[:, 0], pacemaker)
    np.testing.assert_array_equal(np.flatnonzero(spikes[:, 0]), [9, 19, 29, 39])
    np.testing.assert_array_equal(np.flatnonzero(spikes[:, 1]), [10, 11, 12, 20, 21, 22, 30, 31, 32, 40, 41, 42])
    np.testing.assert_array_equal(v[10:14, 1], [100, 50, 0, 0])


# --- stochastic modes: statistics -----------------------------------------------------------------------------

def _p_stochastic(s):
    """P(F(s, rho) != 0) for rho uniform on 0..255: (|s| + 1) / 256, 1 at |s| = 256, 0 at s = 0."""
    s = np.abs(np.asarray(s))
    return np.where(s == 0, 0.0, np.minimum(s + 1, 256) / 256)


def test_stochastic_synapse_mean_and_independent_draws():
    # 4 active axons of type 0 per neuron per tick; neuron j has s = 2 j - 256 (-256..254), stochastic
    T, k = 2000, 4
    s = 2 * np.arange(N) - 256
    stochastic = np.zeros((N, 4), bool)
    stochastic[:, 0] = True
    core = _core([(i, j, 0) for i in range(k) for j in range(N)], weights=np.stack([s, s, s, s], 1),
                 stochastic_synapse=stochastic)
    _, v = simulate_core(core, _inputs(T, active=range(k)), seed=11)
    inc = np.diff(v, axis=0, prepend=0)
    p = _p_stochastic(s)
    np.testing.assert_array_equal(np.abs(inc) <= k, True)
    assert (np.sign(inc) * np.sign(s) >= 0).all()                       # increments carry the sign of s
    mean_err = inc.mean(axis=0) - k * np.sign(s) * p
    sigma = np.sqrt(k * p * (1 - p) / T)
    assert (np.abs(mean_err) <= 5 * sigma + 1e-9).all()
    # one draw per event: the variance is Binomial(4, p), not that of a shared draw (4x larger)
    ratio = inc.var(axis=0).sum() / (k * p * (1 - p)).sum()
    assert 0.9 < ratio < 1.1
    np.testing.assert_array_equal(inc[:, 0], -k)                         # s = -256: always -1 per event
    assert abs(inc[:, N // 2 + 50].mean() - k * 101 / 256) < 0.1        # s = 100: about |s| / 256 per event


def test_stochastic_leak_mean_and_omega_sign():
    # neurons 0..127: no reversal; 128..255: reversal with V far from 0 (odd j positive, even j negative)
    T = 2000
    j = np.arange(N)
    lam = (j % 128) * 4 - 256
    reversal = (j >= 128).astype(int)
    v0 = np.where(j < 128, 0, np.where(j % 2, 100_000, -100_000))
    core = _core(leak=lam, leak_reversal=reversal, stochastic_leak=1, v0=v0)
    _, v = simulate_core(core, _inputs(T, active=()), seed=5)
    omega = np.where(j < 128, 1, np.sign(v0))
    p = _p_stochastic(lam)
    mean = (v[-1] - v0) / T
    assert (np.abs(mean - omega * np.sign(lam) * p) <= 5 * np.sqrt(p * (1 - p) / T) + 1e-9).all()
    assert (np.sign(v[-1] - v0) * omega * np.sign(lam) >= 0).all()       # Omega multiplies the stochastic leak


def test_stochastic_threshold_spike_probability():
    # V = alpha + d held (no reset), TM 3: spike iff eta = rho & 7 <= d, P = (d + 1) / 8
    T = 2000
    d = np.arange(N) % 9 - 1
    core = _core(v0=100 + d, alpha=100, threshold_mask_bits=3, reset_mode=2)
    spikes, _ = simulate_core(core, _inputs(T, active=()), seed=9)
    p = np.clip(d + 1, 0, 8) / 8
    assert (np.abs(spikes.mean(axis=0) - p) <= 5 * np.sqrt(p * (1 - p) / T) + 1e-9).all()


# --- the literal equations on random cores (every mode, stochastic ones included) -------------------------

def _random_core(rng, deterministic_share=0.0):
    """Random parameters in every mode; a ``deterministic_share`` of the neurons draws no random numbers (no
    stochastic synapse, leak or threshold: the kernel's other path)."""
    def per_neuron(lo, hi):
        return rng.integers(lo, hi + 1, N)
    draws = rng.random(N) >= deterministic_share
    return _core(crossbar=rng.random((N, N)) < 0.1, types=rng.integers(0, 4, N),
                 weights=rng.integers(-256, 256, (N, 4)),
                 stochastic_synapse=(rng.random((N, 4)) < 0.3) & draws[:, None],
                 leak=per_neuron(-20, 20), leak_reversal=per_neuron(0, 1), stochastic_leak=per_neuron(0, 1) * draws,
                 alpha=per_neuron(0, 300), beta=per_neuron(0, 300), threshold_mask_bits=per_neuron(0, 8) * draws,
                 reset_value=per_neuron(-200, 200), reset_mode=per_neuron(0, 2), kappa=per_neuron(0, 1),
                 v0=per_neuron(-300, 300))


def _delta(a):
    return int(a == 0)


def _F(s, r):
    return int(np.sign(s)) if abs(s) >= r else 0


def _reference(core, x, seed):
    """docs/references.md "TrueNorth neuron" written out with its delta functions, draws in the documented order."""
    rho = _rho_stream(seed)
    sgn, delta, F = np.sign, _delta, _F
    v = core.v0.astype(np.int64).copy()
    spikes_out, v_out = [], []
    for t in range(len(x)):
        spikes = np.zeros(N, bool)
        for j in range(N):
            V = int(v[j])
            for g in range(4):
                k = int((x[t] & core.crossbar[:, j].astype(bool) & (core.axon_types == g)).sum())
                s, b = int(core.weights[j, g]), int(core.stochastic_synapse[j, g])
                V += sum(F(s, next(rho)) for _ in range(k)) if b else k * s
            eps, c, lam = int(core.leak_reversal[j]), int(core.stochastic_leak[j]), int(core.leak[j])
            omega = (1 - eps) + eps * int(sgn(V))
            V += omega * ((1 - c) * lam + (c * F(lam, next(rho)) if c else 0))
            tm = int(core.threshold_mask_bits[j])
            eta = next(rho) & ((1 << tm) - 1) if tm else 0
            a, be, R, gm, ka = (int(core.alpha[j]), int(core.beta[j]), int(core.reset_value[j]),
                                int(core.reset_mode[j]), int(core.kappa[j]))
            if V >= a + eta:
                spikes[j] = True
                V = delta(gm) * R + delta(gm - 1) * (V - (a + eta)) + delta(gm - 2) * V
            elif V < -(be * ka + (be + eta) * (1 - ka)):
                V = -be * ka + (-delta(gm) * R + delta(gm - 1) * (V + be + eta) + delta(gm - 2) * V) * (1 - ka)
            v[j] = min(max(V, -2**19), 2**19 - 1)
        spikes_out.append(spikes)
        v_out.append(v.copy())
    return np.array(spikes_out), np.array(v_out)


@pytest.mark.parametrize("seed, deterministic_share", [(0, 0.0), (1, 0.0), (2, 0.5), (3, 1.0)])
def test_matches_the_literal_equations_on_random_cores(seed, deterministic_share):
    rng = np.random.default_rng(seed)
    core = _random_core(rng, deterministic_share)
    x = rng.random((25, N)) < 0.3
    spikes, v = simulate_core(core, x, seed=seed)
    ref_spikes, ref_v = _reference(core, x, seed)
    np.testing.assert_array_equal(v, ref_v)
    np.testing.assert_array_equal(spikes, ref_spikes)
    assert spikes.any() and (~spikes).any()


# --- seeding and the engine seam ----------------------------------------------------------------------------------

def test_seeded_runs_reproduce_and_seeds_differ():
    core = _random_core(np.random.default_rng(3))
    x = np.random.default_rng(4).random((30, N)) < 0.3
    a, b, c = simulate_core(core, x, seed=42), simulate_core(core, x, seed=42), simulate_core(core, x, seed=43)
    np.testing.assert_array_equal(a[1], b[1])
    np.testing.assert_array_equal(a[0], b[0])
    assert (a[1] != c[1]).any()


def test_each_batch_row_is_an_independent_run_of_the_core():
    core = _random_core(np.random.default_rng(5))
    x = np.random.default_rng(6).random((20, N)) < 0.3
    snn = core_snn(core)
    trains = np.stack([x, x, x])
    result = Engine(snn, TrueNorthBackend(core, snn, seed=8), threads=2).run(
        np.zeros((3, N), np.float32), np.zeros(3, int), 20, encoding=Playback(trains), record_steps=True,
        progress=False)
    spikes, v = simulate_core(core, x, seed=8)
    for row in range(3):
        np.testing.assert_array_equal(result.traces[0]["v"][row, :, :N], v)
        np.testing.assert_array_equal(result.traces[0]["spikes"][row, :, :N].astype(bool), spikes)
    assert not result.traces[0]["v"][:, :, N:].any()
    # the engine counts MER14's synaptic operations: active axon x set crossbar bit
    assert result.layers[0].synops == 3 * (x.astype(int) @ core.crossbar.sum(axis=1)).sum()


# --- bad inputs -------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("field,value,message", [
    ("weights", ("at", (3, 1), 256),
     r"weights of neuron 3, type 1 is 256, not an integer in \[-256, 255\]: give a signed 9-bit"),
    ("axon_types", ("at", (7,), 4), r"axon_types of axon 7 is 4, not an integer in \[0, 3\]"),
    ("crossbar", np.zeros((N, N - 1), bool),
     r"crossbar has shape \(256, 255\): give a \(256, 256\) array \[axon, neuron\]"),
    ("crossbar", ("at", (2, 5), 2), r"crossbar of axon 2, neuron 5 is 2, not an integer in \[0, 1\]"),
    ("threshold_mask_bits", ("at", (9,), 9), r"threshold_mask_bits of neuron 9 is 9, not an integer in \[0, 8\]"),
    ("reset_mode", ("at", (0,), 3), r"reset_mode of neuron 0 is 3, not an integer in \[0, 2\]"),
    ("kappa", ("at", (1,), 2), r"kappa of neuron 1 is 2, not an integer in \[0, 1\]"),
    ("v0", ("at", (4,), 2**19), r"v0 of neuron 4 is 524288, not an integer in \[-524288, 524287\]"),
    ("alpha", ("at", (5,), -1), r"alpha of neuron 5 is -1, not an integer in \[0, 262143\]"),
    ("leak", ("at", (6,), 1.5), r"leak of neuron 6 is 1.5, not an integer in \[-256, 255\]"),
    ("beta", ("at", (2,), np.nan), r"beta of neuron 2 is nan"),
    ("leak", np.zeros(N - 1), r"leak has shape \(255,\): give a \(256,\) array \[neuron\] or one value"),
    ("axon_types", np.array(["a"] * N), r"axon_types must hold numbers"),
])
def test_inconsistent_core_parameters_are_one_line_errors(field, value, message):
    spec = dict(crossbar=np.zeros((N, N), bool), axon_types=np.zeros(N, int), weights=np.zeros((N, 4), int),
                stochastic_synapse=np.zeros((N, 4), bool), leak=np.zeros(N), leak_reversal=0, stochastic_leak=0,
                alpha=np.zeros(N), beta=np.zeros(N), threshold_mask_bits=np.zeros(N), reset_value=0,
                reset_mode=np.zeros(N), kappa=np.zeros(N), v0=np.zeros(N))
    if isinstance(value, tuple):
        _, index, bad = value
        arr = np.asarray(spec[field], float if isinstance(bad, float) else int).copy()
        arr[index] = bad
        value = arr
    spec[field] = value
    with pytest.raises(NeuroError, match=message) as err:
        CoreConfig(**spec)
    assert "\n" not in str(err.value)


@pytest.mark.parametrize("axon_spikes,seed,message", [
    (np.zeros((10, N - 1), bool), 0, r"axon_spikes has shape \(10, 255\): give a \(T, 256\) bool array"),
    (np.zeros((0, N), bool), 0, r"axon_spikes has shape \(0, 256\)"),
    (np.full((3, N), 2), 0, r"axon_spikes must be bool \(or 0/1\)"),
    (np.zeros((3, N), bool), 1.5, r"seed must be an integer, got 1.5"),
])
def test_bad_simulate_core_inputs(axon_spikes, seed, message):
    with pytest.raises(NeuroError, match=message):
        simulate_core(_core(), axon_spikes, seed=seed)


def test_simulate_core_needs_a_core_config():
    with pytest.raises(NeuroError, match="core must be a chips.truenorth.CoreConfig, got dict"):
        simulate_core({}, np.zeros((3, N), bool))
