"""Bias calibration (neuro.calibrate): it shrinks each hidden layer's per-channel rate error against the ANN."""

import dataclasses

import numpy as np
import pytest

from neuro import graph, snn
from neuro.calibrate import INFO_KEY, calibrate_biases
from neuro.convert import convert
from neuro.errors import NeuroError
from neuro.sim import Engine


def small_net(rng):
    return graph.Network((1, 10, 10), [
        graph.Conv2d(rng.normal(0, .5, (4, 1, 3, 3)), rng.normal(0, .1, 4), padding=1), graph.ReLU(),
        graph.AvgPool2d(2),
        graph.Conv2d(rng.normal(0, .4, (6, 4, 3, 3)), rng.normal(0, .1, 6)), graph.ReLU(),
        graph.Flatten(), graph.Dense(rng.normal(0, .3, (8, 54)), rng.normal(0, .1, 8)), graph.ReLU(),
        graph.Dense(rng.normal(0, .3, (3, 8)), rng.normal(0, .1, 3))], name="small")


@pytest.fixture
def data():
    rng = np.random.default_rng(5)
    return small_net(rng), rng.random((60, 1, 10, 10)).astype(np.float32)


def channel_errors(net: snn.SNN, images, timesteps) -> list[np.ndarray]:
    """Per hidden layer, per channel: mean over images and positions of clip(ANN / lambda, 0, 1) - spikes / T,
    computed here from the engine's counts and the ANN's forward pass, independently of neuro.calibrate."""
    counts = Engine(net, threads=1).run(images, np.zeros(len(images)), timesteps, record_counts=True,
                                        progress=False).spike_counts
    _, acts = net.ann.forward(images, collect=True)
    relus = [i for i, layer in enumerate(net.ann.layers) if isinstance(layer, graph.ReLU)]
    out = []
    for population, relu, scale in zip(counts, relus, net.info["scales"]):  # no pool neurons: populations match
        diff = np.clip(acts[relu] / scale, 0, 1) - population / timesteps
        out.append(diff.mean(axis=(0, 2, 3) if diff.ndim == 4 else 0))
    return out


@pytest.mark.parametrize("v_init,factor", [(0.0, 0.5), (0.5, 0.7)])
def test_calibration_shrinks_the_per_channel_rate_error(data, v_init, factor):
    """At T = 4 with v_init 0 every active neuron's rate is floor(z T) / T, biased low, and the bias compounds
    layer by layer (the last hidden layer is 0.14 off per channel); v_init 0.5 centres it, leaving less to fix.
    A sparse layer keeps part of its error: a channel's rate follows its bias only where the neurons are active."""
    net, x = data
    raw = convert(net, x, v_init=v_init)
    fixed = calibrate_biases(raw, x, 4)
    before, after = ([np.abs(e).mean() for e in channel_errors(s, x, 4)] for s in (raw, fixed))
    assert all(a < b for a, b in zip(after, before))
    assert sum(after) < factor * sum(before)
    if v_init == 0:
        assert before[-1] > 0.1  # the constructed case is biased
    assert fixed.info[INFO_KEY] == {"timesteps": 4, "images": 60, "encoding": "current"}
    assert {k: v for k, v in fixed.info.items() if k != INFO_KEY} == raw.info


def test_only_hidden_biases_change_and_the_input_snn_stays(data):
    net, x = data
    raw = convert(net, x)
    kept = [layer.bias.copy() for layer in weighted(raw)]
    fixed = calibrate_biases(raw, x, 3)
    pairs = list(zip(weighted(raw), weighted(fixed)))
    assert all(np.array_equal(a.weight, b.weight) for a, b in pairs)
    assert all(not np.array_equal(a.bias, b.bias) for a, b in pairs[:-1])
    assert np.array_equal(pairs[-1][0].bias, pairs[-1][1].bias)  # the output layer is left as it is
    assert all(np.array_equal(layer.bias, k) for layer, k in zip(weighted(raw), kept))  # the input SNN is unchanged
    assert all(b.bias.dtype == np.float32 for _, b in pairs)


def weighted(net: snn.SNN) -> list:
    """The SNN's Conv2d and Dense layers."""
    return [op.op for op in net.ops if isinstance(op, snn.Synapses) and isinstance(op.op, (graph.Conv2d, graph.Dense))]


