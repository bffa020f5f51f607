"""ANN -> SNN conversion: normalisation, the SNN file, convergence to the ANN's decisions."""

import re

import h5py
import numpy as np
import pytest

from neuro import graph, snn
from neuro.convert import convert, layer_scales, model_thresholds
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


def qcfs(z, lam, levels):
    """The QCFS activation lambda * clip(floor(z L / lambda + 1/2) / L, 0, 1) (Bu et al. 2022, eq. 19)."""
    return lam * np.clip(np.floor(z * levels / lam + 0.5) / levels, 0, 1)


def test_model_thresholds_replace_the_percentile_scales(data):
    rng, x = data
    net = small_cnn(rng)
    s = convert(net, x[:50], thresholds=[0.7, 1.3, 2.1])
    assert s.info["scales"] == [0.7, 1.3, 2.1] and s.info["scales_from"] == "model"
    assert s.info["output_scale"] == convert(net, x[:50]).info["output_scale"]  # the logits' percentile still
    np.testing.assert_allclose(s.ops[0].op.weight, net.layers[0].weight / 0.7, rtol=1e-6)
    conv2 = next(o for o in s.ops[2:] if isinstance(o, snn.Synapses) and isinstance(o.op, graph.Conv2d))
    np.testing.assert_allclose(conv2.op.weight, net.layers[3].weight * 0.7 / 1.3, rtol=1e-6)
    np.testing.assert_allclose(conv2.op.bias, net.layers[3].bias / 1.3, rtol=1e-6)
    assert convert(net, x[:50]).info["scales_from"] == "percentile"


def test_model_threshold_errors(data):
    rng, x = data
    net = small_cnn(rng)
    with pytest.raises(NeuroError, match="2 model thresholds for the 3 ReLU/QCFS layers .*percentile scales"):
        convert(net, x[:50], thresholds=[1.0, 2.0])
    with pytest.raises(NeuroError, match="positive and finite"):
        convert(net, x[:50], thresholds=[1.0, 0.0, 2.0])
    for meta in (None, {}, {"qcfs_thresholds": None}):
        with pytest.raises(NeuroError, match=r"m\.json carries no 'qcfs_thresholds' .*--scales percentile") as e:
            model_thresholds(meta, "m.json")
        assert "\n" not in str(e.value)
    with pytest.raises(NeuroError, match="must be a list of numbers"):
        model_thresholds({"qcfs_thresholds": ["a", 1]}, "m.json")
    assert model_thresholds({"qcfs_thresholds": [1, 2.5]}, "m.json") == [1.0, 2.5]


@pytest.mark.parametrize("levels", [4, 8])
def test_qcfs_rate_equals_the_quantised_activation_at_t_equal_l(levels):
    """Bu et al. 2022, Theorem 2: threshold lambda, V(0) = lambda / 2, reset by subtraction and a constant input
    current z: after T = L steps the spike count times lambda / T is the QCFS activation, exactly."""
    rng = np.random.default_rng(7)
    w, b, lam = rng.normal(0, 1, (40, 4)), rng.normal(0, 0.2, 40), 1.6
    net = graph.Network((1, 2, 2), [graph.Flatten(), graph.Dense(w, b), graph.ReLU(),
                                    graph.Dense(rng.normal(0, 1, (3, 40)), np.zeros(3))])
    x = rng.random((30, 1, 2, 2)).astype(np.float32)
    z = x.reshape(30, 4) @ w.T + b
    expected = qcfs(z, lam, levels)
    assert (expected == 0).any() and (expected == lam).any() and ((expected > 0) & (expected < lam)).any()
    s = convert(net, x, thresholds=[lam])  # v_init 0.5 and reset by subtraction: the defaults
    r = Engine(s).run(x, np.zeros(30, int), levels, progress=False, record_counts=True)
    np.testing.assert_allclose(r.spike_counts[0].reshape(30, 40) * lam / levels, expected, rtol=1e-6)
    # the percentile scale instead of the trained threshold: the quantisation grid no longer matches
    p = convert(net, x, percentile=99.9)
    r = Engine(p).run(x, np.zeros(30, int), levels, progress=False, record_counts=True)
    assert not np.allclose(r.spike_counts[0].reshape(30, 40) * p.info["scales"][0] / levels, expected)


