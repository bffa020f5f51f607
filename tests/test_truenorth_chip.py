"""TrueNorth chip: cores chained through routes equal simulate_core per core, recurrence, delays and binary
axons by hand, SOP / hop / chip-crossing counts, thread-count independence, the MER14 workload, bad inputs."""

import numba
import numpy as np
import pytest

from chips.truenorth import THRESHOLD_MAX, CoreConfig, simulate_core
from chips.truenorth.chip import Chip, mer14_workload, placement, run_chip
from neuro.errors import NeuroError

N = 256


def _core(connect=(), **params):
    """A core whose only synapses are ``connect`` = [(axon, neuron, weight)] (all axons type 0); defaults:
    no leak, deterministic, thresholds out of reach."""
    spec = dict(crossbar=np.zeros((N, N), bool), axon_types=np.zeros(N, int), weights=np.zeros((N, 4), int),
                stochastic_synapse=np.zeros((N, 4), bool), leak=0, leak_reversal=0, stochastic_leak=0,
                alpha=THRESHOLD_MAX, beta=THRESHOLD_MAX, threshold_mask_bits=0, reset_value=0, reset_mode=0,
                kappa=1, v0=0)
    for axon, neuron, weight in connect:
        spec["crossbar"][axon, neuron] = True
        spec["weights"][neuron, 0] = weight
    spec.update(params)
    return CoreConfig(**spec)


def _random_core(rng, density=0.1):
    """Every mode and stochastic feature, mixed per neuron (as tests/test_truenorth.py's random cores)."""
    def per_neuron(lo, hi):
        return rng.integers(lo, hi + 1, N)
    return CoreConfig(crossbar=rng.random((N, N)) < density, axon_types=rng.integers(0, 4, N),
                      weights=rng.integers(-256, 256, (N, 4)), stochastic_synapse=rng.random((N, 4)) < 0.3,
                      leak=per_neuron(-20, 20), leak_reversal=per_neuron(0, 1), stochastic_leak=per_neuron(0, 1),
                      alpha=per_neuron(0, 300), beta=per_neuron(0, 300), threshold_mask_bits=per_neuron(0, 8),
                      reset_value=per_neuron(-200, 200), reset_mode=per_neuron(0, 2), kappa=per_neuron(0, 1),
                      v0=per_neuron(-300, 300))


def _routes(n, entries=()):
    """(n, 256, 3) routes, all -1 but ``entries`` = {(core, neuron): (target core, axon, delay)}."""
    routes = np.zeros((n, N, 3), np.int64)
    routes[..., 0] = -1
    for (k, j), route in dict(entries).items():
        routes[k, j] = route
    return routes


def _all_outputs(n):
    """Output rows recording every neuron of ``n`` cores, channel k 256 + j."""
    k, j = np.divmod(np.arange(n * N), N)
    return np.stack([k, j, np.arange(n * N)], -1)


def _inputs(rows):
    return np.array(rows, np.int64).reshape(-1, 3)


# --- against simulate_core --------------------------------------------------------------------------------------

