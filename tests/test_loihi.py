"""Loihi 1 chip model: hand-derived integer traces, Lava's own golden values, conv synapses, bad inputs."""

import re

import numpy as np
import pytest

from neuro.encode import Playback
from chips.compiling import compose as _compose
from chips.loihi.compile import READOUT_VTH, compile_snn, float_proxy
from chips.loihi.neuron import VTH_MAX, LoihiBackend, LoihiLayer, program_snn, quantize_weights, simulate_chain
from conftest import REFERENCE_ONNX
from neuro import graph
from neuro.ann import load_model
from neuro.convert import convert
from neuro.errors import NeuroError
from neuro.sim import Engine
from neuro.snn import SNN, MaxPoolGate, Neurons, Synapses

VTH_MAX = (1 << 17) - 1


def _layer(weights, **kw):
    spec = dict(weights=np.asarray(weights), num_weight_bits=8, weight_exp=0, du=0, dv=0, vth=VTH_MAX,
                bias_mant=0, bias_exp=0)
    spec.update(kw)
    return spec


def _impulse(n_in, T, at=0):
    src = np.zeros((n_in, T), np.int64)
    src[:, at] = 1
    return src


def _dense_output(weights, **kw):
    """What Lava's Dense sends one step after all inputs spike at step 3, read through a LIF with du = dv =
    4095: then u = a << 6 exactly and v = u (v starts at 0, vth is too high to spike)."""
    (spikes, v), = simulate_chain(_impulse(np.shape(weights)[1], 5, at=3), [_layer(weights, du=4095, dv=4095, **kw)])
    assert not spikes.any()
    assert not v[:, :4].any()
    return v[:, 4] >> 6


# --- Lava's own unit tests (tests/lava/proc/lif/test_models.py, dense/test_models.py), their numbers ------

def test_lava_golden_bias_driven_no_decay():
    # bias 2 << 6 = 128 per step, vth 8 << 6 = 512, strict: spikes at steps 5 and 10 (Lava's expected[4:10:5])
    (spikes, v), = simulate_chain(np.zeros((1, 10), int), [_layer(np.zeros((10, 1)), vth=8, bias_mant=2,
                                                                   bias_exp=6)])
    expected = np.zeros((10, 10), bool)
    expected[:, 4:10:5] = True
    np.testing.assert_array_equal(spikes, expected)
    np.testing.assert_array_equal(v[0], [128, 256, 384, 512, 0, 128, 256, 384, 512, 0])


def test_lava_golden_current_impulse_du_2047():
    # activation 128, du = 2047 (+ ds_offset 1 = half): u = 1 << (13 - j); dv = 0 so v sums u, vth 256
    (spikes, v), = simulate_chain(_impulse(1, 9), [_layer([[128]], du=2047, vth=256)])
    u = np.diff(v[0], prepend=0)[1:]  # Dense latency: the impulse reaches the neuron one step later
    np.testing.assert_array_equal(u, [1 << (13 - j) for j in range(8)])
    assert not spikes.any()


def test_lava_golden_voltage_impulse_dv_2048():
    (spikes, v), = simulate_chain(_impulse(1, 9), [_layer([[128]], dv=2048, vth=256)])
    np.testing.assert_array_equal(v[0, 1:], [8192, 12286, 14331, 15351, 15859, 16111, 16235, 16295])
    assert not spikes.any()


# Lava's Dense goldens feed 300 / -300 / 0.5 / -0.4, which Lava saturates to 255 / -256 and casts to 0; we
# refuse weights outside the 9-bit format (test_weights_overflowing_the_format), so we give the saturated
# values and expect Lava's numbers.
@pytest.mark.parametrize("weights,kw,expected", [
    ([0, 255, 40], {}, [0, 255, 40]),                            # excitatory: full 8 bits
    ([255, -256, 39], {}, [254, -256, 38]),                       # mixed: even values only
    ([255, -256, 39], dict(weight_exp=1), [508, -512, 76]),       # weight_exp doubles the output
    ([255, -256, 39], dict(num_weight_bits=7), [252, -256, 36]),  # 7 bits mixed: multiples of 4
])
def test_lava_golden_dense_fan_out(weights, kw, expected):
    w = np.zeros((3, 4), int)
    w[:, 2] = weights
    np.testing.assert_array_equal(_dense_output(w, **kw), expected)


