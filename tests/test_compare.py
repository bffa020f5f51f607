"""The comparison's arithmetic: equal-accuracy step, ratios of ranges, binomial intervals, the report's numbers."""

import numpy as np
import pytest

from neuro import compare, report
from neuro.baselines.results import ESTIMATED, Value
from neuro.errors import NeuroError
from neuro.experiment import EqualAccuracy


@pytest.mark.parametrize("accuracy, step", [
    ([0.1, 0.5, 0.985, 0.99, 0.993], 3),      # 98.5 % is within 0.5 points of 99.0 %
    ([0.1, 0.5, 0.984, 0.99, 0.993], 4),      # 98.4 % is not
    ([0.1, 0.2, 0.98], None),                 # never within: no step
    ([0.995, 0.2, 0.2], 1),                   # above the ANN counts from the first step
])
def test_first_step_of_equal_accuracy(accuracy, step):
    assert EqualAccuracy(0.99, 0.5).first_step(np.array(accuracy)) == step


def test_a_stricter_tolerance_needs_more_steps():
    acc = np.linspace(0.5, 0.99, 50)
    steps = [EqualAccuracy(0.99, tol).first_step(acc) for tol in (5.0, 1.0, 0.1, 0.0)]
    assert steps == sorted(steps) and steps[0] < steps[-1] == 50


def test_ratio_takes_the_widest_range_from_both_sides():
    chip = Value(2.0, "J", "modeled", low=1.0, high=4.0)
    gpu = Value(10.0, "J", ESTIMATED, low=5.0, high=20.0)
    r = compare.ratio(chip, gpu)
    assert (r.value, r.low, r.high) == (0.2, 1.0 / 20.0, 4.0 / 5.0)
    assert r.provenance == "modeled / estimated"
    measured = Value(4.0, "J", "measured")
    assert compare.bounds(compare.ratio(chip, measured)) == (0.25, 1.0)
    assert compare.ratio(chip, Value(None, "J", "not measurable here")).value is None


def test_a_range_must_contain_its_point():
    with pytest.raises(NeuroError, match="outside its range"):
        Value(5.0, "J", "modeled", low=1.0, high=4.0)


def test_wilson_interval():
    lo, hi = compare.wilson_interval(993, 1000)
    assert lo < 0.993 < hi and hi < 1 and 0.985 < lo
    assert compare.wilson_interval(1000, 1000)[1] == pytest.approx(1.0)
    wide, narrow = compare.wilson_interval(99, 100), compare.wilson_interval(9900, 10000)
    assert wide[1] - wide[0] > narrow[1] - narrow[0]


@pytest.mark.parametrize("x, digits, text", [(613.2, 2, "610"), (0.0386, 2, "0.039"), (88714, 3, "88,700"),
                                             (1.0, 2, "1.0"), (9.96, 2, "10")])
def test_significant_figures(x, digits, text):
    assert report.sig(x, digits) == text


def test_numbers_print_with_range_prefix_and_provenance():
    assert report.fmt(Value(6.13e-4, "J/image", "modeled", low=1.1e-4, high=3.6e-3), "J") == \
        "610 (110-3,600) uJ (modeled)"
    assert report.fmt(Value(23342.0, "images/s", "measured", std=940.0)) == "23,000 ± 940 (measured)"
    assert report.fmt(Value(None, "J/image", "not measurable here", "no RAPL")) == "not measurable here: no RAPL"


def test_energy_figures_draw_no_error_at_half_an_image():
    """A log axis cannot show 0 % error: with every one of n images right the point sits at 50 / n %."""
    energy = Value(1e-3, "J/image", "modeled")
    assert report.EnergyPoint("loihi", energy, 0.9, None, n_images=100).error == pytest.approx(10.0)
    assert report.EnergyPoint("loihi", energy, 1.0, None, n_images=100).error == 0.5
    assert report.EnergyPoint("published", energy, 1.0, None).error == 0.0