@pytest.mark.parametrize("seed", [0, 7])
def test_feed_forward_chain_equals_simulate_core_per_core(seed):
    rng = np.random.default_rng(seed)
    cores = [_random_core(rng) for _ in range(3)]
    T = 40
    routes = _routes(3)
    for k in (0, 1):                                   # core k -> core k + 1, random axons (collisions kept)
        routes[k, :, 0] = k + 1
        routes[k, :, 1] = rng.integers(0, N, N)
        routes[k, :, 2] = rng.integers(1, 4, N)
    extra = np.arange(250, 254)                        # 4 more inputs onto core 1, OR-ed with routed spikes
    inputs = _inputs([(i, 0, i) for i in range(N)] + [(N + q, 1, a) for q, a in enumerate(extra)])
    chip = Chip(cores, routes, inputs, _all_outputs(3), n_inputs=N + len(extra), n_outputs=3 * N)
    x = rng.random((T, N + len(extra))) < 0.3
    run = run_chip(chip, x, seed=seed)

    axon_in, expected, sops = x[:, :N], [], 0
    for k in range(3):
        spikes, _ = simulate_core(cores[k], axon_in, seed=seed + k)
        expected.append(spikes)
        sops += int((axon_in * cores[k].crossbar.sum(axis=1)).sum())
        if k < 2:
            axon_in = np.zeros((T, N), bool)
            for t, j in zip(*np.nonzero(spikes)):
                if t + routes[k, j, 2] < T:
                    axon_in[t + routes[k, j, 2], routes[k, j, 1]] = True
            if k == 0:
                axon_in[:, extra] |= x[:, N:]
    expected = np.concatenate(expected, axis=1)
    np.testing.assert_array_equal(run.spikes, expected)
    assert all(e.any() for e in np.split(expected, 3, axis=1))
    assert run.neuron_spikes == expected.sum()
    assert run.sops == sops
    assert run.hops == expected[:, :2 * N].sum()      # (0, 0) -> (1, 0) -> (2, 0): one hop each
    assert run.chip_crossings == 0 and run.ticks == T


# --- routing by hand ------------------------------------------------------------------------------------------------

def test_recurrent_route_back_to_its_own_core():
    # neuron 0 (alpha 1) spikes on each input and re-excites its own axon 0 three ticks later; neuron 1 on the
    # same axon subtracts alpha 2, so it spikes on every second activation
    core = _core([(0, 0, 1), (0, 1, 1)], alpha=np.r_[1, 2, np.full(N - 2, THRESHOLD_MAX)], reset_mode=1)
    chip = Chip([core], _routes(1, {(0, 0): (0, 0, 3)}), _inputs([(0, 0, 0)]),
                _inputs([(0, 0, 0), (0, 1, 1)]), n_inputs=1, n_outputs=2)
    x = np.zeros((14, 1), bool)
    x[[0, 1], 0] = True
    run = run_chip(chip, x)
    assert np.flatnonzero(run.spikes[:, 0]).tolist() == [0, 1, 3, 4, 6, 7, 9, 10, 12, 13]
    assert np.flatnonzero(run.spikes[:, 1]).tolist() == [1, 4, 7, 10, 13]
    assert run.hops == 0 and run.neuron_spikes == 15 and run.sops == 2 * 10


def test_delay_15_and_two_spikes_on_one_axon_are_one_activation():
    # core 0: input axon 0 drives neurons 0, 1, 2 (alpha 1); 0 -> core 1 axon 0 after 15 ticks; 1 and 2 -> core 1
    # axon 1 after 1 tick. Core 1: axon 0 -> neuron 0 (alpha 1); axon 1 -> neuron 1 (alpha 2) and 3 (alpha 1)
    alpha1 = np.full(N, THRESHOLD_MAX)
    alpha1[[0, 3]], alpha1[1] = 1, 2
    cores = [_core([(0, j, 1) for j in range(3)], alpha=np.r_[1, 1, 1, np.full(N - 3, THRESHOLD_MAX)]),
             _core([(0, 0, 1), (1, 1, 1), (1, 3, 1)], alpha=alpha1)]
    routes = _routes(2, {(0, 0): (1, 0, 15), (0, 1): (1, 1, 1), (0, 2): (1, 1, 1)})
    chip = Chip(cores, routes, _inputs([(0, 0, 0)]), _inputs([(1, 0, 0), (1, 1, 1), (1, 3, 2)]),
                n_inputs=1, n_outputs=3)
    x = np.zeros((40, 1), bool)
    x[[0, 20], 0] = True                                  # the second one wraps the 16-slot ring buffer
    run = run_chip(chip, x)
    assert np.flatnonzero(run.spikes[:, 0]).tolist() == [15, 35]
    # two spikes in tick 1 bring V to 1 only (one activation); the next pair, in tick 21, to 2
    assert np.flatnonzero(run.spikes[:, 1]).tolist() == [21]
    assert np.flatnonzero(run.spikes[:, 2]).tolist() == [1, 21]
    assert run.sops == 2 * (3 + 2 + 1)
    assert run.neuron_spikes == 2 * 3 + 2 + 1 + 2 and run.hops == 2 * 3


