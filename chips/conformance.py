"""The checks every chip model passes, for a chip author's own tests::

    from chips.conformance import check_chip
    from toy_chip import CHIP

    def test_toy_chip_conforms():
        check_chip(CHIP)

``check_chip`` compiles a small converted CNN (``tiny_snn``; or the author's SNN and images) with the chip's
``wide_options``, runs it on the engine and checks: the chip's declaration (``check_declaration``), the
program's shape and fields and its neuron models' contract (``check_program``), counts that add up
(``check_counts``), the cost under every shipped coefficient set (``check_cost``) and that the program
classifies the images as the float SNN does (``check_wide_weights``). A failed check raises
``ConformanceError`` naming the chip, what is wrong and where.
"""

from __future__ import annotations

import numpy as np

from chips.api import Backend, Chip, NeuronModel
from chips.compiling import layer_activity
from neuro import graph
from neuro.convert import convert
from neuro.sim import LAYER_COUNT_FIELDS, Engine
from neuro.snn import SNN, Neurons, Synapses

FLOAT32_EXACT = 1 << 24   # integer sums below 2^24 are exact in the engine's float32 synapses


class ConformanceError(AssertionError):
    """A chip model breaks the chip API's contract."""


def _require(ok, message: str) -> None:
    if not ok:
        raise ConformanceError(message)


def tiny_snn(seed: int = 0, images: int = 24) -> tuple[SNN, np.ndarray]:
    """A small converted CNN (conv 3x3 -> average pool 2 -> dense 10, 1 x 8 x 8 inputs; reset to zero, spiking
    readout: what chips run natively) and ``images`` noisy copies of ten binary patterns, which its dense layer
    tells apart by template matching (so classes win by clear margins, and the float SNN classifies them as the
    ANN does)."""
    rng = np.random.default_rng(seed)
    front = [graph.Conv2d(rng.normal(0, 0.6, (4, 1, 3, 3)), rng.normal(0, 0.05, 4)), graph.ReLU(),
             graph.AvgPool2d(2), graph.Flatten()]
    patterns = (rng.random((10, 1, 8, 8)) < 0.5).astype(np.float32)
    features = graph.Network((1, 8, 8), front).forward(patterns)
    mean = features.mean(axis=0)
    w = (features - mean) / np.linalg.norm(features - mean, axis=1, keepdims=True)
    net = graph.Network((1, 8, 8), front + [graph.Dense(w, -w @ mean)])
    x = np.clip(patterns[np.arange(images) % 10] + rng.normal(0, 0.05, (images, 1, 8, 8)), 0, 1).astype(np.float32)
    return convert(net, x, reset="zero", readout="spikes"), x


def check_chip(chip: Chip, snn: SNN | None = None, images: np.ndarray | None = None, timesteps: int = 32,
               min_agreement: float = 0.9) -> None:
    """Every check on ``chip`` with ``snn`` and ``images`` (default: ``tiny_snn``)."""
    if snn is None:
        snn, images = tiny_snn()
    check_declaration(chip)
    program = chip.compile(snn, **chip.check_options(chip.wide_options, f"chip {chip.name!r}"))
    check_program(chip, program, snn)
    result = Engine(program.snn, program.backend()).run(images, np.zeros(len(images), np.int64), timesteps,
                                                        encoding="rate", progress=False)
    check_counts(chip, program, result)
    for name, coefficients in chip.coefficients.items():
        check_cost(chip, program.cost(result, timesteps, coefficients), f"coefficients {name}")
    check_wide_weights(chip, program, snn, images, timesteps, min_agreement)


