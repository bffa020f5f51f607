"""Loihi 2 chip model against real Lava (lava-nc 0.10, Loihi2SimCfg fixed_pt): identical graded outputs and
sigma-delta state (sigma, act, residue, error) on random chains RingBuffer -> Dense -> SigmaDelta -> ...

Runs in the Python 3.10 venv that has lava-nc (tests/conftest.py skips these elsewhere; NEURO_REQUIRE_LAVA=1 turns
a skip into a failure). One Monitor per probed Var (one Monitor cannot probe two).
"""

import importlib

import numpy as np
import pytest

from conftest import REQUIRE_LAVA

# Lava fixes the multiprocessing start method when first imported: import it at collection, before any test runs.
lava_dense = importlib.import_module("lava.proc.dense.process") if REQUIRE_LAVA else \
    pytest.importorskip("lava.proc.dense.process", reason="lava-nc is not installed here (see .ci/run)")
from lava.magma.core.run_conditions import RunSteps  # noqa: E402
from lava.magma.core.run_configs import Loihi2SimCfg  # noqa: E402
from lava.proc.io.source import RingBuffer  # noqa: E402
from lava.proc.monitor.process import Monitor  # noqa: E402
from lava.proc.sdn.process import ActivationMode, SigmaDelta  # noqa: E402

from chips.loihi2.neuron import STATES, simulate_chain  # noqa: E402
from neuro.errors import NeuroError  # noqa: E402

pytestmark = pytest.mark.lava

N_RANDOM_CHAINS = 48
LAVA_DENSE_DEFAULTS = dict(num_weight_bits=8, weight_exp=0)
LAVA_SD_DEFAULTS = dict(bias=0, act_mode="relu", cum_error=False, spike_exp=0, state_exp=0)


def lava_chain(source: np.ndarray, layers: list[dict]) -> list[dict]:
    """Lava's answer for ``simulate_chain``: per layer {"s_out", "sigma", "act", "residue", "error"}, each (n, T)."""
    T = source.shape[1]
    prev = RingBuffer(data=source.astype(np.int32)).s_out
    probes = []
    for spec in layers:
        w = np.asarray(spec["weights"])
        d = {**LAVA_DENSE_DEFAULTS, **{k: spec[k] for k in LAVA_DENSE_DEFAULTS if k in spec}}
        dense = lava_dense.Dense(weights=w, num_message_bits=spec.get("num_message_bits", 24), **d)
        p = {**LAVA_SD_DEFAULTS, **{k: spec[k] for k in LAVA_SD_DEFAULTS if k in spec}}
        mode = ActivationMode.RELU if p.pop("act_mode") in ("relu", 1) else ActivationMode.UNIT
        sd = SigmaDelta(shape=(w.shape[0],), vth=spec["vth"], act_mode=mode, **p)
        prev.connect(dense.s_in)
        dense.a_out.connect(sd.a_in)
        prev = sd.s_out
        monitors = {}
        for var in ("s_out",) + STATES:
            monitors[var] = Monitor()
            monitors[var].probe(getattr(sd, var), T)
        probes.append((sd, monitors))
    first = probes[0][1]["s_out"]
    try:
        first.run(condition=RunSteps(num_steps=T), run_cfg=Loihi2SimCfg(select_tag="fixed_pt"))
        out = []
        for sd, monitors in probes:
            data = {var: m.get_data()[sd.name][var].T for var, m in monitors.items()}
            assert all(np.array_equal(v, np.round(v)) for v in data.values())
            out.append({var: v.astype(np.int64) for var, v in data.items()})
        return out
    finally:
        first.stop()


def _weights(rng, n_out, n_in):
    """Mixed, excitatory or inhibitory 9-bit weights, sometimes sparse."""
    kind = rng.choice(["mixed", "excitatory", "inhibitory"], p=[0.6, 0.2, 0.2])
    lo, hi = {"mixed": (-256, 256), "excitatory": (0, 256), "inhibitory": (-256, 1)}[kind]
    w = rng.integers(lo, hi, (n_out, n_in))
    if rng.random() < 0.3:
        w[rng.random(w.shape) < 0.7] = 0
    return w


def _source(rng, n_in, T):
    """Graded payloads: sparse or dense, signed or not, small or up to 2^10; sometimes binary; sometimes a frame
    held for a few steps (what a delta encoder turns into few messages)."""
    top = int(rng.choice([1, 16, 256, 1024]))
    signed = rng.random() < 0.6
    src = rng.integers(-top if signed else 0, top + 1, (n_in, T))
    src[rng.random((n_in, T)) < rng.choice([0.0, 0.5, 0.9])] = 0
    return src


