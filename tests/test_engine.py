"""The numba engine: both synaptic paths against the float reference, neuron dynamics, counters, encodings."""

import numpy as np
import pytest

import chips
from neuro import graph, kernels
from neuro.encode import Encoder, to_channel_last
from neuro.errors import NeuroError
from neuro.sim import LAYER_COUNT_FIELDS, Engine, LayerCounts, SynapseStage
from neuro.snn import SNN, MaxPoolGate, Neurons, Synapses

CONV_CASES = [  # (in channels, out channels, kernel, stride, padding, groups)
    (1, 4, 3, 1, 1, 1), (4, 8, 3, 2, 0, 1), (6, 4, 3, 2, 1, 2), (4, 4, 2, 2, 0, 4), (3, 5, 5, 1, 2, 1),
]


def _stage_outputs(op, in_shape, x):
    out_shape = op.output_shape(in_shape)
    stage = SynapseStage(op, in_shape, out_shape, None, event_threshold=0.05)
    stage.reset(len(x))
    outs = []
    for threshold in (2.0, 0.0):  # 2: always the scatter path; 0: always the dense path
        stage.event_threshold = threshold
        outs.append(stage.step(to_channel_last(x), LayerCounts("t")).copy())
    return outs


@pytest.mark.parametrize("cin,cout,k,s,p,g", CONV_CASES)
def test_conv_paths_match_reference(cin, cout, k, s, p, g):
    rng = np.random.default_rng(1)
    conv = graph.Conv2d(rng.normal(size=(cout, cin // g, k, k)), rng.normal(size=cout), s, p, g)
    x = (rng.random((3, cin, 9, 9)) < 0.3).astype(np.float32) * rng.random((3, cin, 9, 9)).astype(np.float32)
    ref = to_channel_last(conv.forward(x))
    for out in _stage_outputs(conv, (cin, 9, 9), x):
        np.testing.assert_allclose(out, ref, atol=1e-5)


@pytest.mark.parametrize("k,s,p", [(2, 2, 0), (3, 2, 1), (3, 1, 1), (2, 3, 0)])
def test_avg_pool_sums_each_window_in_order(k, s, p):
    """Bit for bit the sum from 0 over the window's taps in (ky, kx) order, times 1/(kh*kw), padding skipped."""
    rng = np.random.default_rng(3)
    x = rng.random((3, 5, 9, 9)).astype(np.float32)
    pool = graph.AvgPool2d(k, s, p)
    (_, oh, ow) = pool.output_shape((5, 9, 9))
    out = np.empty((3, oh * ow * 5), np.float32)
    kernels.avg_pool(to_channel_last(x), out, 9, 9, 5, oh, ow, k, k, s, s, p, p)
    padded = np.pad(x, ((0, 0), (0, 0), (p, p), (p, p)))
    ref = np.zeros((3, 5, oh, ow), np.float32)
    for ky in range(k):
        for kx in range(k):
            ref += padded[:, :, ky:ky + s * (oh - 1) + 1:s, kx:kx + s * (ow - 1) + 1:s]
    ref *= np.float32(1 / (k * k))
    np.testing.assert_array_equal(out, to_channel_last(ref))
    np.testing.assert_allclose(out, to_channel_last(pool.forward(x)), rtol=1e-6)


def test_im2col_copies_each_window():
    rng = np.random.default_rng(4)
    for (c, h, k, s, p) in [(3, 7, 3, 1, 1), (1, 8, 5, 1, 0), (4, 9, 3, 2, 2), (2, 5, 5, 1, 2)]:
        x = rng.random((2, c, h, h)).astype(np.float32)
        o = (h + 2 * p - k) // s + 1
        cols = np.full((2 * o * o, k * k * c), np.nan, np.float32)
        kernels.im2col(to_channel_last(x), cols, h, h, c, o, o, k, k, s, s, p, p)
        padded = np.pad(x, ((0, 0), (0, 0), (p, p), (p, p))).transpose(0, 2, 3, 1)  # (b, y, x, c)
        ref = np.stack([padded[:, oy * s:oy * s + k, ox * s:ox * s + k].reshape(2, -1)
                        for oy in range(o) for ox in range(o)], axis=1).reshape(2 * o * o, -1)
        np.testing.assert_array_equal(cols, ref)


def test_dense_paths_match_reference():
    rng = np.random.default_rng(2)
    dense = graph.Dense(rng.normal(size=(5, 7)), rng.normal(size=5))
    x = (rng.random((4, 7)) < 0.5).astype(np.float32)
    for out in _stage_outputs(dense, (7,), x):
        np.testing.assert_allclose(out, dense.forward(x), atol=1e-5)


def test_conv_fanout_matches_brute_force():
    rng = np.random.default_rng(3)
    w = rng.normal(size=(4, 3, 3, 3)) * (rng.random((4, 3, 3, 3)) < 0.7)
    conv = graph.Conv2d(w, None, stride=2, padding=1)
    stage = SynapseStage(conv, (3, 7, 7), conv.output_shape((3, 7, 7)), None, 0.05)
    brute = np.zeros(3 * 7 * 7)
    for i in range(brute.size):  # fan-out of input i = non-zero entries of the response to a one-hot input
        x = np.zeros((1, 3 * 7 * 7), np.float32)
        x[0, i] = 1
        onehot_chw = x.reshape(1, 7, 7, 3).transpose(0, 3, 1, 2)
        resp = graph.conv2d(onehot_chw, (w != 0).astype(np.float32), np.zeros(4, np.float32), (2, 2), (1, 1))
        brute[i] = resp.sum()
    np.testing.assert_array_equal(stage.fanout, brute)


def test_integrate_fire_hand_trace():
    current = np.full((1, 1), 0.3, np.float32)
    cases = ((True, [0, 0, 0, 1, 0, 0, 1], [0.3, 0.6, 0.9, 0.2, 0.5, 0.8, 0.1]),
             (False, [0, 0, 0, 1, 0, 0, 0], [0.3, 0.6, 0.9, 0, 0.3, 0.6, 0.9]))
    for subtract, expect_spikes, expect_v in cases:
        v, s, trace, spikes = np.zeros((1, 1), np.float32), np.zeros((1, 1), np.float32), [], []
        for _ in range(7):
            spikes.append(kernels.integrate_fire(current, v, s, np.float32(1.0), np.float32(1.0), subtract))
            trace.append(float(v[0, 0]))
        assert spikes == expect_spikes
        np.testing.assert_allclose(trace, expect_v, atol=1e-6)


def test_leaky_neuron_decays():
    v, s = np.full((1, 1), 0.8, np.float32), np.zeros((1, 1), np.float32)
    kernels.integrate_fire(np.zeros((1, 1), np.float32), v, s, np.float32(1.0), np.float32(0.5), True)
    assert v[0, 0] == pytest.approx(0.4)


def test_counts_by_hand():
    """Inputs [1, 0, 1] every step through W = [[1, 0, 2], [0, 0, 1]]: fan-outs 1, 0, 2 -> 3 synops per step."""
    w = np.array([[1, 0, 2], [0, 0, 1]], np.float32)
    snn = SNN((3,), [Synapses(graph.Dense(w)), Neurons(spiking=False)])
    x = np.array([[1, 0, 1]], np.float32)
    for encoding in ("current", "rate"):  # p = 1 spikes every step, p = 0 never
        r = Engine(snn).run(x, np.array([0]), 5, encoding=encoding, progress=False)
        c = r.layers[0]
        assert (c.synops, c.effective_acs, c.effective_macs, c.dense) == (15, 15, 0, 30)
        assert r.per_image("synops") == 15


def test_graded_inputs_count_as_macs():
    snn = SNN((2,), [Synapses(graph.Dense(np.ones((3, 2)))), Neurons(spiking=False)])
    r = Engine(snn).run(np.array([[0.5, 0.0]], np.float32), np.array([0]), 4, progress=False)
    assert (r.layers[0].effective_macs, r.layers[0].effective_acs) == (12, 0)


def test_maxpool_gate_passes_the_most_active_input():
    # one 2x2 window, channel-last; input 2 has spiked most so far, so its current spike passes
    counts = np.array([[1, 0, 3, 0]], np.float32)
    out = np.zeros((1, 1), np.float32)
    for spikes, expect in (([1, 1, 0, 0], 0.0), ([0, 0, 1, 0], 1.0)):
        kernels.maxpool_gate(np.array([spikes], np.float32), counts, out, 2, 2, 1, 1, 1, 2, 2, 2, 2)
        assert out[0, 0] == expect


def test_flatten_then_dense_uses_chw_order():
    rng = np.random.default_rng(4)
    net = graph.Network((2, 3, 3), [graph.Flatten(), graph.Dense(rng.normal(size=(4, 18)))])
    snn = SNN((2, 3, 3), [graph.Flatten(), Synapses(net.layers[1]), Neurons(spiking=False)])
    x = rng.random((5, 2, 3, 3)).astype(np.float32)
    r = Engine(snn).run(x, net.predict(x), 1, progress=False)
    assert r.accuracy == 1.0


def test_rate_encoding_is_seeded_and_unbiased():
    img = np.full((1, 1, 20, 20), 0.3, np.float32)
    a = [Encoder("rate", 7).for_batch(img, 0).step().copy() for _ in range(2)]
    np.testing.assert_array_equal(a[0], a[1])
    enc = Encoder("rate", 8).for_batch(img, 0)
    mean = np.mean([enc.step().mean() for _ in range(200)])
    assert abs(mean - 0.3) < 0.01
    with pytest.raises(NeuroError, match="encoding"):
        Encoder("morse", 0)


def _regular_train(img, steps, start=0):
    enc = Encoder("regular", 0).for_batch(img, start)
    return np.stack([enc.step().copy() for _ in range(steps)])


def test_regular_encoding_spikes_at_known_steps():
    # accumulator from 1/2, + p per step, spike and -1 at >= 1: p = 0.25 reaches 1 at steps 2 and 6 (1-based)
    img = np.array([[[[0.25, 0.0, 1.0, 0.5, 0.1, 0.75]]]], np.float32)
    train = _regular_train(img, 8)[:, 0]
    np.testing.assert_array_equal(np.flatnonzero(train[:, 0]) + 1, [2, 6])
    np.testing.assert_array_equal(train.sum(axis=0), [2, 0, 8, 4, 1, 6])
    np.testing.assert_array_equal(np.flatnonzero(train[:, 3]) + 1, [1, 3, 5, 7])
    assert set(np.unique(train)) <= {0.0, 1.0}
    # every prefix holds floor(p t + 1/2) spikes: p t rounded, within half a spike of the rate
    p = np.arange(256, dtype=np.float32)[None, None, None] / 255
    counts = np.cumsum(_regular_train(p, 300)[:, 0], axis=0)
    t = np.arange(1, 301)[:, None]
    np.testing.assert_array_equal(counts, np.floor(p.reshape(1, -1).astype(np.float64) * t + 0.5))


def test_regular_encoding_ignores_batch_and_seed():
    rng = np.random.default_rng(3)
    imgs = rng.random((7, 3, 4, 4)).astype(np.float32)
    whole = _regular_train(imgs, 20)
    parts = np.concatenate([_regular_train(imgs[:3], 20, 0), _regular_train(imgs[3:], 20, 3)], axis=1)
    np.testing.assert_array_equal(whole, parts)
    other_seed = Encoder("regular", 9).for_batch(imgs, 0)
    np.testing.assert_array_equal(other_seed.step(), whole[0])
    snn = SNN((3, 4, 4), [graph.Flatten(), Synapses(graph.Dense(rng.normal(size=(6, 48)) / 4)), Neurons(),
                          Synapses(graph.Dense(rng.normal(size=(5, 6)))), Neurons(spiking=False)])
    labels = np.zeros(7, np.int64)
    runs = [Engine(snn, threads=k).run(imgs, labels, 16, encoding="regular", batch_size=b, progress=False,
                                       record_counts=True) for k, b in ((1, 7), (2, 2))]
    np.testing.assert_array_equal(runs[0].predictions, runs[1].predictions)
    np.testing.assert_array_equal(runs[0].spike_counts[0], runs[1].spike_counts[0])
    assert runs[0].spike_counts[0].sum() > 0


@pytest.mark.parametrize("value", [-0.01, 1.01, np.nan])
def test_spike_encodings_reject_pixels_outside_unit_range(value):
    img = np.full((1, 1, 2, 2), 0.5, np.float32)
    img[0, 0, 1, 1] = value
    for encoding in ("regular", "rate"):
        with pytest.raises(NeuroError, match=f"{encoding} encoding needs pixel values in \\[0, 1\\]"):
            Encoder(encoding, 0).for_batch(img, 0)


def test_spike_counts_recorded_per_neuron_in_chw_order():
    # a 1x1 conv with weight 0.5 on a constant 2-channel image: neuron (c, y, x) fires at rate = 0.5 * pixel
    w = np.zeros((2, 2, 1, 1), np.float32)
    w[0, 0] = w[1, 1] = 0.5
    snn = SNN((2, 2, 2), [Synapses(graph.Conv2d(w)), Neurons(), graph.Flatten(),
                          Synapses(graph.Dense(np.ones((1, 8)))), Neurons(spiking=False)])
    img = np.zeros((1, 2, 2, 2), np.float32)
    img[0, 0, 0, 1] = 1.0  # channel 0, y 0, x 1
    img[0, 1, 1, 0] = 0.5  # channel 1, y 1, x 0
    r = Engine(snn).run(img, np.array([0]), 40, record_counts=True, progress=False)
    counts = r.spike_counts[0][0]
    assert counts.shape == (2, 2, 2)
    assert counts[0, 0, 1] == 20 and counts[1, 1, 0] == 10
    assert counts.sum() == 30


def test_event_and_dense_paths_give_identical_runs():
    rng = np.random.default_rng(5)
    net = graph.Network((1, 10, 10), [graph.Conv2d(rng.normal(0, .4, (4, 1, 3, 3)), padding=1), graph.ReLU(),
                                      graph.AvgPool2d(2), graph.Conv2d(rng.normal(0, .3, (6, 4, 3, 3))), graph.ReLU(),
                                      graph.Flatten(), graph.Dense(rng.normal(0, .3, (3, 54)))])
    from neuro.convert import convert
    x = rng.random((20, 1, 10, 10)).astype(np.float32)
    snn = convert(net, x)
    runs = [Engine(snn, event_threshold=t).run(x, net.predict(x), 30, progress=False) for t in (0.0, 2.0)]
    np.testing.assert_array_equal(runs[0].correct_by_step, runs[1].correct_by_step)
    np.testing.assert_array_equal(runs[0].predictions, runs[1].predictions)
    assert runs[0].layers[3].dense_steps > 0 and runs[1].layers[3].event_steps > 0


def test_bad_inputs():
    snn = SNN((3,), [Synapses(graph.Dense(np.ones((2, 3)))), Neurons(spiking=False)])
    with pytest.raises(NeuroError, match="do not fit"):
        Engine(snn).run(np.zeros((1, 4), np.float32), np.array([0]), 3, progress=False)
    with pytest.raises(NeuroError, match="timesteps"):
        Engine(snn).run(np.zeros((1, 3), np.float32), np.array([0]), 0, progress=False)
    with pytest.raises(NeuroError, match="reset"):
        Neurons(reset="sideways")


def test_step_traces_match_hand_trace_and_totals():
    """One IF neuron driven by 0.3 per step (v_init 0): spikes at steps 4 and 7, V as derived by hand."""
    snn = SNN((1,), [Synapses(graph.Dense(np.full((1, 1), 0.3))), Neurons(), Synapses(graph.Dense(np.ones((2, 1)))),
                     Neurons(spiking=False)])
    r = Engine(snn).run(np.ones((2, 1), np.float32), np.array([0, 0]), 7, record_steps=True, record_counts=True,
                        progress=False)
    spikes, v = r.traces[0]["spikes"], r.traces[0]["v"]
    assert spikes.shape == (2, 7, 1) and v.dtype == np.float32
    np.testing.assert_array_equal(spikes[0, :, 0], [0, 0, 0, 1, 0, 0, 1])
    np.testing.assert_allclose(v[1, :, 0], [0.3, 0.6, 0.9, 0.2, 0.5, 0.8, 0.1], atol=1e-6)
    np.testing.assert_array_equal(r.traces[1]["v"][0, -1], [2, 2])
    np.testing.assert_array_equal(spikes.sum(axis=1), r.spike_counts[0])


def test_custom_encoder_plays_back_a_spike_train():
    train = np.array([[1, 0, 1, 1]], np.float32)  # (n_in=1, T=4)

    class Playback:
        def for_batch(self, images, start):
            steps = iter(train.T)

            class Inputs:
                static = False

                def step(self):
                    return next(steps)[None, :].copy()
            return Inputs()

    snn = SNN((1,), [Synapses(graph.Dense(np.ones((1, 1)))), Neurons(spiking=False)])
    r = Engine(snn).run(np.zeros((1, 1), np.float32), np.array([0]), 4, encoding=Playback(), record_steps=True,
                        progress=False)
    np.testing.assert_array_equal(r.traces[0]["v"][0, :, 0], [1, 1, 2, 3])


@pytest.mark.parametrize("time_batch", [None, 8])
def test_memory_is_flat_in_timesteps(time_batch):
    """Peak numpy allocation does not grow with T (no per-step arrays unless recording is asked for): a
    time-batched run holds one tile of steps, whatever T."""
    import tracemalloc

    rng = np.random.default_rng(6)
    snn = SNN((1, 12, 12), [Synapses(graph.Conv2d(rng.normal(size=(8, 1, 3, 3)))), Neurons(), graph.Flatten(),
                            Synapses(graph.Dense(rng.normal(size=(3, 800)))), Neurons(spiking=False)])
    x = rng.random((64, 1, 12, 12)).astype(np.float32)
    engine = Engine(snn, threads=1)
    peaks = []
    for steps in (16, 200):
        engine.run(x, np.zeros(64, int), 2, time_batch=time_batch, progress=False)  # warm-up
        tracemalloc.start()
        engine.run(x, np.zeros(64, int), steps, encoding="rate", time_batch=time_batch, progress=False)
        peaks.append(tracemalloc.get_traced_memory()[1])
        tracemalloc.stop()
    assert peaks[1] < 1.2 * peaks[0]


@pytest.mark.parametrize("encoding", ["rate", "current"])
def test_a_run_cut_after_t_steps_equals_a_run_of_t_steps(encoding):
    from conftest import small_converted_cnn

    snn, images = small_converted_cnn()
    labels = np.arange(len(images)) % 3
    engine = Engine(snn, threads=2)
    long = engine.run(images, labels, 12, encoding=encoding, seed=4, batch_size=7, progress=False)
    short = engine.run(images, labels, 5, encoding=encoding, seed=4, batch_size=7, progress=False)
    cut = long.until(5)
    assert cut.timesteps == 5 and long.counts_by_step.shape == (12, len(long.layers), 8)
    np.testing.assert_array_equal(cut.correct_by_step, short.correct_by_step)
    for a, b in zip(cut.layers, short.layers):
        assert (a.name, a.neurons, a.spikes, a.synops, a.dense, a.event_steps) == \
            (b.name, b.neurons, b.spikes, b.synops, b.dense, b.event_steps)
    whole = long.until(12)
    assert [vars(c) for c in whole.layers] == [vars(c) for c in long.layers]
    assert long.per_image("synops") > cut.per_image("synops") > 0
    with pytest.raises(NeuroError, match="give 1..12"):
        long.until(13)


def exact_snn(readout: str) -> SNN:
    """Conv, max-pool gate, grouped conv, avg-pool, flatten, dense: weights in eighths, so every float32 sum is
    exact in any order and a time-batched run must equal the step-by-step run bit for bit."""
    rng = np.random.default_rng(9)
    eighths = lambda *shape: rng.integers(-8, 9, shape) / 8  # noqa: E731
    return SNN((1, 12, 12), [
        Synapses(graph.Conv2d(eighths(4, 1, 3, 3), eighths(4), padding=1)), Neurons(v_init=0.5),
        MaxPoolGate((2, 2), (2, 2)),
        Synapses(graph.Conv2d(eighths(6, 2, 3, 3), None, groups=2)), Neurons(leak=0.5),
        Synapses(graph.AvgPool2d((2, 2))), Neurons(reset="zero"), graph.Flatten(),
        Synapses(graph.Dense(eighths(10, 24), eighths(10))), Neurons(),
        Synapses(graph.Dense(eighths(3, 10))), Neurons(spiking=readout == "spikes")], readout=readout)


def assert_same_run(a, b):
    """Everything a run reports, except which synaptic path each step took (decided per tile)."""
    np.testing.assert_array_equal(a.correct_by_step, b.correct_by_step)
    np.testing.assert_array_equal(a.predictions, b.predictions)
    activity = [LAYER_COUNT_FIELDS.index(f) for f in LAYER_COUNT_FIELDS if f not in ("event_steps", "dense_steps")]
    np.testing.assert_array_equal(a.counts_by_step[..., activity], b.counts_by_step[..., activity])
    for f in ("neurons", "spikes", "synops", "effective_acs", "effective_macs", "dense", "hops"):
        assert [getattr(c, f) for c in a.layers] == [getattr(c, f) for c in b.layers], f
    assert [c.event_steps + c.dense_steps for c in a.layers] == [c.event_steps + c.dense_steps for c in b.layers]
    for x, y in zip(a.spike_counts, b.spike_counts):
        np.testing.assert_array_equal(x, y)
    for x, y in zip(a.traces or [], b.traces or []):
        np.testing.assert_array_equal(x["spikes"], y["spikes"])
        np.testing.assert_array_equal(x["v"], y["v"])


@pytest.mark.parametrize("readout,encoding", [("potential", "rate"), ("spikes", "rate"), ("potential", "current")])
def test_time_batched_run_equals_step_by_step(readout, encoding):
    snn = exact_snn(readout)
    rng = np.random.default_rng(10)
    images = (rng.integers(0, 17, (9, 1, 12, 12)) / 16).astype(np.float32)  # sixteenths: exact currents too
    labels = rng.integers(0, 3, 9)
    engine = Engine(snn, event_threshold=0.15, threads=2)
    kwargs = dict(encoding=encoding, seed=3, batch_size=5, record_counts=True, record_steps=True, progress=False)
    steps = engine.run(images, labels, 13, **kwargs)
    assert steps.layers[3].event_steps > 0 and steps.layers[3].dense_steps == 0  # grouped conv: always events
    assert sum(c.spikes for c in steps.layers) > 0 and steps.counts_by_step[:, 3, 1].min() >= 0
    for tile in (1, 4, 5, 13, 64):  # 13 steps: tiles that divide it, that do not, and one longer than the run
        assert_same_run(engine.run(images, labels, 13, time_batch=tile, **kwargs), steps)


def test_time_batch_must_be_a_positive_whole_number():
    snn = SNN((3,), [Synapses(graph.Dense(np.ones((2, 3)))), Neurons(spiking=False)])
    for bad in (0, -2, 1.5, True):
        with pytest.raises(NeuroError, match="time_batch"):
            Engine(snn).run(np.zeros((1, 3), np.float32), np.array([0]), 3, time_batch=bad, progress=False)


@pytest.mark.parametrize("chip", chips.available())
def test_time_batched_chip_run_equals_step_by_step_bit_for_bit(chip):
    """Integer chip models (Loihi's synaptic delay, TrueNorth's axon delays and merges) in tiles of 5 steps."""
    from conftest import small_converted_cnn

    snn, images = small_converted_cnn()
    program = chips.get(chip).compile(snn)
    engine = Engine(program.snn, program.backend(), threads=2)
    labels = np.arange(len(images)) % 3
    kwargs = dict(encoding="rate", seed=2, batch_size=8, record_counts=True, record_steps=True, progress=False)
    steps = engine.run(images, labels, 17, **kwargs)
    assert steps.traces[-1]["spikes"].any()
    assert_same_run(engine.run(images, labels, 17, time_batch=5, **kwargs), steps)


def test_time_batched_mnist_cnn_keeps_accuracy_at_every_step(mnist_test):
    """The shipped CNN in float: the same accuracy after every step and spike counts that differ at most where a
    float sum's order does (none on this machine; the tolerance is for other BLAS builds)."""
    from conftest import REFERENCE_ONNX
    from neuro.ann import load_model
    from neuro.convert import convert

    x, y = mnist_test
    snn = convert(load_model(REFERENCE_ONNX), x[-200:])
    engine = Engine(snn, threads=2)
    runs = [engine.run(x[:64], y[:64], 20, encoding="rate", record_counts=True, time_batch=tile, progress=False)
            for tile in (None, 6)]
    np.testing.assert_array_equal(runs[0].correct_by_step, runs[1].correct_by_step)
    assert runs[0].spike_counts[0].sum() > 0
    for a, b in zip(runs[0].spike_counts, runs[1].spike_counts):
        assert (a != b).mean() < 1e-3
