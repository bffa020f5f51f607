"""The conformance checks (chips.conformance) on every registered chip model, and the checks themselves failing
on broken chips."""

from dataclasses import replace
from types import SimpleNamespace

import numpy as np
import pytest

import chips
from chips import conformance
from chips.conformance import ConformanceError


def test_the_built_in_chips_are_registered():
    assert {"loihi", "truenorth"} <= set(chips.available())


@pytest.mark.parametrize("name", chips.available())
def test_chip_conforms(name):
    conformance.check_chip(chips.get(name))


def _cost(**kw):
    fields = dict(coefficients="x", cores=1, chips=1, energy_per_inference_j=1e-6, frames_per_second=100.0,
                  latency_s=0.01)
    return SimpleNamespace(**{**fields, **kw})


@pytest.mark.parametrize("change, message", [
    (dict(cores=0), ".cores must be an integer >= 1"),
    (dict(energy_per_inference_j=float("nan")), ".energy_per_inference_j must be a finite number > 0"),
    (dict(ranges={"latency_s": (0.02, 0.03)}), "range of latency_s (0.02, 0.03) does not hold its point 0.01"),
    (dict(variants={"slow": {"energy_per_inference_j": 1.0, "frames_per_second": 0.0, "latency_s": 1.0}}),
     "variant 'slow' needs"),
])
def test_check_cost_catches_broken_costs(change, message):
    loihi = chips.get("loihi")
    conformance.check_cost(loihi, _cost())
    with pytest.raises(ConformanceError, match=message.replace("(", r"\(").replace(")", r"\)")):
        conformance.check_cost(loihi, _cost(**change))


def test_check_program_catches_a_float_neuron_state():
    """A chip whose neurons keep float state breaks the NeuronModel contract."""
    loihi = chips.get("loihi")
    snn, _ = conformance.tiny_snn()
    program = loihi.compile(snn)
    conformance.check_program(loihi, program, snn)
    backend = program.backend()

    class FloatState(type(backend)):
        def neuron_model(self, op):
            model = super().neuron_model(op)
            reset = model.reset
            model.reset = lambda batch, n: (reset(batch, n), setattr(model, "v", model.v.astype(np.float32)))
            return model

    broken = SimpleNamespace(snn=program.snn, deviations=[], backend=lambda: FloatState(program.layers, program.snn))
    with pytest.raises(ConformanceError, match="v is float32: chip state is integer"):
        conformance.check_program(loihi, broken, snn)


def test_wide_weights_check_fails_for_a_program_that_ignores_its_input():
    truenorth = chips.get("truenorth")
    snn, images = conformance.tiny_snn()
    program = truenorth.compile(snn, **truenorth.check_options(truenorth.wide_options, "test"))
    conformance.check_wide_weights(truenorth, program, snn, images, 32, 0.9)
    for op in program.snn.ops:          # every weight zeroed: the output never spikes, class 0 for every image
        if hasattr(op, "op") and hasattr(op.op, "weight"):
            op.op.weight[:] = 0
    with pytest.raises(ConformanceError, match="as the float SNN does, below 90 %"):
        conformance.check_wide_weights(truenorth, program, snn, images, 32, 0.9)


def test_declaration_needs_sources_for_every_set():
    loihi = chips.get("loihi")
    stock = loihi.coefficients["sana-fe"]
    bad = replace(loihi, coefficients={**loihi.coefficients, "sana-fe": replace(stock, sources={})})
    with pytest.raises(ConformanceError, match="set 'sana-fe' has a value without a source"):
        conformance.check_declaration(bad)
    assert loihi.coefficients["sana-fe"] is stock           # the stock chip's sets are untouched
