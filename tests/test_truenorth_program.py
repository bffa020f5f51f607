"""Converted networks on TrueNorth: the engine's layer-level program (chips.truenorth.program) against the same
network written out as cores and routes (chips.truenorth.cores) and run on the chip simulator, tick by tick."""

import os

import numpy as np
import pytest

import chips
from chips.truenorth import CORE_AXONS, CORE_NEURONS
from chips.truenorth.chip import run_chip
from chips.truenorth.cores import engine_index, build_chip
from chips.truenorth.program import COEFFICIENTS, MERGE_UNIT, MergeOp, compile_snn, float_proxy
from neuro import encode, graph
from neuro.convert import convert
from neuro.errors import NeuroError
from neuro.sim import LAYER_COUNT_FIELDS, Engine
from neuro.snn import SNN, Neurons, Synapses

from conftest import REFERENCE_ONNX

SCHEMES = [("multilevel", 4), ("multilevel", 2), ("trinary", 3)]


def small_net(seed=3, padding=1):
    """(SNN, images): a padded conv whose 75-tap field splits under multilevel 4 (64 inputs per core), a pool,
    a dense layer of fan-in 288 (split under every scheme) and a spiking output of 5 classes."""
    rng = np.random.default_rng(seed)
    side = (8 + 2 * padding - 4) // 2
    net = graph.Network((3, 8, 8), [
        graph.Conv2d(rng.normal(0, 0.3, (8, 3, 5, 5)), rng.normal(0, 0.05, 8), padding=padding), graph.ReLU(),
        graph.AvgPool2d(2), graph.Flatten(), graph.Dense(rng.normal(0, 0.2, (40, 8 * side * side)),
                                                         rng.normal(0, 0.05, 40)), graph.ReLU(),
        graph.Dense(rng.normal(0, 0.3, (5, 40)))])
    images = rng.random((30, 3, 8, 8)).astype(np.float32)
    return convert(net, images), images


def run_both(program, trains, time_batch=None):
    """Output spikes (n, T, classes) and counts of the engine program and of the built chip, per image."""
    n, ticks = trains.shape[:2]
    result = Engine(program.snn, program.backend(), threads=1).run(
        np.zeros((n, *program.snn.input_shape), np.float32), np.zeros(n, np.int64), ticks,
        encoding=encode.Playback(trains), record_steps=True, progress=False, time_batch=time_batch)
    chip = build_chip(program)
    to_ir = engine_index(program.snn.input_shape)
    runs = [run_chip(chip, trains[i][:, to_ir] > 0) for i in range(n)]
    return result, chip, runs


@pytest.mark.parametrize("scheme,levels", SCHEMES)
@pytest.mark.parametrize("time_batch", [None, 16])
def test_program_equals_the_cores_tick_by_tick(scheme, levels, time_batch):
    snn, _ = small_net()
    program = compile_snn(snn, scheme, levels)
    assert any(m.pieces > 1 for m in program.mapping.layers)       # the split and merge path is exercised
    trains = (np.random.default_rng(1).random((3, 40, 192)) < 0.3).astype(np.float32)
    result, chip, runs = run_both(program, trains, time_batch)
    assert len(chip.cores) == program.mapping.cores
    out = result.traces[-1]["spikes"].astype(bool)
    for i, run in enumerate(runs):
        np.testing.assert_array_equal(run.spikes, out[i])
    assert out.sum() > 10                                           # the output layer does spike
    # counts: the engine counts at arrival, the chip at sending or at the splitter: equal up to the last ticks
    sops, hops = sum(r.sops for r in runs), sum(r.hops for r in runs)
    assert result.per_image("synops") * 3 == pytest.approx(sops, rel=0.03)
    assert result.per_image("hops") * 3 == pytest.approx(hops, rel=0.06)
    packets = (trains.sum(axis=1)[:, engine_index(snn.input_shape)] * program.mapping.layers[0].input_axons).sum()
    assert result.per_image("spikes") * 3 - packets == pytest.approx(sum(r.neuron_spikes for r in runs), rel=0.03)


def test_merge_counts_one_sop_and_its_hops_per_partial_spike():
    """Exact counts of the merge stage: each partial spike of tick t reaches one merge axon at t + 1."""
    snn, _ = small_net()
    program = compile_snn(snn, "multilevel", 4)
    trains = (np.random.default_rng(2).random((2, 30, 192)) < 0.3).astype(np.float32)
    result, _, _ = run_both(program, trains)
    spikes, synops, hops = (LAYER_COUNT_FIELDS.index(f) for f in ("spikes", "synops", "hops"))
    merges = [i for i, op in enumerate(program.snn.ops) if isinstance(getattr(op, "op", None), MergeOp)]
    assert merges
    for i in merges:
        partial_spikes = result.counts_by_step[:-1, i - 1, spikes]
        np.testing.assert_array_equal(result.counts_by_step[1:, i, synops], partial_spikes)
        assert result.counts_by_step[0, i, synops] == 0 and partial_spikes.sum() > 0
        per_spike = program.snn.ops[i].op.hops
        assert per_spike.min() <= result.counts_by_step[:, i, hops].sum() / partial_spikes.sum() <= per_spike.max()


