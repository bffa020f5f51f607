"""Limits before memory: wide CNNs are refused by the chip mappers from shapes (and the unfolded weights) before
anything proportional to n^2 is built, and pools fold into a following Dense without the n x n identity, equal to
the identity probe they replace."""

import tracemalloc

import numpy as np
import pytest

import chips
from chips.compiling import compose, layers, linear_matrix, spread_pool
from chips.truenorth.mapping import _dense_over, _probe
from neuro import graph
from neuro.errors import NeuroError
from neuro.snn import SNN, Neurons, Synapses

PEAK_LIMIT = 200 * 2 ** 20     # bytes: the identity probes these replace took 9.4 GiB and 2.3 TiB


def _cnn(input_shape, channels, stride, seed=0):
    """input -> conv 3x3 (padding 1) -> neurons -> average pool 2 -> flatten -> dense 10 -> neurons."""
    rng = np.random.default_rng(seed)
    conv = graph.Conv2d(rng.normal(0, 0.1, (channels, input_shape[0], 3, 3)), None, stride, 1)
    c, h, w = conv.output_shape(input_shape)
    dense = graph.Dense(rng.normal(0, 0.1, (10, c * (h // 2) * (w // 2))))
    return SNN(input_shape, [Synapses(conv), Neurons(), Synapses(graph.AvgPool2d(2)), graph.Flatten(),
                             Synapses(dense), Neurons()])


WIDE = {"mnist 64-channel conv": ((1, 28, 28), 64, 1),          # identity over 64 x 28 x 28: 9.4 GiB
        "3x224x224 64-channel conv": ((3, 224, 224), 64, 2)}    # identity over 64 x 112 x 112: 2.3 TiB


def _peak(fn):
    """fn()'s NeuroError and the peak traced memory while it ran."""
    tracemalloc.start()
    try:
        with pytest.raises(NeuroError) as err:
            fn()
        return err.value, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


@pytest.mark.parametrize("case", sorted(WIDE))
@pytest.mark.parametrize("chip,options,limit", [("truenorth", {}, "partial sums one merge core can add"),
                                                ("truenorth", {"scheme": "multilevel", "levels": 4},
                                                 "partial sums one merge core can add"),
                                                ("loihi", {}, "input axons of a Loihi core")])
def test_a_wide_cnn_gets_the_limit_error_before_any_n_squared_allocation(case, chip, options, limit):
    snn = _cnn(*WIDE[case])
    err, peak = _peak(lambda: chips.compile_for(chip, snn, "rate", options))
    message = str(err)
    assert limit in message and "\n" not in message
    assert "layer 1" in message and ("pool more" in message)      # names the layer and the fix
    assert peak < PEAK_LIMIT, f"{peak / 2 ** 20:.0f} MiB traced before the refusal"


def test_loihi2_folds_the_wide_pool_into_the_dense_layer_without_the_identity():
    snn = _cnn(*WIDE["mnist 64-channel conv"])
    tracemalloc.start()
    try:
        found, _ = layers(snn, "Loihi 2")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < PEAK_LIMIT
    assert found[1].synapse.weight.shape == (10, 64 * 28 * 28)


POOLS = [graph.AvgPool2d(2), graph.AvgPool2d(3), graph.AvgPool2d(2, padding=1), graph.AvgPool2d(3, 2),
         graph.AvgPool2d((2, 3), (2, 1)), graph.AvgPool2d(3, 2, padding=1)]


@pytest.mark.parametrize("pool", POOLS, ids=lambda p: f"k{p.kernel}s{p.stride}p{p.padding}")
@pytest.mark.parametrize("shape", [(3, 8, 8), (2, 7, 9)])
def test_pool_into_dense_equals_the_identity_probe(pool, shape):
    rng = np.random.default_rng(1)
    mid = int(np.prod(pool.output_shape(shape)))
    dense = graph.Dense(rng.normal(0, 1, (5, mid)), rng.normal(0, 1, 5))
    old = graph.Dense(dense.weight @ linear_matrix(pool, shape), dense.bias)
    new = compose(pool, shape, dense, (mid,), "test")
    if pool.stride[0] >= pool.kernel[0] and pool.stride[1] >= pool.kernel[1]:   # disjoint windows: bit for bit
        np.testing.assert_array_equal(new.weight, old.weight)
    else:
        np.testing.assert_allclose(new.weight, old.weight, rtol=1e-6, atol=1e-7)
    np.testing.assert_array_equal(new.bias, old.bias)
    x = rng.normal(0, 1, (4, *shape)).astype(np.float32)       # and it computes the same map
    np.testing.assert_allclose(new.forward(x.reshape(4, -1)), dense.forward(pool.forward(x).reshape(4, -1)),
                               rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("pools", [[graph.AvgPool2d(2)], [graph.AvgPool2d(2), graph.AvgPool2d(2)],
                                   [graph.AvgPool2d(3, 2), graph.AvgPool2d(2)], [graph.AvgPool2d(3)]])
def test_truenorth_dense_fold_equals_the_identity_probe(pools):
    shape = (3, 12, 12)
    mid = graph.chain_shapes(shape, pools + [graph.Flatten()])[-1]
    dense = graph.Dense(np.random.default_rng(2).normal(0, 1, (6, mid[0])))
    ops = pools + [graph.Flatten(), dense]
    n = int(np.prod(shape))
    old = _probe(ops, shape, n).reshape(n, -1).T
    new = _dense_over(ops, shape, "test")
    if len(pools) == 1 and pools[0].stride == pools[0].kernel:
        np.testing.assert_array_equal(new, old)
    else:
        np.testing.assert_allclose(new, old, rtol=1e-6, atol=1e-7)


def test_spread_pool_refuses_what_would_not_fit_in_memory(monkeypatch):
    monkeypatch.setattr("chips.compiling.memory_cap", lambda: 1 << 20)
    with pytest.raises(NeuroError, match=r"^layer 9: the 10 x 200704 weights .* GiB, over the .* put neurons after"):
        spread_pool(np.zeros((10, 64 * 28 * 28), np.float32), graph.AvgPool2d(2), (64, 56, 56), "layer 9")