def _layer(rng, m, n, first):
    shift = int(rng.integers(0, 4)) if rng.random() < 0.5 else 0
    spike_exp = int(rng.integers(0, 3)) if rng.random() < 0.4 else 0
    state_exp = shift
    per_neuron = rng.random() < 0.5
    bias = rng.integers(-2000, 2000, m) if per_neuron else int(rng.integers(-2000, 2000))
    spec = dict(weights=_weights(rng, m, n), vth=int(rng.choice([0, rng.integers(1, 8), rng.integers(8, 200)])),
                num_weight_bits=int(rng.integers(1, 9)),
                weight_exp=int(rng.integers(-8, 4 if first else 1)),
                bias=bias * int(rng.random() < 0.6), act_mode=str(rng.choice(["relu", "unit"], p=[0.7, 0.3])),
                cum_error=bool(rng.random() < 0.4), spike_exp=spike_exp, state_exp=state_exp)
    for key in ("num_weight_bits", "weight_exp", "bias", "act_mode", "cum_error", "spike_exp", "state_exp"):
        if rng.random() < 0.15:   # Lava's defaults, by leaving the key out
            spec.pop(key)
    return spec


def random_chain(seed: int):
    """1-3 layers with varied weights (sign modes, bits, exponents), thresholds, biases, activation modes, cumulative
    error and exponents, on graded input. A draw whose payloads would leave the engine's exact float32 range is
    drawn again (simulate_chain refuses it with an error: tested below)."""
    rng = np.random.default_rng(seed)
    for _ in range(50):
        n_in, T = int(rng.integers(1, 25)), int(rng.integers(8, 41))
        source = _source(rng, n_in, T)
        layers, n = [], n_in
        for k in range(int(rng.integers(1, 4))):
            m = int(rng.integers(1, 17))
            layers.append(_layer(rng, m, n, k == 0))
            n = m
        try:
            simulate_chain(source, layers)
        except NeuroError as e:
            if "2^24" in str(e):
                continue
            raise
        return source, layers
    raise AssertionError(f"seed {seed}: no chain within the exact range in 50 draws")


def _assert_same(source, layers):
    lava = lava_chain(source, layers)
    for state in STATES:
        ours = simulate_chain(source, layers, state=state)
        assert len(ours) == len(lava)
        for k, ((s_ours, v_ours), ref) in enumerate(zip(ours, lava)):
            np.testing.assert_array_equal(s_ours, ref["s_out"], err_msg=f"layer {k} graded outputs")
            np.testing.assert_array_equal(v_ours, ref[state], err_msg=f"layer {k} {state}")
    return lava


@pytest.mark.parametrize("seed", range(N_RANDOM_CHAINS))
def test_random_chain_matches_lava(seed):
    source, layers = random_chain(seed)
    _assert_same(source, layers)


def test_random_chains_are_varied():
    """The chains cover 1-3 layers, all sign modes, both activation modes, cumulative error on and off, non-zero
    exponents, negative and large graded payloads."""
    chains = [random_chain(s) for s in range(N_RANDOM_CHAINS)]
    assert {len(layers) for _, layers in chains} == {1, 2, 3}
    specs = [spec for _, layers in chains for spec in layers]
    assert {int(np.min(s["weights"]) < 0) + 2 * int(np.max(s["weights"]) > 0) for s in specs} >= {1, 2, 3}
    assert {s.get("act_mode", "relu") for s in specs} == {"relu", "unit"}
    assert {s.get("cum_error", False) for s in specs} == {True, False}
    assert max(s.get("state_exp", 0) for s in specs) > 0 and max(s.get("spike_exp", 0) for s in specs) > 0
    assert {s.get("weight_exp", 0) for s in specs} >= {-8, 3}
    assert min(src.min() for src, _ in chains) < -100 and max(src.max() for src, _ in chains) > 500
    graded = [any(np.abs(s).max(initial=0) > 1 for s, _ in simulate_chain(src, layers)) for src, layers in chains]
    assert np.mean(graded) > 0.7      # most chains send payloads beyond 0/1


def test_outputs_are_sparse_changes():
    """A held input frame: after the first steps the sigma-delta layer sends nothing, and the sum of its messages
    is its activation (minus the residue under the threshold), as in Lava."""
    source = np.zeros((4, 20), np.int64)
    source[:, 0] = [50, -20, 7, 100]          # a frame sent once: the Dense input is its change
    layers = [dict(weights=np.array([[4, 2, 0, 1], [-3, 5, 8, 0]]), vth=3, bias=10),
              dict(weights=np.array([[2, -2]]), vth=1, act_mode="unit")]
    lava = _assert_same(source, layers)
    s, act = lava[0]["s_out"], lava[0]["act"]
    assert np.count_nonzero(s[:, 4:]) == 0 and np.all(np.abs(s.sum(axis=1) - act[:, -1]) < 3)


def test_flickering_input_drifts_as_in_lava():
    """Lava floors every step's W s >> -weight_exp: a pixel flickering +1, -1, ... through weight 3 >> 2 loses a
    unit of sigma every two steps; held, it loses under one, once (tests/test_loihi2.py, by hand)."""
    layer = dict(weights=np.array([[3]]), weight_exp=-2, vth=0, act_mode="unit")
    flicker = _assert_same(np.array([[1, -1] * 8]), [layer])
    np.testing.assert_array_equal(flicker[0]["sigma"], [-(np.arange(16) // 2)])
    held = _assert_same(np.array([[1] + [0] * 15]), [layer])
    np.testing.assert_array_equal(held[0]["sigma"], np.zeros((1, 16)))
