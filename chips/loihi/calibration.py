"""The published Loihi 1 runs the cost model is checked against, rebuilt as synthetic networks of the published
shapes with a stated activity (docs/chips/loihi.md "Calibration"; docs/references.md section 2,
"Measured Loihi runs").

The weights are random (8-bit, all non-zero: only the shapes and the non-zeros matter to the cost model); the
activity is assumed, because none of the publications gives per-layer rates.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from chips.loihi.mapping import LoihiMapping, _connections, _layer_shapes, map_layers
from chips.loihi.neuron import LoihiLayer
from neuro import graph

# --- the published measurements ---------------------------------------------------------------------------------
# Blouw et al. 2019 ("Benchmarking keyword spotting efficiency on neuromorphic hardware", arXiv 1812.01739,
# Table 1; Wolf Mountain board, nengo-loihi, NxSDK 0.7.5): idle 0.029 W, running 0.110 W, dynamic 0.081 W,
# 296 inferences/s, 0.27 mJ dynamic energy per inference (idle-subtracted).
BLOUW_KWS_INF_PER_S = 296.0
BLOUW_KWS_DYNAMIC_J = 0.27e-3
# Intel NxTF tutorial a_image_classification_mnist.ipynb (intel-nrc-ecosystem/models; Rueckauer et al. 2022),
# EnergyProbe output: 60.807 us per step = 57.364 us spiking + 3.444 us management, 512 steps per image.
NXTF_MNIST_SPIKING_S = 57.364e-6
NXTF_MNIST_MANAGEMENT_S = 3.444e-6
NXTF_MNIST_STEP_S = 60.807e-6
# Intel NxTF tutorial b_image_classification_cifar.ipynb: 100 images x 512 steps classified in 7.029 s of wall
# time (137.295 us per step, 70.3 ms per image, 83.0 %), NxTF reports 157 cores on 2 chips. Wall time: it
# includes the per-image readout, reset and bias injection ("around 10 ms every 512 steps", the notebook).
NXTF_CIFAR_STEP_S = 137.295e-6


@dataclass(frozen=True)
class Workload:
    """A published network's mapping, assumed per-layer activity and steps per inference."""

    name: str
    mapping: LoihiMapping
    activity: list            # LayerActivity per layer
    steps: int
    injected_spikes: float    # input spikes the x86 injects per step (0 when the input is set through biases)


def _rng():
    return np.random.default_rng(0)


def _dense(n_out, n_in, rng, name, **kw):
    return LoihiLayer(graph.Dense(rng.integers(1, 200, (n_out, n_in))), name=name, **kw)


