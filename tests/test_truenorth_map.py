"""Mapping converted layers onto TrueNorth cores: schemes read back from core configs, exactness, error vs
levels, fan-in split, fan-out splitters and conv tiling counted by hand, the reference MNIST SNN, bad inputs."""

import os
from pathlib import Path

import numpy as np
import pytest

from chips.truenorth import CHIP_CORES, CORE_AXONS, CORE_NEURONS, simulate_core
from chips.truenorth.mapping import (block_core, core_weights, map_network, multilevel, quantise, relative_error,
                                 trinary)
from neuro import graph
from neuro.errors import NeuroError
from neuro.snn import SNN, MaxPoolGate, Neurons, Synapses

REPO = Path(__file__).resolve().parents[1]
REFERENCE_ONNX = REPO / "experiments" / "models" / "mnist_cnn.onnx"
SCHEMES = [("trinary", 3), ("multilevel", 2), ("multilevel", 3), ("multilevel", 4)]


def _w(out, n, seed=0):
    return np.random.default_rng(seed).normal(0, 0.1, (out, n))


def _dense_snn(*sizes):
    """An SNN of Dense layers sizes[0] -> sizes[1] -> ..., random weights."""
    ops = []
    for i, (n, out) in enumerate(zip(sizes, sizes[1:])):
        ops += [Synapses(graph.Dense(_w(out, n, i))), Neurons()]
    return SNN((sizes[0],), ops)


@pytest.mark.parametrize("scheme,levels", SCHEMES)
def test_core_config_reads_back_the_quantised_weights(scheme, levels):
    w = _w(20, 300)
    q = quantise(w, scheme, levels)
    per_core = CORE_AXONS // q.copies
    total = np.zeros((20, 300), np.int64)
    for start in range(0, 300, per_core):
        inputs = np.arange(start, min(300, start + per_core))
        core = block_core(q, inputs, np.arange(20))
        total[:, inputs] = core_weights(core, len(inputs), q.copies)[:20]
        assert not core.crossbar[len(inputs) * q.copies:].any() and not core.crossbar[:, 20:].any()
    np.testing.assert_array_equal(total, q.codes * q.unit)
    np.testing.assert_array_equal(total / q.unit * q.scale[:, None], q.weights)


@pytest.mark.parametrize("scheme,levels", SCHEMES)
def test_one_input_spike_adds_its_column_on_the_emulated_core(scheme, levels):
    q = quantise(_w(8, 40), scheme, levels)
    core = block_core(q, np.arange(40), np.arange(8))
    spikes = np.zeros((1, CORE_AXONS), bool)
    spikes[0, 5 * q.copies:6 * q.copies] = True                  # every copy of input 5
    _, v = simulate_core(core, spikes)
    np.testing.assert_array_equal(v[0, :8], q.codes[:, 5] * q.unit)


def test_trinary_is_exact_on_trinary_weights_and_beats_the_twn_rule():
    rng = np.random.default_rng(1)
    w = rng.integers(-1, 2, (30, 64)) * rng.uniform(0.1, 2, (30, 1))
    q = trinary(w)
    assert relative_error(w, q) == pytest.approx(0.0, abs=1e-12)        # the scale is a float mean
    np.testing.assert_array_equal(q.codes, np.sign(w))
    g = _w(30, 64)
    delta = 0.7 * np.abs(g).mean(axis=1, keepdims=True)          # Li, Zhang & Liu 2016's approximation
    keep = np.abs(g) > delta
    twn = np.sign(g) * keep * ((np.abs(g) * keep).sum(1, keepdims=True) / keep.sum(1, keepdims=True))
    assert relative_error(g, trinary(g)) <= np.linalg.norm(twn - g) / np.linalg.norm(g)


def test_multilevel_is_exact_on_its_grid_and_error_falls_with_levels():
    rng = np.random.default_rng(2)
    codes = rng.integers(-7, 8, (10, 50))
    codes[:, 0] = 7                                              # the peak sets the scale: 7 = 2^3 - 1
    w = codes * 0.01
    assert relative_error(w, multilevel(w, 4)) == pytest.approx(0.0, abs=1e-12)
    errors = [relative_error(g, multilevel(g, b)) for g in [_w(50, 200)] for b in (2, 3, 4)]
    assert errors[0] > errors[1] > errors[2]
    assert multilevel(w, 4).type_codes == (1, 2, 4, -8) and multilevel(w, 4).unit == 32