def test_lava_golden_dense_fan_in_mixed():
    w = np.zeros((3, 4), int)
    w[2] = [255, -256, 39, 0]
    np.testing.assert_array_equal(_dense_output(w), [0, 0, 36])


# --- hand-derived traces -----------------------------------------------------------------------------------

def test_current_decay_truncates_toward_zero():
    # a = -1 -> u = -64; du = 1000 keeps 3095/4096: -64 * 3095 / 4096 = -48.4 -> -48 (floor would give -49)
    (_, v), = simulate_chain(_impulse(1, 6), [_layer([[-1]], du=1000, vth=10)])
    np.testing.assert_array_equal(v[0], [0, -64, -112, -148, -175, -195])  # u = -64, -48, -36, -27, -20


def test_current_wraps_around_at_24_bits():
    # a = 255 << 7 every step -> u += 2088960; u decays by 1/4096 (du = 0); dv = 4095 makes v ~ u.
    # u: 2088960, 4177410, 6265350, 8352780, then 10441... > 2^23 wraps to -6337516
    src = np.ones((1, 8), int)
    (spikes, v), = simulate_chain(src, [_layer([[255]], weight_exp=7, dv=4095)])
    np.testing.assert_array_equal(v[0], [0, 2088960, 4177920, 6266370, 8354309, -6335477, -4248554, -2158048])
    assert not spikes.any()


def test_voltage_saturates_then_crosses_the_largest_threshold():
    # bias 4095 << 7 = 524160 per step: v reaches 16 x 524160 = 8386560, then saturates at 2^23 - 1 = 8388607,
    # which is above vth_max << 6 = 8388544: a spike, reset to 0
    (spikes, v), = simulate_chain(np.zeros((1, 18), int), [_layer(np.zeros((1, 1)), bias_mant=4095, bias_exp=7)])
    assert v[0, 15] == 8386560 and v[0, 16] == 0 and v[0, 17] == 524160
    np.testing.assert_array_equal(np.flatnonzero(spikes[0]), [16])
    # bias -4096 << 7: v saturates at -(2^23 - 1) and stays
    (spikes, v), = simulate_chain(np.zeros((1, 18), int), [_layer(np.zeros((1, 1)), bias_mant=-4096, bias_exp=7)])
    np.testing.assert_array_equal(v[0, 15:], [-(2 ** 23) + 1] * 3)
    assert not spikes.any()


def test_threshold_is_strict():
    # a = 1 -> u = 64 each step (du = 4095 forgets), dv = 0: v = 64, 128, 192; vth = 2 -> 128 stays, 192 spikes
    (spikes, v), = simulate_chain(np.ones((1, 5), int), [_layer([[1]], du=4095, vth=2)])
    np.testing.assert_array_equal(v[0], [0, 64, 128, 0, 64])
    np.testing.assert_array_equal(spikes[0], [0, 0, 0, 1, 0])


def test_negative_bias_exponent_shifts_right():
    (_, v), = simulate_chain(np.zeros((1, 2), int), [_layer(np.zeros((2, 1)), bias_mant=[-7, 7], bias_exp=-1)])
    np.testing.assert_array_equal(v[:, 0], [-4, 3])  # arithmetic >> 1


def test_dense_latency_is_one_step_per_layer():
    # a single input spike at step 0 makes layer 1 spike at step 1 and layer 2 at step 2 (du = 4095: u = a << 6)
    layers = [_layer([[8]], du=4095, vth=0), _layer([[8]], du=4095, vth=0)]
    (s1, _), (s2, _) = simulate_chain(_impulse(1, 4), layers)
    np.testing.assert_array_equal(s1[0], [0, 1, 0, 0])
    np.testing.assert_array_equal(s2[0], [0, 0, 1, 0])


