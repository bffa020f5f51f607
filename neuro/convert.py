"""ANN -> SNN conversion by data-based weight normalisation (Diehl et al. 2015; Rueckauer et al. 2017).

Each ReLU layer l gets a scale lambda_l: the ``percentile`` of its non-zero activations on a
calibration set (100 = the maximum). With lambda_0 = 1 for images in [0, 1], the layer feeding it is
rescaled to W_l <- W_l lambda_{l-1} / lambda_l, b_l <- b_l / lambda_l, and its ReLU becomes neurons
with threshold 1, so a neuron's firing rate approximates its ANN activation / lambda_l, clipped to
[0, 1]. Biases are constant input currents. Average pooling is linear and passes rates unchanged
(exact); max pooling becomes a ``MaxPoolGate``. Softmax is dropped (it does not change the argmax).

``thresholds`` instead: each ReLU layer's lambda given, in network order, by the model itself. A network
trained with the quantisation-clip-floor-shift activation (QCFS, Bu et al. 2022, ICLR) carries its trained
thresholds in its metadata (``QCFS_KEY``, ``model_thresholds``); with lambda_l = threshold_l, initial
V = 0.5 threshold (``v_init``, the "shift") and reset by subtraction, an IF neuron driven by a constant
current z for T steps fires floor(z T / lambda + 1/2) times, clipped to [0, T]: at T = L its rate times
lambda is the layer's QCFS activation exactly (deeper layers, fed spikes rather than a constant current,
match in expectation: the paper's Theorem 2). A network whose file has ``graph.QCFS`` layers (the ONNX
QCFS node sequence, ``neuro.ann.onnx``) carries the thresholds itself: each QCFS layer's lambda is its
threshold whatever the scales option, and ``thresholds`` from metadata must agree with them.
"""

from __future__ import annotations

import numpy as np
from threadpoolctl import threadpool_limits

from neuro import graph
from neuro.errors import NeuroError
from neuro.snn import SNN, MaxPoolGate, Neurons, Synapses


#: The metadata key of a QCFS-trained model's per-layer thresholds (``experiments/train_cifar10.py --qcfs L``).
QCFS_KEY = "qcfs_thresholds"
SCALES = ("percentile", "model")  # where the conversion takes each layer's lambda from


def model_thresholds(metadata: dict | None, source) -> list[float]:
    """The per-ReLU-layer QCFS thresholds a model's metadata carries; ``source`` names the file in errors."""
    values = (metadata or {}).get(QCFS_KEY)
    if not values:
        raise NeuroError(f"{source} carries no '{QCFS_KEY}' (a model trained with QCFS has them): convert it "
                         "with percentile scales (--scales percentile, [conversion] scales = \"percentile\")")
    if not isinstance(values, list) or not all(isinstance(v, (int, float)) for v in values):
        raise NeuroError(f"{source}: '{QCFS_KEY}' must be a list of numbers, got {values!r}")
    return [float(v) for v in values]


def activations(net: graph.Network, images: np.ndarray) -> list[np.ndarray]:
    """Every layer's output on ``images`` (``Network.forward(collect=True)``), BLAS on one thread: a multithreaded
    BLAS splits the sums by its thread count, which moved the scales by a float32 ULP from one machine to another."""
    with threadpool_limits(1, user_api="blas"):
        return net.forward(images, collect=True)[1]


def layer_scales(net: graph.Network, calibration: np.ndarray, percentile: float = 99.9) -> dict[int, float]:
    """lambda for every activation layer index: a ReLU's is the percentile of its non-zero activations on
    ``calibration`` (``activations``), a QCFS layer's its threshold (its output never exceeds it)."""
    if not 0 < percentile <= 100:
        raise NeuroError(f"percentile {percentile} is out of range: use 0 < p <= 100 (100 = max normalisation)")
    if len(calibration) == 0:
        raise NeuroError("the calibration set is empty: give at least one image")
    acts = activations(net, calibration)
    scales = {}
    for i, layer in enumerate(net.layers):
        if isinstance(layer, graph.QCFS):
            scales[i] = layer.threshold
        elif isinstance(layer, graph.ReLU):
            nz = acts[i][acts[i] > 0]
            scales[i] = float(np.percentile(nz, percentile)) if nz.size else 1.0
    scales["output"] = _output_scale(acts[-1] if not isinstance(net.layers[-1], graph.Softmax) else acts[-2],
                                     percentile)
    return scales


def _output_scale(logits: np.ndarray, percentile: float) -> float:
    pos = logits[logits > 0]
    return float(np.percentile(pos, percentile)) if pos.size else 1.0


