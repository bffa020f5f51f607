"""ANN -> SNN conversion: normalisation, the SNN file, convergence to the ANN's decisions."""

import re

import h5py
import numpy as np
import pytest

from neuro import graph, snn
from neuro.convert import convert, layer_scales
from neuro.errors import NeuroError
from neuro.sim import Engine


def small_cnn(rng, pool=graph.AvgPool2d):
    return graph.Network((1, 12, 12), [
        graph.Conv2d(rng.normal(0, .4, (6, 1, 3, 3)), rng.normal(0, .05, 6), padding=1), graph.ReLU(), pool(2),
        graph.Conv2d(rng.normal(0, .25, (8, 6, 3, 3)), rng.normal(0, .05, 8), stride=2), graph.ReLU(),
        graph.Flatten(), graph.Dense(rng.normal(0, .2, (16, 32)), rng.normal(0, .05, 16)), graph.ReLU(),
        graph.Dense(rng.normal(0, .3, (5, 16)), rng.normal(0, .05, 5)), graph.Softmax()], name="small")


@pytest.fixture
def data():
    rng = np.random.default_rng(0)
    return rng, rng.random((200, 1, 12, 12)).astype(np.float32)


def test_scales_are_percentiles_of_nonzero_activations(data):
    rng, x = data
    net = small_cnn(rng)
    _, acts = net.forward(x, collect=True)
    scales = layer_scales(net, x, percentile=100)
    assert scales[1] == pytest.approx(acts[1].max())
    assert layer_scales(net, x, percentile=50)[1] == pytest.approx(np.median(acts[1][acts[1] > 0]))


def test_first_layer_rescaled_by_its_scale(data):
    rng, x = data
    net = small_cnn(rng)
    s = convert(net, x, percentile=99.9)
    lam = s.info["scales"][0]
    np.testing.assert_allclose(s.ops[0].op.weight, net.layers[0].weight / lam, rtol=1e-6)
    np.testing.assert_allclose(s.ops[0].op.bias, net.layers[0].bias / lam, rtol=1e-6)


@pytest.mark.parametrize("reset,readout,pool,pool_neurons,floor", [
    ("subtract", "potential", graph.AvgPool2d, False, 0.97), ("subtract", "spikes", graph.AvgPool2d, True, 0.97),
    # random images through a random net leave many near-ties, which the lossy methods get wrong more often:
    # reset to zero drops the charge above threshold; max-pool gating follows the rate leader only as it emerges
    ("zero", "potential", graph.AvgPool2d, False, 0.75), ("subtract", "potential", graph.MaxPool2d, False, 0.8)])
def test_snn_converges_to_ann_decisions(data, reset, readout, pool, pool_neurons, floor):
    rng, x = data
    net = small_cnn(rng, pool)
    target = net.predict(x)
    s = convert(net, x[:100], percentile=100, reset=reset, readout=readout, pool_neurons=pool_neurons)
    r = Engine(s).run(x, target, 300, progress=False)
    assert r.accuracy >= floor
    assert r.accuracy_by_step[-1] > r.accuracy_by_step[9] > r.accuracy_by_step[0]


def test_save_load_roundtrip(tmp_path, data):
    rng, x = data
    s = convert(small_cnn(rng), x[:50], readout="spikes", pool_neurons=True)
    path = tmp_path / "net.h5"
    snn.save(s, path)
    s2 = snn.load(path)
    assert [type(o) for o in s2.ops] == [type(o) for o in s.ops]
    assert s2.readout == "spikes" and s2.info == s.info
    labels = s.ann.predict(x)
    a, b = (Engine(n).run(x, labels, 20, progress=False) for n in (s, s2))
    np.testing.assert_array_equal(a.correct_by_step, b.correct_by_step)
    assert s2.ann.accuracy(x, labels) == 1.0


def test_failed_save_keeps_the_old_file(tmp_path, data):
    rng, x = data
    s = convert(small_cnn(rng), x[:50])
    path = tmp_path / "net.h5"
    snn.save(s, path)
    before = path.read_bytes()
    s.info["unserialisable"] = object()
    with pytest.raises(TypeError):
        snn.save(s, path)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["net.h5"]


def test_load_errors(tmp_path):
    with pytest.raises(NeuroError, match="does not exist"):
        snn.load(tmp_path / "missing.h5")
    bad = tmp_path / "bad.h5"
    bad.write_bytes(b"not hdf5 at all")
    with pytest.raises(NeuroError, match="damaged"):
        snn.load(bad)


def test_flipped_weight_byte_is_a_one_line_error(tmp_path, data):
    rng, x = data
    path = tmp_path / "net.h5"
    snn.save(convert(small_cnn(rng), x[:50]), path)
    with h5py.File(path, "r") as f:
        offset = f["ops/0/op/weight"].id.get_offset() + 3
    raw = bytearray(path.read_bytes())
    raw[offset] ^= 0xFF
    path.write_bytes(bytes(raw))
    with pytest.raises(NeuroError, match=f"SNN file {re.escape(str(path))} is corrupt .*convert the model again") as e:
        snn.load(path)
    assert "\n" not in str(e.value)


def test_snn_file_without_a_checksum_still_loads(tmp_path, data):
    rng, x = data
    path = tmp_path / "net.h5"
    snn.save(convert(small_cnn(rng), x[:50]), path)
    with h5py.File(path, "a") as f:
        del f.attrs["sha256"]
    assert snn.load(path).n_classes == 5


def test_unconvertible_networks(data):
    rng, x = data
    no_relu = graph.Network((1, 12, 12), [graph.Flatten(), graph.Dense(np.ones((4, 144))),
                                          graph.Dense(np.ones((3, 4)))])
    with pytest.raises(NeuroError, match="not followed by a ReLU"):
        convert(no_relu, x)
    with pytest.raises(NeuroError, match="percentile"):
        convert(small_cnn(rng), x, percentile=0)
    with pytest.raises(NeuroError, match="do not fit"):
        convert(small_cnn(rng), np.zeros((3, 1, 10, 10), np.float32))