def test_u_is_not_reset_by_a_spike():
    # a = 8 once: u = 512, 511, 510 (du = 0) keeps pushing v over vth 7 << 6 = 448 after every reset
    (spikes, v), = simulate_chain(_impulse(1, 4), [_layer([[8]], vth=7)])
    np.testing.assert_array_equal(spikes[0], [0, 1, 1, 1])
    assert not v.any()


def test_weight_truncation_by_sign_mode():
    # mixed, 7 bits: t = 2, arithmetic (floor); inhibitory, 7 bits: t = 1 toward zero, -256 clipped to -255
    np.testing.assert_array_equal(quantize_weights([[-3, 5, 255]], 7), [[-4, 4, 252]])
    np.testing.assert_array_equal(quantize_weights([[-3, -255, -256]], 7), [[-2, -254, -254]])
    np.testing.assert_array_equal(quantize_weights([[3, 255, 1]], 1), [[0, 128, 0]])


def test_a_source_count_above_one_is_one_spike():
    (_, v2), = simulate_chain(np.array([[2, 0, 0]]), [_layer([[1]], du=4095, vth=10)])
    (_, v1), = simulate_chain(np.array([[1, 0, 0]]), [_layer([[1]], du=4095, vth=10)])
    np.testing.assert_array_equal(v1, v2)


def test_bool_and_uint8_sources_are_spikes():
    src = np.array([[True, False, True]])
    layers = [_layer([[3]], du=4095, vth=1)]
    expected = simulate_chain(src.astype(np.int64), layers)
    for s in (src, src.astype(np.uint8)):
        for (sp, v), (sp_e, v_e) in zip(simulate_chain(s, layers), expected):
            np.testing.assert_array_equal(sp, sp_e)
            np.testing.assert_array_equal(v, v_e)


# --- conv synapses: the engine's conv stage with integer weights = the unrolled dense matrix ---------------

def _unrolled(conv: graph.Conv2d, in_shape) -> np.ndarray:
    """The (out, in) matrix of a conv, both sides flat (C, H, W)."""
    n_in = int(np.prod(in_shape))
    eye = np.eye(n_in, dtype=np.float32).reshape(n_in, *in_shape)
    return np.rint(conv.forward(eye).reshape(n_in, -1).T).astype(np.int64)


def test_conv_layer_matches_its_dense_unrolling():
    # conv -> dense on the engine (conv stage, channel-last, Flatten) = the same two layers as Lava-style dense
    rng = np.random.default_rng(4)
    in_shape, T = (2, 6, 6), 12
    conv = graph.Conv2d(rng.integers(-256, 256, (3, 2, 3, 3)), None, stride=2, padding=1)
    p1 = dict(num_weight_bits=6, weight_exp=2, du=300, dv=100, vth=40, bias_mant=[5, -20, 60], bias_exp=3)
    w2 = rng.integers(-40, 200, (4, 27))
    p2 = dict(num_weight_bits=8, weight_exp=-1, du=0, dv=4000, vth=3, bias_mant=0, bias_exp=0)
    src = (rng.random((int(np.prod(in_shape)), T)) < 0.4).astype(np.int64)  # rows in (C, H, W) order

    layers = [LoihiLayer(conv, **p1), LoihiLayer(graph.Dense(w2), **p2)]
    snn = program_snn(layers, in_shape)
    trains_hwc = src.reshape(*in_shape, T).transpose(1, 2, 0, 3).reshape(1, -1, T)  # engine: channel-last
    r = Engine(snn, LoihiBackend(layers, snn)).run(np.zeros((1, *in_shape), np.float32), np.zeros(1), T,
                                                   encoding=Playback(trains_hwc.transpose(0, 2, 1)), record_steps=True,
                                                   progress=False)
    oh, ow = conv.output_shape(in_shape)[1:]
    chain = [dict(p1, weights=_unrolled(conv, in_shape), bias_mant=np.repeat(p1["bias_mant"], oh * ow)),
             dict(p2, weights=w2)]
    for trace, (spikes, v) in zip(r.traces, simulate_chain(src, chain)):
        np.testing.assert_array_equal(trace["spikes"][0].reshape(T, -1).T, spikes)
        np.testing.assert_array_equal(trace["v"][0].reshape(T, -1).T, v)
        assert spikes.any() and (~spikes).any()


