"""Loihi 1 chip model against real Lava (lava-nc 0.10, Loihi1SimCfg fixed_pt): identical spikes and voltages.

Runs in the Python 3.10 venv that has lava-nc (tests/conftest.py skips these elsewhere). Each chain is one
Lava run (RingBuffer -> Dense -> LIF -> ...; a Monitor per probed Var, since one Monitor cannot probe two).
"""

import importlib

import numpy as np
import pytest

from conftest import REQUIRE_LAVA

# Lava sets the multiprocessing start method when first imported, which fails once anything else (tqdm's
# lock in the engine) has fixed it: import it at collection, before any test runs. Where Lava is required
# (.ci/run's Lava venv) an import failure is an error, not a skip.
lava_dense = importlib.import_module("lava.proc.dense.process") if REQUIRE_LAVA else \
    pytest.importorskip("lava.proc.dense.process", reason="lava-nc is not installed here (see .ci/run)")
from lava.magma.core.run_conditions import RunSteps  # noqa: E402
from lava.magma.core.run_configs import Loihi1SimCfg  # noqa: E402
from lava.proc.io.source import RingBuffer  # noqa: E402
from lava.proc.lif.process import LIF  # noqa: E402
from lava.proc.monitor.process import Monitor  # noqa: E402

from neuro.encode import Playback
from chips.loihi import LoihiBackend, LoihiLayer, compile_snn, program_snn, simulate_chain  # noqa: E402
from neuro import graph  # noqa: E402
from neuro.sim import Engine  # noqa: E402
from conftest import small_converted_cnn  # noqa: E402

pytestmark = pytest.mark.lava

N_RANDOM_CHAINS = 48


def lava_chain(source: np.ndarray, layers: list[dict]) -> list[tuple[np.ndarray, np.ndarray]]:
    """Lava's answer for ``simulate_chain(source, layers)``: per layer (spikes (n, T) bool, v (n, T)); an
    optional ``v_init`` key sets the LIF's initial v."""
    T = source.shape[1]
    prev = RingBuffer(data=source.astype(np.int32)).s_out
    probes = []
    for spec in layers:
        w = np.asarray(spec["weights"])
        dense = lava_dense.Dense(weights=w, num_weight_bits=spec["num_weight_bits"], weight_exp=spec["weight_exp"])
        lif = LIF(shape=(w.shape[0],), du=spec["du"], dv=spec["dv"], vth=spec["vth"], v=spec.get("v_init", 0),
                  bias_mant=spec["bias_mant"], bias_exp=spec["bias_exp"])
        prev.connect(dense.s_in)
        dense.a_out.connect(lif.a_in)
        prev = lif.s_out
        mon_s, mon_v = Monitor(), Monitor()
        mon_s.probe(lif.s_out, T)
        mon_v.probe(lif.v, T)
        probes.append((lif, mon_s, mon_v))
    first = probes[0][1]
    try:
        first.run(condition=RunSteps(num_steps=T), run_cfg=Loihi1SimCfg(select_tag="fixed_pt"))
        return [(mon_s.get_data()[lif.name]["s_out"].T != 0, mon_v.get_data()[lif.name]["v"].T.astype(np.int64))
                for lif, mon_s, mon_v in probes]
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


def _decay(rng):
    return int(rng.choice([0, 4095, rng.integers(0, 4096), rng.integers(0, 512)]))


def random_chain(seed: int):
    """1-3 layers with varied decays, thresholds, biases, weight bits and exponents; sparse or dense input."""
    rng = np.random.default_rng(seed)
    n_in, T = int(rng.integers(1, 25)), int(rng.integers(8, 41))
    density = rng.choice([0.02, 0.1, 0.5, 0.9])
    source = (rng.random((n_in, T)) < density).astype(np.int64)
    layers, n = [], n_in
    for _ in range(int(rng.integers(1, 4))):
        m = int(rng.integers(1, 17))
        per_neuron, biased = rng.random() < 0.5, rng.random() < 0.6
        bias = rng.integers(-4096, 4096, m) if per_neuron else int(rng.integers(-4096, 4096))
        layers.append(dict(
            weights=_weights(rng, m, n), num_weight_bits=int(rng.integers(1, 9)),
            weight_exp=int(rng.integers(-8, 8)), du=_decay(rng), dv=_decay(rng),
            vth=int(rng.choice([rng.integers(0, 64), rng.integers(64, 4096), rng.integers(4096, 1 << 17)])),
            bias_mant=bias * biased,
            bias_exp=rng.integers(-3, 8, m) if per_neuron else int(rng.integers(0, 8))))
        n = m
    return source, layers