def test_placement_on_the_mesh_and_across_chips():
    chip, x, y = placement([0, 65, 4095, 4096, 4096 + 130])
    assert chip.tolist() == [0, 0, 0, 1, 1]
    assert x.tolist() == [0, 1, 63, 0, 2] and y.tolist() == [0, 1, 63, 0, 2]


def test_sop_hop_and_chip_crossing_counts_by_hand():
    # core 0 at (0, 0): input axon 0 -> neurons 0, 1, 2 (alpha 1), routed to core 4096 (chip 1: a crossing),
    # core 4095 ((63, 63): 126 hops) and core 65 ((1, 1): 2 hops); axon 5 has 10 set bits of weight 0.
    # Cores 4095 and 4096: axon 0 has 7 set bits of weight 0. Core 65 relays to core 0 axon 5 (2 hops).
    n = 4097
    empty, sink = _core(), _core([(0, j, 0) for j in range(7)])
    cores = [empty] * n
    cores[0] = _core([(0, j, 1) for j in range(3)] + [(5, j, 0) for j in range(10, 20)],
                     alpha=np.r_[1, 1, 1, np.full(N - 3, THRESHOLD_MAX)])
    cores[65] = _core([(0, 0, 1)], alpha=np.r_[1, np.full(N - 1, THRESHOLD_MAX)])
    cores[4095] = cores[4096] = sink
    routes = _routes(n, {(0, 0): (4096, 0, 1), (0, 1): (4095, 0, 1), (0, 2): (65, 0, 1), (65, 0): (0, 5, 1)})
    chip = Chip(cores, routes, _inputs([(0, 0, 0)]), _inputs([]), n_inputs=1, n_outputs=0)
    x = np.zeros((4, 1), bool)
    x[0] = True
    run = run_chip(chip, x)
    assert run.sops == 3 + (7 + 7 + 1) + 10
    assert run.neuron_spikes == 4
    assert run.hops == 126 + 2 + 2
    assert run.chip_crossings == 1


# --- determinism -----------------------------------------------------------------------------------------------------

def _random_recurrent_chip(rng, n=40):
    """``n`` random cores (more than one parallel block), every neuron routed at random, 64 inputs."""
    routes = np.stack([rng.integers(0, n, (n, N)), rng.integers(0, N, (n, N)), rng.integers(1, 16, (n, N))], -1)
    routes[rng.random((n, N)) < 0.2, 0] = -1
    inputs = np.stack([np.arange(64), rng.integers(0, n, 64), rng.integers(0, N, 64)], -1)
    return Chip([_random_core(rng, 0.05) for _ in range(n)], routes, inputs, _all_outputs(n),
                n_inputs=64, n_outputs=n * N)


def _summary(run):
    return run.spikes, (run.sops, run.neuron_spikes, run.hops, run.chip_crossings)


def test_results_do_not_depend_on_thread_count_and_reproduce_per_seed():
    rng = np.random.default_rng(11)
    chip = _random_recurrent_chip(rng)
    x = rng.random((30, 64)) < 0.3
    before = numba.get_num_threads()
    try:
        runs = {}
        for threads in sorted({1, numba.config.NUMBA_NUM_THREADS}):
            numba.set_num_threads(threads)
            runs[threads] = _summary(run_chip(chip, x, seed=3))
    finally:
        numba.set_num_threads(before)
    first, *others = runs.values()
    for other in others:
        np.testing.assert_array_equal(other[0], first[0])
        assert other[1] == first[1]
    again, other_seed = _summary(run_chip(chip, x, seed=3)), _summary(run_chip(chip, x, seed=4))
    np.testing.assert_array_equal(again[0], first[0])
    assert again[1] == first[1]
    assert (other_seed[0] != first[0]).any()
    assert first[0].any() and first[1][2] > 0


# --- the MER14 workload ---------------------------------------------------------------------------------------------

