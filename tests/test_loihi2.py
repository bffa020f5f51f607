"""Loihi 2 chip model without Lava: the registered chip, its graded sigma-delta kernel on hand-checked values, its
errors, the compiled program (sparse changes, the ANN's classes) and the cost model with its held-out point.
tests/test_loihi2_lava.py checks the kernel bit-exactly against Lava."""

import numpy as np
import pytest

import chips
from chips import conformance
from chips.loihi2 import simulate_chain
from chips.loihi2.chip import (CALIBRATION, CHIP_CORES, CORE_NEURONS, PILOTNET, calibration_table, compile_snn,
                               pilotnet_estimate)
from neuro.errors import NeuroError
from neuro.sim import Engine


def test_loihi2_is_registered_and_conforms_with_current_input():
    """Registered by name (test_conformance.py runs the standard check, rate-coded input); here with frames."""
    chip = chips.get("loihi2")
    assert chip.title == "Loihi 2" and "loihi2" in chips.available()
    snn, images = conformance.tiny_snn()
    program = chip.compile(snn, **chip.wide_options)
    labels = np.zeros(len(images), np.int64)
    ours = Engine(program.snn, program.backend()).run(images, labels, 12, encoding="current", progress=False)
    ref = Engine(snn).run(images, labels, 64, encoding="current", progress=False)
    assert np.mean(ours.predictions == ref.predictions) >= 0.9


def test_hand_checked_chain():
    """The values Lava gives for this chain (tests/test_loihi2_lava.py checks the same against Lava): weights
    3, -2 truncate to 2, -2 (mixed, 8 bits); bias 3 and vth 5 scale by 2^(1 + 2); outputs >> state_exp 2."""
    src = np.array([[100, 0, -50, 300, 0, 0], [7, 7, 7, 7, 7, 7]])
    layer = dict(weights=np.array([[3, -2]]), num_message_bits=16, weight_exp=1, vth=5, bias=3, state_exp=2,
                 spike_exp=1)
    (s, sigma), = simulate_chain(src, [layer])
    np.testing.assert_array_equal(s, [[0, 99, 0, -64, 293, 0]])
    np.testing.assert_array_equal(sigma, [[0, 372, 344, 116, 1288, 1260]])
    (_, act), = simulate_chain(src, [layer], state="act")
    np.testing.assert_array_equal(act, [[24, 396, 368, 140, 1312, 1284]])


def test_residue_and_cumulative_error_by_hand():
    """+2 per step into sigma, vth 5: without cum_error the residue holds 2, 4, then 6 goes out; with it, error
    += delta (which already holds the residue), so 2 + 4 >= 5 sends the 4 a step earlier (Lava's rule)."""
    src = np.zeros((1, 8), np.int64)
    src[0, :6] = 2
    plain = dict(weights=np.array([[1]]), vth=5, act_mode="unit")
    (s, residue), = simulate_chain(src, [plain], state="residue")
    np.testing.assert_array_equal(s, [[0, 0, 0, 6, 0, 0, 6, 0]])
    np.testing.assert_array_equal(residue, [[0, 2, 4, 0, 2, 4, 0, 0]])
    (s, error), = simulate_chain(src, [{**plain, "cum_error": True}], state="error")
    np.testing.assert_array_equal(s, [[0, 0, 4, 0, 4, 0, 4, 0]])
    np.testing.assert_array_equal(error, [[0, 2, 0, 2, 0, 2, 0, 0]])


FLICKER = np.array([[1, -1] * 8])      # a pixel spiking every other step, as the Delta encoder sends it
HELD = np.array([[1] + [0] * 15])       # the same pixel held: one change, then nothing
TRUNCATING = dict(weights=np.array([[3]]), weight_exp=-2, vth=0, act_mode="unit")