def _assert_same(ours, lava):
    assert len(ours) == len(lava)
    for k, ((s_ours, v_ours), (s_lava, v_lava)) in enumerate(zip(ours, lava)):
        np.testing.assert_array_equal(s_ours, s_lava, err_msg=f"layer {k} spikes")
        np.testing.assert_array_equal(v_ours, v_lava, err_msg=f"layer {k} voltages")


@pytest.mark.parametrize("seed", range(N_RANDOM_CHAINS))
def test_random_chain_matches_lava(seed):
    """Step by step and in tiles of 7 steps (T is 8-40: mostly not a multiple of 7)."""
    source, layers = random_chain(seed)
    lava = lava_chain(source, layers)
    for time_batch in (None, 7):
        _assert_same(simulate_chain(source, layers, time_batch=time_batch), lava)


def test_random_chains_are_varied():
    """The random chains cover 1-3 layers, all sign modes, wrap-around scales and both input densities."""
    chains = [random_chain(s) for s in range(N_RANDOM_CHAINS)]
    assert {len(layers) for _, layers in chains} == {1, 2, 3}
    specs = [spec for _, layers in chains for spec in layers]
    assert {int(np.min(s["weights"]) < 0) + 2 * int(np.max(s["weights"]) > 0) for s in specs} >= {1, 2, 3}
    assert {s["weight_exp"] for s in specs} >= {-8, 7}
    densities = [src.mean() for src, _ in chains]
    assert min(densities) < 0.1 and max(densities) > 0.7


def test_wrap_around_and_saturation_match_lava():
    """16 inputs at +-255 << 7 drive u past 2^24 (beyond what one wrap brings back: Lava's int32 arithmetic)
    and v into saturation at -(2^23 - 1); large biases on top."""
    source = np.ones((16, 30), np.int64)
    w0 = np.stack([np.full(16, 255), np.full(16, -256), np.random.default_rng(0).integers(-256, 256, 16)])
    layers = [dict(weights=w0, num_weight_bits=8, weight_exp=7, du=0, dv=0, vth=(1 << 17) - 1,
                   bias_mant=[0, 4095, -4096], bias_exp=7),
              dict(weights=np.array([[-256, 255, 3]]), num_weight_bits=8, weight_exp=7, du=10, dv=0,
                   vth=(1 << 17) - 1, bias_mant=-4096, bias_exp=7)]
    ours = simulate_chain(source, layers)
    _assert_same(ours, lava_chain(source, layers))
    _assert_same(simulate_chain(source, layers, time_batch=30), ours)
    assert (ours[0][1] == -(2 ** 23) + 1).any() and ours[0][0].any()


def _unrolled(conv: graph.Conv2d, in_shape) -> np.ndarray:
    """The (out, in) matrix of a conv, both sides flat (C, H, W): how Lava's Dense runs it."""
    n_in = int(np.prod(in_shape))
    eye = np.eye(n_in, dtype=np.float32).reshape(n_in, *in_shape)
    return np.rint(conv.forward(eye).reshape(n_in, -1).T).astype(np.int64)