def test_fan_in_split_and_merge_counted_by_hand():
    layer = map_network(_dense_snn(300, 10)).layers[0]
    # 300 inputs, 128 per trinary core: 3 pieces; one merge core adds 3 x 2 partial axons per neuron
    assert (layer.pieces, layer.compute_cores, layer.merge_cores) == (3, 3, 1)
    assert layer.neurons_used == 3 * 10 * 2 + 10 and layer.axons_used == 300 * 2 + 10 * 3 * 2
    layer = map_network(_dense_snn(100, 300), "multilevel", 4).layers[0]
    # 100 inputs x 4 copies > 256 axons: 2 pieces of 64; 128 outputs per partial core -> 3 chunks x 2 pieces;
    # a merge neuron takes 2 x 2 axons, so 64 per merge core -> ceil(300 / 64) = 5
    assert (layer.pieces, layer.compute_cores, layer.merge_cores) == (2, 6, 5)


def test_fan_out_splitters_counted_by_hand():
    m = map_network(_dense_snn(10, 300, 5))
    # each of the 300 outputs feeds one of the 3 next cores through 2 axons (+ and - copies)
    assert (m.layers[0].compute_cores, m.layers[0].splitter_neurons, m.layers[0].splitter_cores) == (2, 600, 3)
    assert m.layers[1].splitter_neurons == 0
    assert m.cores == 2 + 3 + 3 + 1 and m.chips == 1


def test_conv_tiles_of_output_positions_counted_by_hand():
    snn = SNN((1, 28, 28), [Synapses(graph.Conv2d(_w(16, 25).reshape(16, 1, 5, 5))), Neurons()])
    layer = map_network(snn).layers[0]
    # 4 x 4 positions x 16 channels = 256 neurons on an 8 x 8 x 2 = 128-axon field; 24 / 4 = 6 tiles a side
    assert (layer.compute_cores, layer.pieces, layer.utilisation) == (36, 1, 1.0)


def test_reference_mnist_mapping():
    root = os.environ.get("NEURO_DATA")
    if not root or not (Path(root) / "mnist").is_dir() or not REFERENCE_ONNX.exists():
        pytest.skip("MNIST or the reference model is not available: set NEURO_DATA (CI: ../shared/datasets)")
    from neuro.ann import load_model
    from neuro.convert import convert
    from neuro.datasets import load
    snn = convert(load_model(REFERENCE_ONNX), load("mnist", "train", root=root)[0][:100])
    maps = {(s, b): map_network(snn, s, b) for s, b in SCHEMES}
    for m in maps.values():
        assert [layer.fan_in for layer in m.layers] == [25, 1600, 2048, 128]
        assert m.cores == sum(layer.cores for layer in m.layers) and m.chips == -(-m.cores // CHIP_CORES)
        assert m.mean_hops > 0
        for layer in m.layers:
            used = layer.compute_cores + layer.merge_cores
            assert layer.axons_used <= used * CORE_AXONS and 0 < layer.neurons_used <= used * CORE_NEURONS
            assert 0 < layer.utilisation <= 1 and 0 < layer.quantisation_error < 1
    errors = [[layer.quantisation_error for layer in maps["multilevel", b].layers] for b in (2, 3, 4)]
    assert all(a > b > c for a, b, c in zip(*errors))
    assert maps["trinary", 3].layers[0].compute_cores == 36


def test_bad_inputs():
    with pytest.raises(NeuroError, match=r"layer 0:Dense: fan-in 16500 .* 128 partial sums"):
        map_network(_dense_snn(16500, 2))
    with pytest.raises(NeuroError, match="levels 5"):
        map_network(_dense_snn(10, 2), "multilevel", 5)
    with pytest.raises(NeuroError, match="scheme 'binary'"):
        map_network(_dense_snn(10, 2), "binary")
    gated = SNN((1, 4, 4), [Synapses(graph.Conv2d(np.ones((1, 1, 1, 1)))), Neurons(),
                            MaxPoolGate((2, 2), (2, 2)), graph.Flatten(), Synapses(graph.Dense(np.ones((2, 4)))),
                            Neurons()])
    with pytest.raises(NeuroError, match="max-pool gates"):
        map_network(gated)
    with pytest.raises(NeuroError, match="do not fit a core"):
        block_core(trinary(_w(2, 200)), np.arange(200), np.arange(2))