def test_each_steps_input_is_floored_so_flickering_input_drifts():
    """Lava's Dense floors each step's W s >> -weight_exp (tests/test_loihi2_lava.py checks this chain against
    Lava): 3 x (+1) >> 2 = 0 and 3 x (-1) >> 2 = -1, so under flicker sigma loses a unit every two steps without
    bound, where the exact integral stays in [0, 0.75]; a held input loses under one unit, once. The cause of
    the compiled MNIST network's late accuracy loss on spike input (docs/chips/loihi2.md)."""
    (_, sigma), = simulate_chain(FLICKER, [TRUNCATING])
    np.testing.assert_array_equal(sigma, [-(np.arange(16) // 2)])
    (_, sigma), = simulate_chain(HELD, [TRUNCATING])
    np.testing.assert_array_equal(sigma, np.zeros((1, 16)))


def test_drift_probe_finds_the_floor_on_spike_input():
    """experiments/loihi2_drift.py (the docs' figures): on rate input sigma falls below the exact integral of its
    messages, more with time; with the shift rounded (its counterfactual) it stays within a unit; on a held frame
    it stops once the layers fall silent."""
    from experiments.loihi2_drift import drift
    snn, images = conformance.tiny_snn()
    program, labels = compile_snn(snn), np.zeros(len(images), np.int64)
    mean = {}
    for encoding, rounding in (("rate", "floor"), ("rate", "round"), ("current", "floor")):
        _, log = drift(program, images, labels, 24, encoding, rounding)
        mean[encoding, rounding] = np.array([s[:, 0] / s[:, 1] for s in log.values()])   # (layer, step)
    floor = mean["rate", "floor"]
    assert np.all(floor[:, -1] < floor[:, 7] - 1) and np.all(floor[:, -1] < -2)
    assert np.all(np.abs(mean["rate", "round"]) < 1)
    held = mean["current", "floor"]
    np.testing.assert_array_equal(held[:, -1], held[:, 12])


@pytest.mark.parametrize("change, message", [
    (dict(num_message_bits=0), "num_message_bits = 0 is out of range"),
    (dict(act_mode="tanh"), "act_mode 'tanh' is unknown"),
    (dict(spike_exp=8), "spike_exp = 8 is out of range"),
    (dict(weights=np.array([[300]])), "weights = 300 is out of range"),
])
def test_bad_parameters_are_one_line_errors(change, message):
    layer = {**dict(weights=np.array([[1]]), vth=1), **change}
    with pytest.raises(NeuroError, match=message):
        simulate_chain(np.ones((1, 3), np.int64), [layer])


def test_missing_vth_and_payloads_beyond_float32_exactness_are_refused():
    with pytest.raises(NeuroError, match="lacks vth"):
        simulate_chain(np.ones((1, 3), np.int64), [dict(weights=np.array([[1]]))])
    with pytest.raises(NeuroError, match="2\\^24"):
        simulate_chain(np.full((2, 3), 1 << 20), [dict(weights=np.array([[255, 255]]), vth=0)])
    big = [dict(weights=np.full((2, 2), 255), weight_exp=7, vth=0), dict(weights=np.full((1, 2), 255), vth=0)]
    with pytest.raises(NeuroError, match="layer 0: a graded payload"):
        simulate_chain(np.full((2, 3), 1000), big)


def test_held_frame_sends_nothing_once_settled():
    """Sigma-delta on a held frame: messages only while the change ripples through the layers, then silence."""
    snn, images = conformance.tiny_snn()
    program = compile_snn(snn, vth=0)
    r = Engine(program.snn, program.backend()).run(images, np.zeros(len(images), np.int64), 12,
                                                   encoding="current", progress=False)
    spikes = r.counts_by_step[:, :, 0]         # per step, per op: messages
    assert spikes[:3].sum() > 0 and spikes[6:].sum() == 0
    assert any("sigma-delta" in d for d in program.deviations)


def test_cost_fields_limits_and_held_out_point():
    snn, images = conformance.tiny_snn()
    program = compile_snn(snn)
    r = Engine(program.snn, program.backend()).run(images, np.zeros(len(images), np.int64), 8, encoding="current",
                                                   progress=False)
    cost = program.cost(r, 8)
    assert cost.chips == 1 and 1 <= cost.cores <= CHIP_CORES
    assert all(m["neurons"] <= m["cores"] * CORE_NEURONS for m in program.mapping())
    lo, hi = cost.ranges["energy_per_inference_j"]
    assert lo < cost.energy_per_inference_j < hi and cost.calibration == CALIBRATION
    assert "1.66 mJ" in CALIBRATION and "held out" in CALIBRATION
    est = pilotnet_estimate()
    assert est.chips == 1 and 0.01 < est.energy_per_inference_j / PILOTNET["energy_j"] < 10
    rows = calibration_table()
    assert {r["set"] for r in rows} == set(chips.get("loihi2").coefficients)
    energies = [r["model_mj"] for r in rows if r["set"] == "dav18-l2"]
    assert energies == sorted(energies)        # more activity, more energy