def _engine_traces(layers, snn, in_shape, source, time_batch=None):
    """Per layer (spikes (n, T), v (n, T)) of a Loihi program on the engine, neurons in (C, H, W) order."""
    T = source.shape[1]
    trains_hwc = source.reshape(*in_shape, T).transpose(1, 2, 0, 3).reshape(1, -1, T)
    r = Engine(snn, LoihiBackend(layers, snn)).run(np.zeros((1, *in_shape), np.float32), np.zeros(1), T,
                                                   encoding=Playback(trains_hwc.transpose(0, 2, 1)), record_steps=True,
                                                   progress=False, time_batch=time_batch)
    return [(tr["spikes"][0].reshape(T, -1).T.astype(bool), tr["v"][0].reshape(T, -1).T.astype(np.int64))
            for tr in r.traces]


def _as_lava_dense(layers, in_shape) -> list[dict]:
    """The Lava chain of a Loihi program: convs unrolled into Dense matrices, per-channel biases per neuron."""
    chain, shape = [], tuple(in_shape)
    for layer in layers:
        op = layer.synapse
        out_shape = op.output_shape(shape if isinstance(op, graph.Conv2d) else (int(np.prod(shape)),))
        per_channel = int(np.prod(out_shape[1:])) if len(out_shape) == 3 else 1
        w = _unrolled(op, shape) if isinstance(op, graph.Conv2d) else op.weight.astype(np.int64)
        chain.append(dict(weights=w, num_weight_bits=layer.num_weight_bits, weight_exp=layer.weight_exp,
                          du=layer.du, dv=layer.dv, vth=layer.vth, v_init=np.repeat(layer.v_init, per_channel),
                          bias_mant=np.repeat(layer.bias_mant, per_channel),
                          bias_exp=np.repeat(layer.bias_exp, per_channel)))
        shape = out_shape
    return chain


def test_conv_network_matches_lava():
    """conv -> conv -> dense on the engine's conv stages = Lava Dense processes holding the unrolled convs."""
    rng = np.random.default_rng(7)
    in_shape, T = (1, 8, 8), 25
    c1 = graph.Conv2d(rng.integers(-256, 256, (4, 1, 3, 3)), None, stride=1, padding=1)
    c2 = graph.Conv2d(rng.integers(-256, 256, (6, 4, 3, 3)), None, stride=2, padding=0)
    d = graph.Dense(rng.integers(-256, 256, (5, 6 * 3 * 3)))
    params = [dict(num_weight_bits=8, weight_exp=0, du=4095, dv=0, vth=100, bias_mant=rng.integers(-50, 50, 4),
                   bias_exp=2),
              dict(num_weight_bits=7, weight_exp=1, du=1000, dv=200, vth=300, bias_mant=0, bias_exp=0),
              dict(num_weight_bits=6, weight_exp=-1, du=0, dv=4095, vth=50, bias_mant=-20, bias_exp=4)]
    layers = [LoihiLayer(op, **p) for op, p in zip((c1, c2, d), params)]
    source = (rng.random((int(np.prod(in_shape)), T)) < 0.3).astype(np.int64)
    ours = _engine_traces(layers, program_snn(layers, in_shape), in_shape, source)
    _assert_same(ours, lava_chain(source, _as_lava_dense(layers, in_shape)))
    _assert_same(_engine_traces(layers, program_snn(layers, in_shape), in_shape, source, time_batch=8), ours)
    assert all(s.any() for s, _ in ours)


def test_converted_cnn_matches_lava():
    """A converted CNN (conv, avg-pool, conv, avg-pool, dense, dense) compiled for Loihi: the engine's run of
    the program = Lava running the same integer layers, on a rate-coded image."""
    rng = np.random.default_rng(8)
    in_shape, T = (1, 10, 10), 30
    snn, images = small_converted_cnn(8)
    program = compile_snn(snn)
    assert any(np.ptp(layer.v_init) > 0 for layer in program.layers)  # per-channel initial v (bias ahead of input)
    source = (rng.random((100, T)) < images[0].reshape(-1, 1)).astype(np.int64)
    ours = _engine_traces(program.layers, program.snn, in_shape, source)
    _assert_same(ours, lava_chain(source, _as_lava_dense(program.layers, in_shape)))
    _assert_same(_engine_traces(program.layers, program.snn, in_shape, source, time_batch=8), ours)
    assert all(s.any() for s, _ in ours)