# --- bad inputs: one-line NeuroErrors ------------------------------------------------------------------------

@pytest.mark.parametrize("change,words", [
    (dict(du=4096), "du = 4096 is out of range"),
    (dict(dv=-1), "dv = -1 is out of range"),
    (dict(weights=np.array([[300]])), "weights = 300 is out of range"),
    (dict(weights=np.array([[-257]])), "weights = -257 is out of range"),
    (dict(weights=np.array([[0.5]])), "weights must be integers"),
    (dict(num_weight_bits=0), "num_weight_bits = 0 is out of range"),
    (dict(num_weight_bits=9), "num_weight_bits = 9 is out of range"),
    (dict(weight_exp=8), "weight_exp = 8 is out of range"),
    (dict(vth=1 << 17), "vth = 131072 is out of range"),
    (dict(bias_mant=4096), "bias_mant = 4096 is out of range"),
    (dict(bias_exp=8), "bias_exp = 8 is out of range"),
    (dict(bias_mant=[1, 2]), "bias_mant has shape (2,)"),
    (dict(weights=np.ones((1, 2), int)), "weights take 2 inputs but the source has 1"),
])
def test_bad_layer_parameters_are_clear_errors(change, words):
    with pytest.raises(NeuroError, match=re.escape(words)) as e:
        simulate_chain(np.ones((1, 3), int), [{**_layer([[1]]), **change}])
    assert "\n" not in str(e.value)


def test_missing_keys_and_bad_source_are_clear_errors():
    with pytest.raises(NeuroError, match="layer 0 lacks du, dv"):
        simulate_chain(np.ones((1, 3), int), [{k: v for k, v in _layer([[1]]).items() if k not in ("du", "dv")}])
    with pytest.raises(NeuroError, match=r"source must be \(n_in, T\)"):
        simulate_chain(np.ones(3, int), [_layer([[1]])])


def test_fan_in_beyond_exact_float32_is_refused():
    with pytest.raises(NeuroError, match="beyond the exact integer range"):
        LoihiLayer(graph.Dense(np.full((1, 70000), 255)))


# --- compiling a converted SNN ------------------------------------------------------------------------------

def _small_cnn(rng):
    return graph.Network((1, 10, 10), [
        graph.Conv2d(rng.normal(0, 0.5, (4, 1, 3, 3)), rng.normal(0, 0.1, 4)), graph.ReLU(), graph.AvgPool2d(2),
        graph.Conv2d(rng.normal(0, 0.3, (6, 4, 3, 3)), rng.normal(0, 0.1, 6)), graph.ReLU(), graph.AvgPool2d(2),
        graph.Flatten(), graph.Dense(rng.normal(0, 0.3, (8, 6)), rng.normal(0, 0.1, 8)), graph.ReLU(),
        graph.Dense(rng.normal(0, 0.3, (3, 8)))])


def test_pooling_folds_into_the_next_synapses_exactly():
    rng = np.random.default_rng(5)
    net = _small_cnn(rng)
    x = rng.random((3, 4, 8, 8)).astype(np.float32)
    pool, conv = net.layers[2], net.layers[3]
    folded = _compose(pool, (4, 8, 8), conv, (4, 4, 4), "test")
    np.testing.assert_allclose(folded.forward(x), conv.forward(pool.forward(x)), atol=1e-5)
    x2 = rng.random((3, 6, 2, 2)).astype(np.float32)
    dense = graph.Dense(rng.normal(size=(8, 6)), rng.normal(size=8))
    folded = _compose(net.layers[5], (6, 2, 2), dense, (6,), "test")
    pooled = net.layers[5].forward(x2).reshape(3, -1)
    np.testing.assert_allclose(folded.forward(x2.reshape(3, -1)), dense.forward(pooled), atol=1e-5)