def _conv(o, c, k, s, rng, name, padding=0, groups=1, **kw):
    w = 2 * rng.integers(1, 128, (o, c // groups, k, k)) * rng.choice([-1, 1], (o, c // groups, k, k))
    return LoihiLayer(graph.Conv2d(w, None, (s, s), (padding, padding), groups), name=name, **kw)


def uniform_activity(layers, input_shape, rates):
    """Activity with every population at a fixed rate (spikes per neuron per step); rates[0] is the input's."""
    from chips.loihi.cost_model import LayerActivity
    shapes = _layer_shapes(layers, input_shape)
    return [LayerActivity(rates[i] * len(_connections(layer, shapes[i])[0]), rates[i + 1] * int(np.prod(shapes[i + 1])))
            for i, layer in enumerate(layers)]


@lru_cache(maxsize=None)
def kws() -> Workload:
    """Blouw 2019's 390-256-256-29 keyword spotter: dense 8-bit weights, 0.1 spikes per neuron per step everywhere
    (assumed: 100 Hz at nengo's dt = 1 ms), 10 steps per inference (nengo-loihi's keyword-spotting example shows
    each frame for p_time = 10 steps; assumed for Blouw's run). The input spikes (390 x 0.1 per step) are
    injected by the x86 every step (nengo-loihi feeds the input from the host)."""
    rng = _rng()
    layers = [_dense(256, 390, rng, "h1"), _dense(256, 256, rng, "h2"), _dense(29, 256, rng, "out")]
    act = uniform_activity(layers, (390,), [0.1] * 4)
    return Workload("Blouw 2019 KWS", map_layers(layers, (390,)), act, 10, 0.1 * 390)


@lru_cache(maxsize=None)
def nxtf_mnist() -> Workload:
    """NxTF's MNIST tutorial net: conv 5x5/2 1->16, 3x3 16->32, 3x3/2 32->64, 4x4 64->10 (33,802 parameters),
    biases on; input 0.114 spikes per pixel per step (mean MNIST intensity), hidden 0.05, output 0.03 (assumed,
    from the shipped CNN on emulated Loihi); 512 steps per image; the input is set through biases once per image
    (NxTF's InputGenerator): no per-step injection."""
    rng = _rng()
    layers = [_conv(16, 1, 5, 2, rng, "conv1", bias_mant=1), _conv(32, 16, 3, 1, rng, "conv2", bias_mant=1),
              _conv(64, 32, 3, 2, rng, "conv3", bias_mant=1), _conv(10, 64, 4, 1, rng, "conv4", bias_mant=1)]
    shape = (1, 28, 28)
    act = uniform_activity(layers, shape, [0.114, 0.05, 0.05, 0.05, 0.03])
    return Workload("NxTF MNIST", map_layers(layers, shape), act, 512, 0.0)


@lru_cache(maxsize=None)
def nxtf_cifar() -> Workload:
    """NxTF's CIFAR-10 pseudo-MobileNet (the tutorial's b_cifar_pseudo_mobile_net_0.87.h5): conv 3x3/2 3->32, then
    depthwise 3x3 + pointwise 1x1 pairs to 64, 128 (dw stride 2), 128, 256 (dw stride 2), 256, average pool 2
    folded into a dense 4096->10; batch norm folded into biases (all neurons update every step); "same" padding.
    Input 0.47 spikes per pixel per step (mean CIFAR-10 intensity), hidden 0.05, output 0.03 (assumed, as for
    MNIST); 512 steps; input through biases. Without NxTF's weight sharing our mapping needs more cores than its
    157, so our slowest core is not NxTF's (a stated difference)."""
    rng = _rng()
    layers, c = [_conv(32, 3, 3, 2, rng, "conv0", padding=1, bias_mant=1)], 32
    for i, (out, stride) in enumerate([(64, 1), (128, 2), (128, 1), (256, 2), (256, 1)]):
        layers += [_conv(c, c, 3, stride, rng, f"dw{i}", padding=1, groups=c, bias_mant=1),
                   _conv(out, c, 1, 1, rng, f"pw{i}", bias_mant=1)]
        c = out
    layers.append(_dense(10, 4 * 4 * 256, rng, "dense"))
    shape = (3, 32, 32)
    rates = [0.47] + [0.05] * (len(layers) - 1) + [0.03]
    return Workload("NxTF CIFAR-10", map_layers(layers, shape), uniform_activity(layers, shape, rates), 512, 0.0)


@dataclass(frozen=True)
class Point:
    """One published measurement against the model: (point, low, high) modeled, and whether it was fitted."""

    name: str
    source: str
    role: str                 # "fit" or "held out"
    measured: float
    unit: str
    modeled: tuple            # (point, low, high)

    @property
    def ratio(self) -> float:
        """Modeled / measured."""
        return self.modeled[0] / self.measured


def points(coefficients_name: str = "dav18") -> list[Point]:
    """Every published Loihi 1 point, each counted once: NxTF MNIST's step (fitted), the others held out. Modeled
    values are the calibrated point and its range (``LoihiCost.ranges``)."""
    from chips.loihi.cost_model import estimate_cost
    mnist, kw, cifar = (estimate_cost(w.mapping, w.activity, w.steps, coefficients_name, w.injected_spikes)
                        for w in (nxtf_mnist(), kws(), nxtf_cifar()))

    def step(k):
        lo, hi = k.ranges["latency_s"]
        return k.step_s, lo * k.step_s / k.latency_s, hi * k.step_s / k.latency_s

    lo, hi = kw.ranges["dynamic_energy_per_inference_j"]
    return [Point("NxTF MNIST time per step", "NxTF MNIST tutorial, EnergyProbe (57.36 us spiking + 3.44 us "
                  "management)", "fit", NXTF_MNIST_STEP_S, "s", step(mnist)),
            Point("Blouw KWS inferences per second", "Blouw et al. 2019, Table 1", "held out", BLOUW_KWS_INF_PER_S,
                  "1/s", (kw.frames_per_second, *kw.ranges["frames_per_second"])),
            Point("Blouw KWS dynamic energy per inference", "Blouw et al. 2019, Table 1 (idle-subtracted)",
                  "held out", BLOUW_KWS_DYNAMIC_J, "J", (kw.dynamic_energy_per_inference_j, lo, hi)),
            Point("NxTF CIFAR-10 time per step", "NxTF CIFAR tutorial, wall time (7.029 s / 100 images / 512 steps)",
                  "held out", NXTF_CIFAR_STEP_S, "s", step(cifar))]


@lru_cache(maxsize=None)
def calibration_line(coefficients_name: str = "dav18") -> str:
    """One line: the fitted point and each held-out point's modeled / measured ratio."""
    held = [p for p in points(coefficients_name) if p.role == "held out"]
    fit = [p for p in points(coefficients_name) if p.role == "fit"]
    return (f"fitted on {fit[0].name} ({fit[0].ratio:.2f}x); held out: "
            + ", ".join(f"{p.name} {p.ratio:.2f}x" for p in held) + " (modeled / measured)")