def convert(net: graph.Network, calibration: np.ndarray, *, percentile: float = 99.9,
            thresholds: list[float] | None = None, reset: str = "subtract", leak: float = 0.0, v_init: float = 0.5,
            readout: str = "potential", pool_neurons: bool = False) -> SNN:
    """Convert a ReLU or QCFS network into an SNN (each QCFS layer's lambda is its threshold).

    ``thresholds``: each activation layer's lambda, in network order (``model_thresholds``), instead of the
    ``percentile`` of its activations (a QCFS layer's must equal its threshold); the output layer's scale
    (which matters to a "spikes" readout only) stays the percentile of the logits on ``calibration``.
    ``v_init``: initial V as a fraction of the threshold; 0.5 centres the rate-quantisation error
    (Bu et al. 2022, "Optimal ANN-SNN conversion", ICLR) and cuts the steps needed for ANN accuracy.
    ``readout``: "potential" (the output layer integrates without spiking; class = argmax V) or
    "spikes" (the output layer spikes; class = most spikes, V breaks ties).
    ``pool_neurons``: put IF neurons (threshold 1) after each average pooling so every op between
    neurons sees binary spikes (what a chip needs); without them pooled spike fractions feed the next
    layer directly (exact, one step less latency per pooling layer).
    """
    net.check_input(calibration)
    scales = layer_scales(net, calibration, percentile)
    if thresholds is not None:
        scales = _with_thresholds(net, scales, thresholds)
    layers = net.layers[:-1] if isinstance(net.layers[-1], graph.Softmax) else net.layers
    last_linear = max((i for i, layer in enumerate(layers) if isinstance(layer, (graph.Conv2d, graph.Dense))),
                      default=None)
    if last_linear is None:
        raise NeuroError(f"network {net.name!r} has no Conv2d or Dense layer to convert")
    if last_linear != len(layers) - 1:
        raise NeuroError(f"network {net.name!r} must end with a Conv2d/Dense layer (optionally + Softmax), "
                         f"it ends with {type(layers[-1]).__name__}")

    ops, prev_scale, i = [], 1.0, 0
    while i < len(layers):
        layer = layers[i]
        if isinstance(layer, (graph.Conv2d, graph.Dense)):
            followed_by_act = i + 1 < len(layers) and isinstance(layers[i + 1], graph.ACTIVATIONS)
            if i == last_linear:
                scale = scales["output"]
                neurons = Neurons(1.0, leak, reset, v_init if readout == "spikes" else 0.0, readout == "spikes")
            elif followed_by_act:
                scale = scales[i + 1]
                neurons = Neurons(1.0, leak, reset, v_init)
                i += 1  # the ReLU/QCFS becomes these neurons
            else:
                raise NeuroError(f"layer {i} ({type(layer).__name__}) is not followed by a ReLU or QCFS: only "
                                 "ReLU/QCFS networks can be converted")
            ops += [Synapses(_rescale(layer, prev_scale / scale, 1.0 / scale)), neurons]
            prev_scale = scale
        elif isinstance(layer, graph.AvgPool2d):
            ops.append(Synapses(layer))
            if pool_neurons:
                ops.append(Neurons(1.0, 0.0, reset, v_init))
        elif isinstance(layer, graph.MaxPool2d):
            ops.append(MaxPoolGate(layer.kernel, layer.stride))
        elif isinstance(layer, graph.Flatten):
            ops.append(layer)
        elif isinstance(layer, graph.ACTIVATIONS):
            raise NeuroError(f"layer {i} is a {type(layer).__name__} that does not follow a Conv2d/Dense: "
                             "it cannot be converted")
        else:
            raise NeuroError(f"layer {i} ({type(layer).__name__}) cannot be converted")
        i += 1

    qcfs = any(isinstance(layer, graph.QCFS) for layer in layers)
    info = dict(percentile=percentile,
                scales_from="model" if thresholds is not None else "qcfs layers" if qcfs else "percentile",
                reset=reset, leak=leak, v_init=v_init, pool_neurons=pool_neurons,
                n_calibration=len(calibration), scales=[s for k, s in scales.items() if k != "output"],
                output_scale=scales["output"], source=net.name)
    return SNN(net.input_shape, ops, readout, net, info)


def _with_thresholds(net: graph.Network, scales: dict, thresholds) -> dict:
    """``scales`` with every activation layer's lambda replaced by the next of ``thresholds`` (in network
    order); a QCFS layer's threshold must agree (to float32 rounding), else the metadata is another file's."""
    acts = [i for i, layer in enumerate(net.layers) if isinstance(layer, graph.ACTIVATIONS)]
    if len(thresholds) != len(acts):
        raise NeuroError(f"{len(thresholds)} model thresholds for the {len(acts)} ReLU/QCFS layers of network "
                         f"{net.name!r}: the metadata belongs to another network; convert with percentile scales")
    bad = [t for t in thresholds if not (np.isfinite(t) and t > 0)]
    if bad:
        raise NeuroError(f"model thresholds must be positive and finite, got {bad}: fix the model's metadata")
    for k, (i, t) in enumerate(zip(acts, thresholds)):
        layer = net.layers[i]
        if isinstance(layer, graph.QCFS) and not np.isclose(t, layer.threshold, rtol=1e-6, atol=0):
            raise NeuroError(f"model threshold {k} is {t:g} but QCFS layer {i} of network {net.name!r} has threshold "
                             f"{layer.threshold:g}: the metadata belongs to another file; fix it, or convert without "
                             "model scales (QCFS layers carry their thresholds)")
    return {**scales, **{i: float(t) for i, t in zip(acts, thresholds)}}


def _rescale(layer, w_factor: float, b_factor: float):
    if isinstance(layer, graph.Dense):
        return graph.Dense(layer.weight * w_factor, layer.bias * b_factor)
    return graph.Conv2d(layer.weight * w_factor, layer.bias * b_factor, layer.stride, layer.padding, layer.groups)