def test_compiled_cnn_quantisation_and_run():
    rng = np.random.default_rng(6)
    net = _small_cnn(rng)
    images = rng.random((20, 1, 10, 10)).astype(np.float32)
    program = compile_snn(convert(net, images, reset="zero", readout="spikes"))
    assert len(program.layers) == 4  # conv, conv (pool folded), dense (pool folded), dense
    for q in program.quantisation:
        assert q["weight_rel_rms"] < 0.05 and q["reset"] == "zero"
        assert q["weight_max_abs"] <= 2.0 ** q["weight_exp"] / q["vth"]  # at most one even mantissa step
    layer = program.layers[0]
    assert layer.du == 4095 and layer.dv == 0 and program.quantisation[0]["v_init_capped"] == 0
    np.testing.assert_array_equal(layer.v_init, (layer.vth << 6) // 2 - layer.bias())  # its first input: step 1
    r = Engine(program.snn, program.backend()).run(images, np.zeros(20, np.int64), 30, encoding="rate",
                                                   progress=False)
    assert r.per_image("spikes") > 0 and r.per_image("effective_macs") == 0  # binary spikes everywhere


def test_potential_readout_probes_the_output_layers_v():
    rng = np.random.default_rng(6)
    net = _small_cnn(rng)
    images = rng.random((20, 1, 10, 10)).astype(np.float32)
    snn = convert(net, images, reset="zero", readout="potential")
    program = compile_snn(snn)
    out = program.layers[-1]
    assert program.snn.readout == "potential" and out.vth == VTH_MAX
    np.testing.assert_array_equal(out.v_init, -len(program.layers) * out.bias())  # v starts at 0 with the input
    assert program.quantisation[-1]["vth"] == READOUT_VTH and program.quantisation[-1]["weight_rel_rms"] < 0.05
    assert any("voltage probe" in d for d in program.deviations)
    r = Engine(program.snn, program.backend(), threads=1).run(images, np.zeros(20, np.int64), 30, encoding="regular",
                                                               record_steps=True, progress=False)
    spikes, v = r.traces[-1]["spikes"], r.traces[-1]["v"]
    assert spikes.sum() == 0 and np.abs(v).max() > 0                     # the output layer integrates, silent
    np.testing.assert_array_equal(r.predictions, v[:, -1].argmax(axis=1))  # class = largest probed v
    spiking = compile_snn(convert(net, images, reset="zero", readout="spikes"))
    for a, b in zip(program.layers[:-1], spiking.layers[:-1]):               # the hidden layers are unchanged
        np.testing.assert_array_equal(a.weights, b.weights)


@pytest.mark.parametrize("reset,reset_threshold", [("zero", 1.0), ("subtract", 0.5)])
def test_initial_v_undoes_the_bias_of_the_steps_before_the_first_input(reset, reset_threshold):
    """Layer k's first input arrives at step k + 1 (one step of synaptic latency per layer) but its bias acts from
    step 0: its initial v is lowered by those steps of bias, so from step k + 1 on its v and spikes are those of the
    float SNN as the program runs it (``float_proxy``: reset to zero, a subtracting layer's threshold at
    reset_threshold), whose bias and input start together (dyadic values: exact in both; no v lands on a threshold)."""
    silent = graph.Dense(np.full((2, 3), 0.5), np.full(2, -0.125))        # no input: layer 0 never spikes
    biased = graph.Dense(np.array([[0.25, -0.25], [0.5, 0.5]]), np.array([5 / 32, -3 / 32]))
    snn = SNN((3,), [Synapses(silent), Neurons(1.0, 0.0, reset, 0.5), Synapses(biased), Neurons(1.0, 0.0, reset, 0.5)],
              readout="spikes")
    program = compile_snn(snn, reset_threshold=reset_threshold)
    T = 24

    def last_layer(engine):
        trace = engine.run(np.zeros((1, 3), np.float32), np.zeros(1), T, encoding="regular", record_steps=True,
                           progress=False).traces[-1]
        return trace["spikes"][0], trace["v"][0]

    chip_spikes, chip_v = last_layer(Engine(program.snn, program.backend(), threads=1))
    float_spikes, float_v = last_layer(Engine(float_proxy(snn, {"reset_threshold": reset_threshold}), threads=1))
    assert float_spikes[:, 0].sum() > 2 and program.quantisation[1]["v_init_capped"] == 0
    assert chip_spikes[:2].sum() == 0                                      # nothing before the first input
    np.testing.assert_array_equal(chip_spikes[2:], float_spikes[:-2])
    np.testing.assert_array_equal(chip_v[2:] / float(program.layers[1].vth << 6) * reset_threshold, float_v[:-2])
    if reset == "subtract":   # the converted SNN itself runs differently: it keeps the charge above the threshold
        assert not np.array_equal(last_layer(Engine(snn, threads=1))[0], float_spikes)


def test_reset_threshold_lowers_subtracting_layers_thresholds_only():
    rng = np.random.default_rng(6)
    net = _small_cnn(rng)
    images = rng.random((20, 1, 10, 10)).astype(np.float32)
    snn = convert(net, images, readout="potential")   # reset by subtraction, replaced by reset to zero
    plain, half = compile_snn(snn), compile_snn(snn, reset_threshold=0.5)
    for k, (a, b) in enumerate(zip(plain.layers, half.layers)):
        gain = 2.0 if k < len(plain.layers) - 1 else 1.0   # the probed output layer does not spike
        wa = a.weights * 2.0 ** a.weight_exp / plain.quantisation[k]["vth"]
        wb = b.weights * 2.0 ** b.weight_exp / half.quantisation[k]["vth"]
        step_a, step_b = (2.0 ** c.weight_exp / p.quantisation[k]["vth"] for c, p in ((a, plain), (b, half)))
        np.testing.assert_allclose(wb, gain * wa, rtol=0, atol=step_b + gain * step_a)   # one mantissa step each
        assert np.abs(wb - gain * wa).max() < 0.05 * np.abs(wa).max()
    assert any("lowered to 0.5" in d for d in half.deviations)
    assert not any("lowered" in d for d in plain.deviations)
    zero = convert(net, images, reset="zero", readout="potential")   # nothing to compensate
    np.testing.assert_array_equal(compile_snn(zero, reset_threshold=0.5).layers[0].weights,
                                  compile_snn(zero).layers[0].weights)
    with pytest.raises(NeuroError, match="reset_threshold is 1.5"):
        compile_snn(snn, reset_threshold=1.5)


def test_compile_refuses_max_pooling_and_unfit_weights():
    conv = graph.Conv2d(np.ones((2, 1, 3, 3)))
    with pytest.raises(NeuroError, match="MaxPoolGate"):
        compile_snn(SNN((1, 6, 6), [Synapses(conv), Neurons(), MaxPoolGate((2, 2), (2, 2)), graph.Flatten(),
                                    Synapses(graph.Dense(np.ones((2, 8)))), Neurons()]))
    for scale in (1e5, 1e-5):
        with pytest.raises(NeuroError, match=r"layer 0 \(op 1\): weights .* do not fit the Loihi format"):
            compile_snn(SNN((3,), [Synapses(graph.Dense(np.full((2, 3), scale))), Neurons()]))


@pytest.mark.slow
def test_mnist_on_emulated_loihi(mnist_test):
    """The reference CNN compiled for Loihi keeps the ANN's accuracy on 200 test images at 64 steps."""
    if not REFERENCE_ONNX.is_file():
        pytest.skip(f"{REFERENCE_ONNX} is not there: train it with experiments/train_mnist.py")
    images, labels = mnist_test
    net = load_model(REFERENCE_ONNX)
    program = compile_snn(convert(net, images[1::50][:200], reset="zero", readout="spikes"))
    x, y = images[::50][:200], labels[::50][:200]
    r = Engine(program.snn, program.backend()).run(x, y, 64, encoding="rate", progress=False)
    ann = float((net.forward(x).argmax(axis=1) == y).mean())
    assert r.accuracy >= ann - 0.015, (r.accuracy, ann)
    assert all(q["weight_rel_rms"] < 0.05 for q in program.quantisation)