def check_declaration(chip: Chip) -> None:
    """Name, limits, coefficient sets (each with the default's keys, each value with a source) and published
    points (accuracies in (0, 1], energies > 0, frames/s low <= high)."""
    _require(isinstance(chip, Chip), f"{chip!r} is not a chips.api.Chip")
    _require(chip.limits and all(isinstance(k, str) for k in chip.limits), f"{chip.name}: limits must name "
             "at least one limit, keyed by text")
    keys = set(chip.coefficients[chip.default_coefficients].values)
    for name, s in chip.coefficients.items():
        _require(s.chip == chip.name and s.name == name, f"{chip.name}: set {name!r} says chip {s.chip!r}, name "
                 f"{s.name!r}")
        _require(set(s.values) == keys, f"{chip.name}: set {name!r} has keys {sorted(s.values)}, the default has "
                 f"{sorted(keys)}")
        _require(all(s.sources.get(k) for k in keys), f"{chip.name}: set {name!r} has a value without a source")
    for p in chip.published:
        _require(p.source and (p.accuracy is None or 0 < p.accuracy <= 1) and (p.energy_j is None or p.energy_j > 0)
                 and (p.fps is None or 0 < p.fps[0] <= p.fps[1]), f"{chip.name}: published point {p.system!r} is "
                 "not well formed")


def check_program(chip: Chip, program, snn: SNN) -> None:
    """The program's fields and shape (same input, as many classes), its synapses' integer weights within
    float32's exact range, and each neuron model's contract: ``v`` (batch, n) of an integer dtype after
    ``reset``, ``step`` writes 0/1 spikes (integer payloads where the model says ``graded = True``) and returns how many fired, ``potential()`` (batch, n) floats."""
    where = f"{chip.name} program"
    _require(isinstance(program.snn, SNN), f"{where}: .snn must be a neuro.snn.SNN")
    _require(isinstance(program.deviations, list) and all(isinstance(d, str) for d in program.deviations),
             f"{where}: .deviations must be a list of strings")
    _require(tuple(program.snn.input_shape) == tuple(snn.input_shape), f"{where}: input shape "
             f"{program.snn.input_shape} is not the SNN's {snn.input_shape}")
    classes = lambda s: int(np.prod(s.shapes()[-1]))  # noqa: E731
    _require(classes(program.snn) == classes(snn), f"{where}: {classes(program.snn)} outputs for {classes(snn)} "
             "classes")
    backend = program.backend()
    _require(isinstance(backend, Backend), f"{where}: .backend() must return a neuro.sim.Backend")
    shapes = program.snn.shapes()
    for i, op in enumerate(program.snn.ops):
        if isinstance(op, Synapses):
            w = getattr(backend.synapse_op(op.op), "weight", None)
            if w is not None:
                w = np.asarray(w, np.float64)
                _require(np.all(w == np.round(w)), f"{where}: op {i}'s weights are not integers")
                _require(np.abs(w).reshape(len(w), -1).sum(axis=1).max(initial=0) < FLOAT32_EXACT,
                         f"{where}: op {i}'s summed |weights| reach 2^24, beyond float32's exact integers")
        elif isinstance(op, Neurons):
            _check_neurons(backend.neuron_model(op), int(np.prod(shapes[i + 1])), f"{where}: op {i}")


def _check_neurons(model: NeuronModel, n: int, where: str) -> None:
    _require(isinstance(model, NeuronModel), f"{where}: neuron_model must return a neuro.sim.NeuronModel")
    model.reset(2, n)
    _require(getattr(model, "v", None) is not None and model.v.shape == (2, n), f"{where}: reset(2, {n}) must "
             f"create v of shape (2, {n})")
    _require(np.issubdtype(model.v.dtype, np.integer), f"{where}: v is {model.v.dtype}: chip state is integer "
             "(int32, int64 where a product can overflow)")
    spikes = np.zeros((2, n), np.float32)
    fired = model.step(np.ones((2, n), np.float32), spikes)
    if getattr(model, "graded", False):   # graded spikes: integer payloads, 0 = no message (e.g. Loihi 2)
        _require(np.all(spikes == np.round(spikes)) and np.abs(spikes).max(initial=0) < FLOAT32_EXACT,
                 f"{where}: a graded model must write integer payloads below 2^24")
        _require(int(fired) == np.count_nonzero(spikes), f"{where}: step must return the number of messages sent "
                 "(non-zero payloads)")
    else:
        _require(np.isin(spikes, (0, 1)).all(), f"{where}: step must write 0/1 spikes (or set graded = True)")
        _require(0 <= int(fired) <= 2 * n, f"{where}: step must return the number of neurons that fired")
    potential = model.potential()
    _require(potential.shape == (2, n) and np.issubdtype(potential.dtype, np.floating),
             f"{where}: potential() must be (2, {n}) floats in threshold units")