def test_cores_respect_the_core_format():
    snn, _ = small_net()
    chip = build_chip(compile_snn(snn, "multilevel", 4))
    for core in chip.cores:
        assert core.crossbar.shape == (CORE_AXONS, CORE_NEURONS)
    routed = chip.routes[..., 0] >= 0
    assert (chip.routes[..., 2][routed] >= 1).all() and (chip.routes[..., 2][routed] <= 2).all()
    # a neuron targets one axon: no axon of a compute core is fed by two neurons
    targets = chip.routes[routed][:, :2]
    assert len(np.unique(targets, axis=0)) == len(targets)


def test_split_fan_in_sends_a_piece_sum_that_rises_and_falls_back():
    # one output, 128 inputs: two pieces under multilevel 4 (64 inputs per core). Piece 0's sum rises by 5
    # thresholds (input 0) and falls back (input 1): the output neuron must end 5 thresholds below where it
    # spiked, as the float SNN does; partial neurons without a floor at 0 sent +5 and never the -5
    w = np.zeros((1, 128))
    w[0, 0], w[0, 1], w[0, 100] = 0.5, -0.5, 0.01
    snn = SNN((128,), [Synapses(graph.Dense(w)), Neurons(1.0, v_init=0.0)], readout="spikes")
    program = compile_snn(snn, "multilevel", 4)
    assert program.mapping.layers[0].pieces == 2
    trains = np.zeros((1, 40, 128), np.float32)
    trains[0, :10, 0] = trains[0, 10:20, 1] = 1
    result, _, runs = run_both(program, trains)
    np.testing.assert_array_equal(runs[0].spikes, result.traces[-1]["spikes"][0].astype(bool))
    assert result.traces[-1]["spikes"][0].sum() == 5                    # + partial: 5 thresholds, sent on
    v_end = result.traces[-1]["v"][0, -1, 0] / MERGE_UNIT               # merge neuron, in thresholds
    assert -5 <= v_end < -4                                             # the - partial's 5 thresholds arrived
    assert result.traces[0]["spikes"][0, :, 1].sum() == 5               # the - partial of piece 0 fired 5 times


def test_finer_partial_thresholds_send_what_whole_ones_round_away():
    # one output, two pieces each gaining 0.4 thresholds once: the float neuron (V0 0.5) ends at 1.3 and spikes once;
    # whole-threshold partial neurons (V0 0.5 each) stop at 0.9 and send nothing; at 1/8 each sends 3 eighths,
    # and the merge neuron reaches 0.5 + 0.75 and spikes, on the cores as in the program
    w = np.zeros((1, 128))
    w[0, 0] = w[0, 100] = 0.4
    snn = SNN((128,), [Synapses(graph.Dense(w)), Neurons(1.0, v_init=0.5)], readout="spikes")
    trains = np.zeros((1, 20, 128), np.float32)
    trains[0, 0, [0, 100]] = 1
    spikes = {}
    for k in (1, 8):
        program = compile_snn(snn, "multilevel", 4, partial_resolution=k)
        merge = program.populations[1]
        assert program.mapping.layers[0].pieces == 2
        assert abs(merge.alpha[0] / (MERGE_UNIT * k) - 1) < 0.1        # merge threshold ~255 k: a partial spike, 1/k
        result, _, runs = run_both(program, trains)
        np.testing.assert_array_equal(runs[0].spikes, result.traces[-1]["spikes"][0].astype(bool))
        spikes[k] = int(result.traces[-1]["spikes"].sum())
    assert spikes == {1: 0, 8: 1}
    # a bias of 0.5 thresholds a tick: the merge leak 0.5 x 255 k fits 9 bits up to k = 2, so 8 gives 2
    biased = SNN((128,), [Synapses(graph.Dense(w, np.array([0.5]))), Neurons(1.0, v_init=0.5)], readout="spikes")
    program = compile_snn(biased, "multilevel", 4, partial_resolution=8)
    assert abs(program.populations[1].alpha[0] / (2 * MERGE_UNIT) - 1) < 0.1 and program.leak_clipped == 0


