"""A toy chip model for neuro, written against the public chip API only (docs/chips/extending.md).

Its cores hold signed ``bits``-bit integer weights (one scale per layer) and integrate-and-fire neurons with
an int32 membrane potential, an integer threshold and reset by subtraction; 256 neurons per core, 16 cores per
chip. Cost: every synaptic operation, spike and neuron update at its energy (``coefficients/toy.toml``), plus
static power over the inference; one step takes ``step_s``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from chips.api import Backend, Chip, CoefficientSet, NeuronModel, Option
from chips.coefficients import find, load_dir
from chips.compiling import layer_activity, layers
from neuro import graph
from neuro.snn import SNN, Neurons, Synapses

CORE_NEURONS = 256
CHIP_CORES = 16
SETS = load_dir(Path(__file__).with_name("coefficients"), "toy", "toy")


class ToyNeurons(NeuronModel):
    """int32 v in integer units of the layer (``threshold`` units make one spike); reset by subtraction."""

    def __init__(self, threshold: int, v_init: int):
        self.threshold, self.v_init = threshold, v_init

    def reset(self, batch, n):
        self.v = np.full((batch, n), self.v_init, np.int32)   # int32: |v| stays below 2^24 (exact sums)

    def step(self, current, spikes):
        self.v += current.astype(np.int32)
        fired = self.v >= self.threshold
        self.v[fired] -= self.threshold
        spikes[:] = fired
        return int(fired.sum())

    def potential(self):
        return self.v / np.float32(self.threshold)


class ToyBackend(Backend):
    """The program's ops already hold integer weights; each population gets its integer neurons."""

    name = "toy"

    def __init__(self, program: ToyProgram):
        self.neurons = dict(zip((id(op) for op in program.snn.ops if isinstance(op, Neurons)), program.neurons))

    def neuron_model(self, op: Neurons) -> NeuronModel:
        return ToyNeurons(*self.neurons[id(op)])


@dataclass(frozen=True)
class ToyCost:
    coefficients: str
    cores: int
    chips: int
    energy_per_inference_j: float
    frames_per_second: float
    latency_s: float
    assumptions: list = field(default_factory=list)


@dataclass
class ToyProgram:
    snn: SNN
    neurons: list                       # (threshold, v_init) per population, integer units
    deviations: list[str] = field(default_factory=list)

    def backend(self) -> ToyBackend:
        return ToyBackend(self)

    def cost(self, result, steps: int, coefficients: CoefficientSet | None = None) -> ToyCost:
        c = find(SETS, coefficients, "toy")
        sizes = [int(np.prod(s)) for op, s in zip(self.snn.ops, self.snn.shapes()[1:]) if isinstance(op, Neurons)]
        cores = sum(-(-n // CORE_NEURONS) for n in sizes)
        activity = layer_activity(self.snn, result)
        latency = steps * c["step_s"]
        energy = steps * sum(a.synops * c["e_synop"] + a.spikes * c["e_spike"] for a in activity) \
            + steps * sum(sizes) * c["e_update"] + latency * c["static_w"] * -(-cores // CHIP_CORES)
        return ToyCost(c.name, cores, -(-cores // CHIP_CORES), energy, 1 / latency, latency,
                       ["every constant is an example value (coefficients/toy.toml)"])


def compile_snn(snn: SNN, bits: int = 4) -> ToyProgram:
    """Each layer's weights and bias as signed ``bits``-bit integers of one scale, its threshold that scale."""
    found, folded = layers(snn, "toy")
    ops, neurons, shape = [], [], snn.input_shape
    top = (1 << (bits - 1)) - 1
    for layer in found:
        w = layer.synapse.weight / layer.neurons.threshold
        unit = top / max(float(np.abs(w).max()), 1e-12)        # integer units per threshold
        q = np.round(w * unit).astype(np.float32)
        b = np.round(layer.synapse.bias / layer.neurons.threshold * unit).astype(np.float32)
        op = graph.Dense(q, b) if isinstance(layer.synapse, graph.Dense) else \
            graph.Conv2d(q, b, layer.synapse.stride, layer.synapse.padding, layer.synapse.groups)
        if isinstance(op, graph.Dense) and len(shape) > 1:
            ops.append(graph.Flatten())
        ops += [Synapses(op), Neurons(float(round(unit)), reset="subtract")]
        neurons.append((max(int(round(unit)), 1), int(round(layer.neurons.v_init * unit))))
        shape = op.output_shape(shape if not isinstance(op, graph.Dense) else (int(np.prod(shape)),))
    deviations = folded + [f"weights and biases quantised to {bits}-bit integers per layer",
                           "spike-count readout (the class with the most spikes)"]
    return ToyProgram(SNN(snn.input_shape, ops, "spikes"), neurons, deviations)


CHIP = Chip(name="toy", title="toy", compile=compile_snn,
            limits={"neurons per core": CORE_NEURONS, "cores per chip": CHIP_CORES},
            coefficients=SETS,
            options=(Option("bits", int, 4, "bits per signed weight", low=2, high=8),),
            wide_options={"bits": 8})