def check_counts(chip: Chip, program, result) -> None:
    """One count per op, none negative; every step's counts add up to the totals; the layers' synaptic ops add
    up to the per-image total; accuracy at most 1."""
    where = f"{chip.name} run"
    _require(len(result.layers) == len(program.snn.ops), f"{where}: {len(result.layers)} layer counts for "
             f"{len(program.snn.ops)} ops")
    for c in result.layers:
        _require(all(np.isfinite(getattr(c, f)) and getattr(c, f) >= 0 for f in LAYER_COUNT_FIELDS),
                 f"{where}: {c.name} has a negative or non-finite count")
    totals = result.counts_by_step.sum(axis=0)
    for c, row in zip(result.layers, totals):
        for f, v in zip(LAYER_COUNT_FIELDS, row):
            _require(np.isclose(v, getattr(c, f), rtol=1e-9, atol=1e-6), f"{where}: {c.name}'s {f} per step add up "
                     f"to {v}, its total is {getattr(c, f)}")
    per_step = sum(a.synops for a in layer_activity(program.snn, result))
    _require(np.isclose(per_step * result.timesteps, result.per_image("synops"), rtol=1e-9),
             f"{where}: the layers' synaptic ops do not add up to the run's")
    _require(np.all(result.correct_by_step <= result.n_images), f"{where}: more correct images than images")


def check_cost(chip: Chip, cost, where: str = "") -> None:
    """The fields the experiment reads, present and positive; ``ranges`` around their points; the optional
    fields of the right types; each variant's three figures positive."""
    where = f"{chip.name} cost" + (f" ({where})" if where else "")
    _require(isinstance(cost.coefficients, str) and cost.coefficients, f"{where}: .coefficients must name the set")
    for key in ("cores", "chips"):
        value = getattr(cost, key, None)
        _require(isinstance(value, (int, np.integer)) and value >= 1, f"{where}: .{key} must be an integer >= 1")
    for key in ("energy_per_inference_j", "frames_per_second", "latency_s"):
        value = getattr(cost, key, None)
        _require(isinstance(value, (int, float)) and np.isfinite(value) and value > 0,
                 f"{where}: .{key} must be a finite number > 0, got {value!r}")
    for key, (low, high) in getattr(cost, "ranges", {}).items():
        point = getattr(cost, key)
        _require(0 < low <= point * (1 + 1e-9) and point <= high * (1 + 1e-9), f"{where}: range of {key} "
                 f"({low:g}, {high:g}) does not hold its point {point:g}")
    _require(all(isinstance(a, str) for a in getattr(cost, "assumptions", [])), f"{where}: .assumptions must be "
             "lines of text")
    _require(isinstance(getattr(cost, "calibration", ""), str), f"{where}: .calibration must be one line of text")
    for label, v in getattr(cost, "variants", {}).items():
        _require(all(v.get(k, 0) > 0 for k in ("energy_per_inference_j", "frames_per_second", "latency_s")),
                 f"{where}: variant {label!r} needs energy_per_inference_j, frames_per_second and latency_s > 0")


def check_wide_weights(chip: Chip, program, snn: SNN, images, timesteps: int, min_agreement: float) -> None:
    """The program compiled with the chip's finest weights classifies at least ``min_agreement`` of the images
    as the float SNN does on the same input spikes."""
    labels = np.zeros(len(images), np.int64)
    ours = Engine(program.snn, program.backend()).run(images, labels, timesteps, encoding="rate", progress=False)
    ref = Engine(snn).run(images, labels, timesteps, encoding="rate", progress=False)
    agreement = float(np.mean(ours.predictions == ref.predictions))
    _require(agreement >= min_agreement, f"{chip.name}: with its wide_options {dict(chip.wide_options)} the program "
             f"classifies {100 * agreement:.0f} % of the images as the float SNN does, below "
             f"{100 * min_agreement:.0f} %")