def test_pool_neurons_map_as_a_channel_diagonal_conv():
    # convert(pool_neurons=True) puts neurons after the pool: it used to crash the mapper (AvgPool2d has no bias)
    rng = np.random.default_rng(3)
    net = graph.Network((3, 8, 8), [
        graph.Conv2d(rng.normal(0, 0.3, (4, 3, 3, 3)), rng.normal(0, 0.05, 4), padding=1), graph.ReLU(),
        graph.AvgPool2d(2), graph.Flatten(), graph.Dense(rng.normal(0, 0.3, (5, 64)))])
    images = rng.random((20, 3, 8, 8)).astype(np.float32)
    snn = convert(net, images, pool_neurons=True, readout="spikes")
    program = compile_snn(snn, "multilevel", 4)
    pool = program.mapping.quantised[1][0]
    expect = np.zeros((4, 4, 2, 2))
    expect[np.arange(4), np.arange(4)] = 0.25
    np.testing.assert_array_equal(pool.weight, expect)
    assert pool.stride == (2, 2) and len(program.mapping.layers) == 3
    trains = (np.random.default_rng(4).random((2, 30, 192)) < 0.4).astype(np.float32)
    result, _, runs = run_both(program, trains)
    for i, run in enumerate(runs):
        np.testing.assert_array_equal(run.spikes, result.traces[-1]["spikes"][i].astype(bool))
    assert result.traces[1]["spikes"].sum() > 0                     # the pool's neurons spike


def test_float_proxy_holds_the_cores_weights_and_the_snns_neurons():
    """float_proxy: per mapped layer the weights the cores hold (pools folded in, codes x scale under the
    options' scheme), the converted SNN's biases and neurons, so bias calibration on it sees the codes' error."""
    snn, images = small_net()
    program = compile_snn(snn, "multilevel", 2)
    proxy = float_proxy(snn, {"scheme": "multilevel", "levels": 2})
    weighted = [op.op for op in proxy.ops if isinstance(op, Synapses)]
    assert len(weighted) == len(program.mapping.quantised) == 3
    for op, (layer, q) in zip(weighted, program.mapping.quantised):
        np.testing.assert_array_equal(op.weight, q.weights.reshape(layer.weight.shape).astype(np.float32))
        np.testing.assert_array_equal(op.bias, layer.bias)
    assert [op for op in proxy.ops if isinstance(op, Neurons)] == [op for op in snn.ops if isinstance(op, Neurons)]
    labels = np.zeros(len(images), np.int64)
    runs = [Engine(s, threads=1).run(images, labels, 16, record_counts=True, progress=False) for s in (snn, proxy)]
    assert [c.shape for c in runs[0].spike_counts] == [c.shape for c in runs[1].spike_counts]
    assert not np.array_equal(runs[0].spike_counts[0], runs[1].spike_counts[0])   # 2-bit codes change the rates


@pytest.mark.parametrize("time_batch", [None, 7])
def test_unpadded_split_conv_and_memory_of_delays(time_batch):
    snn, _ = small_net(seed=5, padding=0)
    program = compile_snn(snn, "multilevel", 4)
    trains = (np.random.default_rng(2).random((2, 30, 192)) < 0.4).astype(np.float32)
    result, _, runs = run_both(program, trains, time_batch)
    for i, run in enumerate(runs):
        np.testing.assert_array_equal(run.spikes, result.traces[-1]["spikes"][i].astype(bool))
    # depth: an input spike needs program.depth ticks to reach the output layer
    silent_until = min(int(np.argmax(r.spikes.any(axis=1))) for r in runs)
    assert silent_until >= program.depth


def test_cost_uses_the_counted_activity():
    snn, images = small_net()
    program = compile_snn(snn)
    r = Engine(program.snn, program.backend(), threads=1).run(images[:4], np.zeros(4, np.int64), 16,
                                                               encoding="rate", progress=False)
    c = program.cost(r, 16, tick_hz=1000.0)
    assert c.cores == program.mapping.cores and c.coefficients == COEFFICIENTS
    assert c.frames_per_second == pytest.approx(1000 / 16) and c.latency_s == pytest.approx(0.016)
    fastest = program.cost(r, 16)   # the default: the fastest tick the published limits allow
    assert fastest.frames_per_second > c.frames_per_second
    assert fastest.variants["real-time tick (1000 Hz)"]["frames_per_second"] == pytest.approx(1000 / 16)
    assert fastest.variants["share of the cores used (not whole chips)"]["energy_per_inference_j"] < \
        fastest.energy_per_inference_j
    assert c.sop_w == pytest.approx(r.per_image("synops") / 16 * 1000 * 2.297e-12, rel=1e-3)
    assert c.hop_w > 0
    with pytest.raises(NeuroError, match="one coefficient set"):
        program.cost(r, 16, "dav18")