def test_calibration_runs_on_at_most_max_images_spread_over_them(data):
    net, x = data
    raw = convert(net, x)
    assert calibrate_biases(raw, x, 2, max_images=20).info[INFO_KEY]["images"] == 20
    same = calibrate_biases(raw, x[::3], 2)
    np.testing.assert_array_equal(calibrate_biases(raw, x, 2, max_images=20).ops[0].op.bias, same.ops[0].op.bias)


def test_calibrated_snn_saves_and_loads(tmp_path, data):
    net, x = data
    fixed = calibrate_biases(convert(net, x), x, 2)
    snn.save(fixed, tmp_path / "c.h5")
    back = snn.load(tmp_path / "c.h5")
    assert back.info == fixed.info
    np.testing.assert_array_equal(back.ops[0].op.bias, fixed.ops[0].op.bias)


@pytest.mark.parametrize("steps", [0, -3, True, 2.5])
def test_bad_steps_are_rejected(data, steps):
    net, x = data
    with pytest.raises(NeuroError, match="whole number of steps of 1 or more") as e:
        calibrate_biases(convert(net, x), x, steps)
    assert "\n" not in str(e.value)


def test_snns_that_cannot_be_calibrated(data):
    net, x = data
    raw = convert(net, x)
    with pytest.raises(NeuroError, match="already calibrated"):
        calibrate_biases(calibrate_biases(raw, x, 2), x, 2)
    with pytest.raises(NeuroError, match="keeps no ANN"):
        calibrate_biases(dataclasses.replace(raw, ann=None), x, 2)
    with pytest.raises(NeuroError, match="do not match its ANN's ReLU layers"):
        calibrate_biases(dataclasses.replace(raw, info={**raw.info, "scales": raw.info["scales"][:2]}), x, 2)
    with pytest.raises(NeuroError, match="at least one image"):
        calibrate_biases(raw, x[:0], 2)


def test_qcfs_layers_are_calibrated_like_relus(data):
    """A network with QCFS activations (thresholds as scales): every hidden layer's bias moves, the output's not."""
    net, x = data
    layers = [graph.QCFS(2.0, 8) if isinstance(layer, graph.ReLU) else layer for layer in net.layers]
    qnet = graph.Network(net.input_shape, layers, name="small-qcfs")
    raw = convert(qnet, x)
    fixed = calibrate_biases(raw, x, 4)
    pairs = list(zip(weighted(raw), weighted(fixed)))
    assert all(not np.array_equal(a.bias, b.bias) for a, b in pairs[:-1])
    assert np.array_equal(pairs[-1][0].bias, pairs[-1][1].bias)


def test_calibrating_for_other_dynamics_measures_them(data):
    """``dynamics``: the rates are measured on proxy(SNN) (here: reset to zero, as Loihi runs), so the biases
    shrink that network's error, more than a calibration measured on the SNN itself does; an SNN calibrated for
    its own dynamics may be calibrated again for others, once, and the record keeps both."""
    net, x = data
    raw = convert(net, x, v_init=0.5)

    def zero(s):
        return snn.SNN(s.input_shape, [dataclasses.replace(op, reset="zero") if isinstance(op, snn.Neurons) else op
                                       for op in s.ops], s.readout, s.ann, s.info)

    own = calibrate_biases(raw, x, 8)
    both = calibrate_biases(own, x, 8, dynamics=("zero", zero))
    error = {name: sum(np.abs(e).mean() for e in channel_errors(zero(s), x, 8))
             for name, s in [("raw", raw), ("own", own), ("both", both)]}
    assert error["both"] < 0.5 * error["own"] and error["both"] < 0.5 * error["raw"]
    assert both.info[INFO_KEY] == {"timesteps": 8, "images": 60, "encoding": "current", "dynamics": "zero",
                                   "after": own.info[INFO_KEY]}
    assert all(op.reset == "subtract" for op in both.ops if isinstance(op, snn.Neurons))   # the SNN's own neurons
    with pytest.raises(NeuroError, match="already calibrated .* once for zero"):
        calibrate_biases(both, x, 8, dynamics=("zero", zero))
    with pytest.raises(NeuroError, match="already calibrated"):
        calibrate_biases(own, x, 8)
