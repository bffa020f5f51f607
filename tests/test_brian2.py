"""Brian2 cross-check: the same float SNN in Brian2 gives per-neuron spike counts identical to the engine."""

import numpy as np
import pytest

pytest.importorskip("brian2")

from neuro import graph  # noqa: E402
from neuro.backends import brian2 as b2backend  # noqa: E402
from neuro.errors import NeuroError  # noqa: E402
from neuro.sim import Engine  # noqa: E402
from neuro.snn import SNN, MaxPoolGate, Neurons, Synapses  # noqa: E402

# Brian2 2.9 calls pyparsing's camelCase names, which pyparsing 3.3 deprecates: noise from outside this project
pytestmark = pytest.mark.filterwarnings("ignore:.*deprecated.*:DeprecationWarning")
T = 20


def _dyadic(rng, shape, lo, hi):
    """Multiples of 2^-6 in [lo, hi): every sum of their products with spikes/pixels is exact."""
    return rng.integers(round(lo * 64), round(hi * 64), size=shape) / 64.0


def _images(n=3, seed=0):
    return np.random.default_rng(seed).integers(0, 17, size=(n, 1, 8, 8)).astype(np.float32) / 16


def _snn(reset, pool_neurons=True, seed=0):
    """conv 3x3 (pad 1) -> neurons -> avgpool 2x2 [-> neurons] -> conv 3x3 -> neurons -> dense -> spiking output."""
    rng = np.random.default_rng(seed)
    n = dict(threshold=1.0, reset=reset, v_init=0.5)
    ops = [Synapses(graph.Conv2d(_dyadic(rng, (4, 1, 3, 3), -0.2, 0.4), _dyadic(rng, 4, -0.1, 0.1), 1, 1)),
           Neurons(**n), Synapses(graph.AvgPool2d(2))]
    if pool_neurons:
        ops.append(Neurons(**n))
    ops += [Synapses(graph.Conv2d(_dyadic(rng, (8, 4, 3, 3), -0.15, 0.3), _dyadic(rng, 8, -0.1, 0.1), 1, 1)),
            Neurons(threshold=1.5, reset=reset, v_init=0.5), graph.Flatten(),
            Synapses(graph.Dense(_dyadic(rng, (10, 128), -0.1, 0.12), _dyadic(rng, 10, -0.1, 0.1))),
            Neurons(threshold=1.25, reset=reset, v_init=0.5)]
    return SNN((1, 8, 8), ops, readout="spikes")


@pytest.mark.parametrize("pool_neurons", [True, False])
@pytest.mark.parametrize("reset", ["subtract", "zero"])
def test_spike_counts_identical_to_engine(reset, pool_neurons):
    snn, images = _snn(reset, pool_neurons), _images()
    expect = Engine(snn).run(images, np.zeros(len(images)), T, record_counts=True, progress=False).spike_counts
    got = b2backend.spike_counts(snn, images, T)
    assert [g.shape for g in got] == [e.shape for e in expect]
    for layer, (g, e) in enumerate(zip(got, expect)):
        assert np.mean((e > 0) & (e < T)) > 0.25, f"layer {layer} is mostly silent or saturated: a weak check"
        assert np.array_equal(g, e), f"layer {layer}: {np.sum(g != e)} neurons differ"


def test_compose_matches_forward():
    rng = np.random.default_rng(1)
    pool, conv = graph.AvgPool2d(2), graph.Conv2d(rng.normal(size=(3, 2, 3, 3)), rng.normal(size=3), 2, 1)
    composed = b2backend.compose(b2backend.connections(pool, (2, 6, 6)), b2backend.connections(conv, (2, 3, 3)), 12)
    pre, post, w, bias = composed
    x = rng.random((1, 2, 6, 6))
    y = bias + np.bincount(post, weights=w * x.reshape(-1)[pre], minlength=12)
    np.testing.assert_allclose(y, conv.forward(pool.forward(x)).reshape(-1), atol=1e-5)


def test_maxpool_gate_is_rejected():
    ops = [Synapses(graph.Conv2d(np.ones((2, 1, 3, 3)), None, 1, 1)), Neurons(), MaxPoolGate((2, 2), (2, 2)),
           graph.Flatten(), Synapses(graph.Dense(np.ones((3, 8)))), Neurons()]
    snn = SNN((1, 4, 4), ops)
    with pytest.raises(NeuroError, match="MaxPoolGate"):
        b2backend.spike_counts(snn, np.zeros((1, 1, 4, 4), np.float32), 2)