def test_bad_networks_name_the_layer():
    rng = np.random.default_rng(0)
    leaky = convert(graph.Network((4,), [graph.Dense(rng.normal(size=(3, 4)))]), rng.random((5, 4)), leak=0.1,
                    readout="spikes")
    with pytest.raises(NeuroError, match="0:Dense: leaky neurons"):
        compile_snn(leaky)
    wide = convert(graph.Network((40000,), [graph.Dense(rng.normal(size=(2, 40000)))]), rng.random((3, 40000)))
    with pytest.raises(NeuroError, match="fan-in 40000"):
        compile_snn(wide, "multilevel", 4)
    with pytest.raises(NeuroError, match="use the rate or regular encoding"):
        chips.compile_for("truenorth", leaky, "current")


@pytest.mark.skipif(not os.environ.get("NEURO_DATA"), reason="needs MNIST in $NEURO_DATA")
def test_mnist_cnn_on_truenorth_cores(mnist_test):
    """The shipped CNN: every one of its cores built and run on the chip simulator matches the program."""
    from neuro.ann import load_model
    from neuro.datasets import load

    snn = convert(load_model(REFERENCE_ONNX), load("mnist", "train")[0][:200])
    program = compile_snn(snn)
    x, y = mnist_test
    rng = np.random.default_rng(0)
    trains = (rng.random((1, 40, 784)) < x[:1].reshape(1, 1, 784)).astype(np.float32)
    result, chip, runs = run_both(program, trains)
    assert len(chip.cores) == program.mapping.cores
    np.testing.assert_array_equal(runs[0].spikes, result.traces[-1]["spikes"][0].astype(bool))
    tiled = Engine(program.snn, program.backend()).run(x[:1], y[:1], 40, encoding=encode.Playback(trains),
                                                       record_steps=True, progress=False, time_batch=16)
    np.testing.assert_array_equal(runs[0].spikes, tiled.traces[-1]["spikes"][0].astype(bool))
    r = Engine(program.snn, program.backend()).run(x[:100], y[:100], 64, encoding="rate", progress=False)
    assert r.accuracy_by_step[-1] >= 0.96


def _cancelling_chain(split):
    """Two relay layers (weight 1, each spikes every tick of an all-ones input), then one output neuron whose input
    and bias cancel exactly, so the float SNN's neuron stays at V = 0.5 and never spikes. ``split``: fan-in 128,
    so the relays and the output neuron are split and merged; else 2 relays, codes exact under multilevel 4."""
    n = 128 if split else 2
    w = np.zeros((1, n))
    if split:
        w[0, :64], bias = -1 / 64, 1.0             # piece 0 sends one threshold down per tick, the merge leak 255 up
    else:
        w[0, :2], bias = (-1.0, 3 / 7), 4 / 7      # codes -7 and 3; leak 4/7 x 441 = 252
    relay = lambda: [Synapses(graph.Dense(np.eye(n))), Neurons(1.0, v_init=0.5)]  # noqa: E731
    return SNN((n,), [*relay(), *relay(), Synapses(graph.Dense(w, np.array([bias]))), Neurons(1.0, v_init=0.5)],
               readout="spikes")


@pytest.mark.parametrize("split", [False, True])
def test_bias_does_not_run_ahead_of_the_delayed_input(split):
    # a layer's first input arrives 2-3 ticks per layer after the network input; its leak (the bias) used to
    # run from tick 0, so an output whose input cancels its bias spiked once per threshold the bias gained in
    # those ticks (CIFAR-10's 7 layers: ~20 ticks of bias without input, at chance); V0 now takes them out
    snn = _cancelling_chain(split)
    ones = np.ones((1, 40, snn.input_shape[0]), np.float32)
    float_run = Engine(snn, threads=1).run(np.zeros((1, *snn.input_shape), np.float32), np.zeros(1, np.int64), 40,
                                           encoding=encode.Playback(ones), record_steps=True, progress=False)
    assert float_run.traces[-1]["spikes"].sum() == 0 and float_run.traces[1]["spikes"].sum() == 40 * len(ones[0, 0])
    program = compile_snn(snn, "multilevel", 4)
    assert (program.mapping.layers[-1].pieces > 1) == split and program.depth >= 4
    assert not any("capped" in d or "clipped" in d for d in program.deviations)
    result, _, runs = run_both(program, ones)
    np.testing.assert_array_equal(runs[0].spikes, result.traces[-1]["spikes"][0].astype(bool))
    assert result.traces[-3 if split else -2]["spikes"].sum() > 0       # the relays before it do spike
    assert result.traces[-1]["spikes"].sum() == 0