def small_qcfs_net(rng, thresholds=(0.9, 1.4), levels=4):
    """A conv and a dense layer, each followed by QCFS (as the ONNX importer gives them), then the output layer."""
    return graph.Network((1, 6, 6), [
        graph.Conv2d(rng.normal(0, .5, (3, 1, 3, 3)), rng.normal(0, .1, 3)), graph.QCFS(thresholds[0], levels),
        graph.Flatten(), graph.Dense(rng.normal(0, .3, (10, 48)), rng.normal(0, .1, 10)),
        graph.QCFS(thresholds[1], levels), graph.Dense(rng.normal(0, .3, (4, 10)))], name="qcfs")


def test_qcfs_layers_convert_with_their_thresholds_as_scales(data, tmp_path):
    rng, _ = data
    x = rng.random((40, 1, 6, 6)).astype(np.float32)
    net = small_qcfs_net(rng)
    s = convert(net, x)  # percentile by default: QCFS layers take their thresholds all the same
    assert s.info["scales"] == [0.9, 1.4] and s.info["scales_from"] == "qcfs layers"
    np.testing.assert_allclose(s.ops[0].op.weight, net.layers[0].weight / 0.9, rtol=1e-6)
    dense = [o.op for o in s.ops if isinstance(o, snn.Synapses) and isinstance(o.op, graph.Dense)][0]
    np.testing.assert_allclose(dense.weight, net.layers[3].weight * 0.9 / 1.4, rtol=1e-6)
    np.testing.assert_allclose(dense.bias, net.layers[3].bias / 1.4, rtol=1e-6)
    # metadata thresholds (--scales model) that agree to float32 rounding give the same SNN; others are an error
    same = convert(net, x, thresholds=[0.9 * (1 + 1e-8), 1.4])
    assert same.info["scales_from"] == "model" and np.allclose(same.ops[0].op.weight, s.ops[0].op.weight)
    with pytest.raises(NeuroError, match=r"model threshold 1 is 1.5 but QCFS layer 4 .* has threshold 1.4: the "
                                         r"metadata belongs to another file") as e:
        convert(net, x, thresholds=[0.9, 1.5])
    assert "\n" not in str(e.value)
    snn.save(s, tmp_path / "q.h5")  # the ANN's QCFS layers go through the SNN file
    assert snn.load(tmp_path / "q.h5").ann.layers[1] == graph.QCFS(0.9, 4)


@pytest.mark.parametrize("levels", [4, 8])
def test_qcfs_layer_rate_is_its_activation_at_t_equal_l_and_its_clip_at_large_t(levels):
    """A graph.QCFS layer converted with default options, constant input current z: after T = L steps the
    spike count times lambda / T is the layer's output exactly (Bu et al. 2022, Theorem 2); at large T the
    rate times lambda tends to clip(z, 0, lambda), which is within half a quantisation step lambda / (2 L)
    of the QCFS activation (the per-neuron rate then resolves finer than the L levels)."""
    rng = np.random.default_rng(7)
    w, b, lam = rng.normal(0, 1, (40, 4)), rng.normal(0, 0.2, 40), 1.6
    net = graph.Network((1, 2, 2), [graph.Flatten(), graph.Dense(w, b), graph.QCFS(lam, levels),
                                    graph.Dense(rng.normal(0, 1, (3, 40)), np.zeros(3))])
    x = rng.random((30, 1, 2, 2)).astype(np.float32)
    _, acts = net.forward(x, collect=True)
    expected = acts[2]
    assert (expected == 0).any() and np.isclose(expected, lam).any() and ((expected > 0) & (expected < lam - 1e-6)).any()
    s = convert(net, x)
    for steps in (levels, 1024):
        r = Engine(s).run(x, np.zeros(30, int), steps, progress=False, record_counts=True)
        rate = r.spike_counts[0].reshape(30, 40) * lam / steps
        if steps == levels:
            np.testing.assert_allclose(rate, expected, rtol=1e-6, atol=1e-6)
        else:
            np.testing.assert_allclose(rate, np.clip(acts[1], 0, lam), atol=lam / steps)
            assert np.abs(rate - expected).max() <= lam / (2 * levels) + lam / steps
