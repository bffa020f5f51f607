"""TrueNorth-native networks on emulated cores: bit-exact against the numpy integer forward, memoryless
neurons, fan-in and fan-out limits, one classification per tick, bad networks, the shipped model."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from chips.truenorth import CORE_AXONS, CORE_NEURONS
from chips.truenorth.chip import run_chip
from chips.truenorth.native import (DATASET_LEVELS, Layer, Member, activity, build_chip, check_member, classify,
                                    encode, forward, load_members)
from neuro.errors import NeuroError

MODEL = Path(__file__).resolve().parents[1] / "experiments" / "models" / "truenorth_native.npz"
IN_SHAPE = (2, 8, 8)


def _layer(rng, out, cin_g, k, stride, pad, groups, zero=0.4):
    p = (1 - zero) / 2
    codes = rng.choice([-1, 0, 1], size=(out, cin_g, k, k), p=[p, zero, p]).astype(np.int8)
    return Layer(codes, rng.integers(-3, 4, out).astype(np.int32), stride, pad, groups)


def _member(seed):
    """A small random trinary network: conv 3x3 s2, grouped 2x2 s2, 2x2 s2 output (2 neurons per class)."""
    rng = np.random.default_rng(seed)
    return Member([_layer(rng, 8, 2, 3, 2, 1, 1), _layer(rng, 16, 4, 2, 2, 0, 2), _layer(rng, 20, 16, 2, 2, 0, 1)],
                  np.arange(20) % 10)


@pytest.fixture(scope="module")
def net():
    members = [_member(0), _member(1)]
    bits = np.random.default_rng(2).integers(0, 2, (9, *IN_SHAPE)).astype(np.uint8)
    chip, layout = build_chip(members, IN_SHAPE, probe=True)
    return members, bits, chip, layout


def test_chip_equals_integer_forward(net):
    members, bits, chip, layout = net
    run = classify(members, bits, chunk=4, probe=True, built=(chip, layout))
    for m, member in enumerate(members):
        spikes, scores = forward(member, bits)
        np.testing.assert_array_equal(run.scores[m], scores)
        for got, want in zip(run.layer_spikes[m], spikes):
            np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(run.predictions, sum(forward(m, bits)[1] for m in members).argmax(1))


def test_activity_matches_chip_counts(net):
    members, bits, chip, layout = net
    x = np.concatenate([bits.reshape(len(bits), -1), np.zeros((layout.depth - 1, chip.n_inputs), np.uint8)])
    run = run_chip(chip, x.astype(bool))
    sops = spikes = hops = 0
    for m, maps in enumerate(layout.members):
        per_tick = [run.spikes[:, off:off + len(lm.core)] for off, lm in zip(layout.probe_offset[m], maps)]
        a = activity(chip, layout, m, x, per_tick)
        last = activity(chip, layout, m, x[-1:] * 0, [s[-1:] for s in per_tick])   # they land after the run
        sops += a["sops"].sum() - last["sops"].sum()
        spikes += a["spikes"].sum()
        hops += a["hops"].sum()
    assert (sops, spikes, hops) == (run.sops, run.neuron_spikes, run.hops)


def test_memoryless(net):
    members, bits, chip, layout = net
    a = classify(members, bits[[0, 1, 0, 2, 0]], built=(chip, layout)).scores
    b = classify(members, bits[[2, 0, 1, 0, 0]], built=(chip, layout)).scores
    for k in (0, 2, 4):                                      # image 0 after nothing, image 1, image 2
        np.testing.assert_array_equal(a[:, k], b[:, 1])
    np.testing.assert_array_equal(a[:, 1], b[:, 2])
    for core in chip.cores:
        assert (core.alpha == 1).all() and (core.reset_mode == 0).all() and (core.reset_value == 0).all()
        assert (core.beta == 0).all() and (core.kappa == 0).all() and (core.v0 == 0).all()


def _assert_core_limits(chip, layout):
    """Every neuron reads <= 128 distinct inputs through <= 256 axons, each routed neuron targets one axon and
    each axon has one source, a core holds <= 256 neurons (copies included)."""
    owner = np.full((len(chip.cores), CORE_NEURONS), -1)    # (core, neuron) -> the network neuron it copies
    for m, maps in enumerate(layout.members):
        for l, lm in enumerate(maps):
            for n in range(len(lm.core)):
                owner[lm.core[n], lm.slot[n]:lm.slot[n] + lm.copies[n]] = (m * 10 + l) * 10 ** 6 + n
    pair = np.full((len(chip.cores), CORE_AXONS), -1)       # axon -> its input (network neuron or input bit)
    for i, core, axon in chip.inputs:
        pair[core, axon] = i
    for k, j in np.argwhere(chip.routes[..., 0] >= 0):
        pair[chip.routes[k, j, 0], chip.routes[k, j, 1]] = owner[k, j]
    for k, core in enumerate(chip.cores):                    # distinct inputs per neuron <= 128 (+/- pairs)
        for j in np.flatnonzero(core.crossbar.any(0)):
            axons = np.flatnonzero(core.crossbar[:, j])
            assert (pair[k, axons] >= 0).all() and len(np.unique(pair[k, axons])) <= CORE_AXONS // 2
    targets = chip.routes[..., :2].reshape(-1, 2)
    routed = targets[targets[:, 0] >= 0]
    assert len(np.unique(routed, axis=0)) == len(routed)      # one neuron per axon, one axon per neuron
    for maps in layout.members:
        for lm in maps:
            assert lm.copies.min() >= 1
            assert np.bincount(lm.core, weights=lm.copies).max() <= CORE_NEURONS
            assert max(len(keys) for keys in lm.axon_keys) <= CORE_AXONS


def test_fan_in_and_one_target_per_neuron(net):
    _assert_core_limits(*net[2:])


def test_one_classification_per_tick(net):
    members, bits, chip, layout = net
    x = np.concatenate([bits.reshape(len(bits), -1), np.zeros((layout.depth - 1, chip.n_inputs), np.uint8)])
    run = run_chip(chip, x.astype(bool))
    off, n_out = layout.out_offset[0], len(layout.members[0][-1].core)
    out = run.spikes[:, off:off + n_out]
    _, scores = forward(members[0], bits)
    vote = np.eye(10, dtype=np.int64)[np.repeat(members[0].classes, 1)]   # the last layer is 1 x 1
    for k in range(len(bits)):                               # image k is read at tick k + depth - 1
        np.testing.assert_array_equal(out[k + layout.depth - 1].astype(np.int64) @ vote, scores[k])


def test_bad_networks():
    rng = np.random.default_rng(0)
    wide = Member([_layer(rng, 4, 2, 9, 1, 0, 1)], np.arange(4) % 2)   # fan-in 2 x 9 x 9 = 162
    with pytest.raises(NeuroError, match=r"layer 0: fan-in .* exceeds 128"):
        build_chip([wide], (2, 9, 9))
    bad = _member(0)
    bad.layers[1].theta = bad.layers[1].theta.copy()
    bad.layers[1].theta[3] = 300
    with pytest.raises(NeuroError, match=r"layer 1: threshold 300 is outside \[-254, 257\]"):
        build_chip([bad], IN_SHAPE)


@pytest.mark.skipif(not os.environ.get("NEURO_DATA"), reason="NEURO_DATA not set: the MNIST test images are needed")
def test_shipped_model_on_chip():
    from neuro.datasets import load

    if not MODEL.exists():
        pytest.skip(f"{MODEL} missing: train it with experiments/train_truenorth_native.py")
    x, y = load("mnist", "test")
    bits = encode(x[:200])
    members = load_members(MODEL)
    run = classify(members, bits)
    np.testing.assert_array_equal(run.scores.sum(0), sum(forward(m, bits)[1] for m in members))
    assert (run.predictions == y[:200]).mean() >= 0.97


def test_cifar10_architecture_fits_one_chip_and_runs_bit_exact():
    """Architecture "c" (CIFAR-10), untrained but with recalibrated batch norms, exported and run on the chip:
    its shapes, fan-in <= 128 per neuron, one chip's cores, and chip == numpy integer forward, layer by layer."""
    torch = pytest.importorskip("torch")
    from experiments.train_truenorth_native import DATASETS, NativeNet, recalibrate

    levels = DATASET_LEVELS["cifar10"]
    images = np.random.default_rng(3).random((6, 3, 32, 32), dtype=np.float32)
    bits = encode(images, levels)
    assert bits.shape == (6, 12, 32, 32)
    np.testing.assert_array_equal(bits[:, 3:6], images > levels[1])     # channel l C + c: colour c > level l
    torch.manual_seed(0)
    model = NativeNet(DATASETS["cifar10"][0], pop=2)
    recalibrate(model, torch.from_numpy(images), levels)
    member = model.export()
    shapes = check_member(member, bits.shape[1:])
    assert shapes == [(128, 16, 16), (256, 8, 8), (256, 8, 8), (512, 4, 4), (1024, 2, 2), (640, 1, 1)]
    assert max(layer.codes[0].size for layer in member.layers) <= CORE_AXONS // 2
    chip, layout = build_chip([member], bits.shape[1:], probe=True)
    assert layout.n_cores <= 4096 and layout.depth == 6
    _assert_core_limits(chip, layout)
    run = classify([member], bits, probe=True, built=(chip, layout))
    spikes, scores = forward(member, bits)
    np.testing.assert_array_equal(run.scores[0], scores)
    for got, want in zip(run.layer_spikes[0], spikes):
        np.testing.assert_array_equal(got, want)
    assert 0 < np.mean([s.mean() for s in spikes]) < 1                  # the network spikes, not all at once


def test_mnist_defaults_unchanged():
    """--dataset mnist keeps architecture a, the file truenorth_native.npz and 2 thermometer levels."""
    pytest.importorskip("torch")
    from experiments.train_truenorth_native import DATASETS

    assert DATASETS["mnist"][:3] == ("a", "truenorth_native", False)
    assert DATASET_LEVELS["mnist"] == (0.25, 0.75)
    np.testing.assert_array_equal(encode(np.full((1, 1, 2, 2), 0.5, np.float32)), [[[[1, 1], [1, 1]], [[0, 0], [0, 0]]]])