def test_mer14_workload_fires_at_20_hz_with_128_sops_per_spike():
    chip = mer14_workload(cores=8, seed=1)
    assert all((c.crossbar.sum(axis=0) == 128).all() and (c.crossbar.sum(axis=1) == 128).all() for c in chip.cores)
    assert sorted((chip.routes[..., 0] * N + chip.routes[..., 1]).ravel().tolist()) == list(range(8 * N))
    T = 500
    run = run_chip(chip, np.zeros((T, 0), bool))
    rate_hz = run.neuron_spikes / (T * 8 * N) * 1000
    assert 19 < rate_hz < 21
    # every spike reaches its own axon (a permutation), 128 bits each; the last tick's spikes arrive after T
    assert run.sops % 128 == 0 and 128 * (run.neuron_spikes - 8 * N) <= run.sops <= 128 * run.neuron_spikes


# --- bad inputs -------------------------------------------------------------------------------------------------------

def _chip(**change):
    spec = dict(cores=[_core(), _core()], routes=_routes(2), inputs=_inputs([(0, 0, 0)]),
                outputs=_inputs([(1, 0, 0)]), n_inputs=1, n_outputs=1)
    spec.update(change)
    return Chip(**spec)


def _bad_route(field, value):
    routes = _routes(2, {(1, 7): (0, 0, 1)})
    routes[1, 7, field] = value
    return routes


@pytest.mark.parametrize("change, message", [
    (dict(cores=[]), "non-empty list"),
    (dict(cores=[_core(), "core"]), r"cores\[1\] is a str"),
    (dict(routes=np.zeros((2, N, 2), int)), r"routes has shape \(2, 256, 2\)"),
    (dict(routes=_bad_route(0, 2)), r"core 1, neuron 7: target core is 2, not in \[-1, 1\]"),
    (dict(routes=_bad_route(0, -2)), r"core 1, neuron 7: target core is -2"),
    (dict(routes=_bad_route(1, 256)), r"core 1, neuron 7: target axon is 256, not in \[0, 255\]"),
    (dict(routes=_bad_route(2, 0)), r"core 1, neuron 7: delay is 0, not in \[1, 15\]"),
    (dict(routes=_bad_route(2, 16)), r"delay is 16"),
    (dict(inputs=_inputs([(0, 0, 0), (1, 0, 0)])), r"inputs row 1: input index is 1, not in \[0, 0\]"),
    (dict(inputs=_inputs([(0, 2, 0)])), r"inputs row 0: core is 2, not in \[0, 1\]"),
    (dict(inputs=_inputs([(0, 0, 300)])), r"inputs row 0: axon is 300"),
    (dict(inputs=np.zeros((1, 2), int)), r"inputs has shape \(1, 2\)"),
    (dict(outputs=_inputs([(1, 256, 0)])), r"outputs row 0: neuron is 256, not in \[0, 255\]"),
    (dict(outputs=_inputs([(1, 0, 1)])), r"outputs row 0: output index is 1, not in \[0, 0\]"),
    (dict(n_inputs=-1), "n_inputs is -1"),
])
def test_bad_chips_are_one_line_errors(change, message):
    with pytest.raises(NeuroError, match=message) as err:
        _chip(**change)
    assert "\n" not in str(err.value)


@pytest.mark.parametrize("x, seed, message", [
    (np.zeros((5, 2), bool), 0, r"input_spikes has shape \(5, 2\): give a \(T, 1\)"),
    (np.zeros((0, 1), bool), 0, r"input_spikes has shape \(0, 1\)"),
    (np.full((5, 1), 2), 0, "must be bool"),
    (np.zeros((5, 1), bool), 1.5, "seed must be an integer"),
])
def test_bad_run_chip_inputs(x, seed, message):
    with pytest.raises(NeuroError, match=message):
        run_chip(_chip(), x, seed=seed)


def test_bad_mer14_arguments():
    with pytest.raises(NeuroError, match="synapses is 127"):
        mer14_workload(cores=1, synapses=127)
    with pytest.raises(NeuroError, match="rate_hz is 0"):
        mer14_workload(cores=1, rate_hz=0)
