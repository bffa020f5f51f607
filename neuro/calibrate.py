"""Bias calibration of a converted SNN for a given number of steps (Li et al. 2021, ICML, "A free lunch from ANN:
towards efficient, accurate spiking neural networks calibration": the light pipeline's bias correction).

At small T a converted layer's firing rate misses its ANN activation / lambda by a shift that is systematic per
output channel (the rate comes in multiples of 1/T; the layer below sends spikes, not its exact rate), and the next
layer inherits it. Calibration measures that shift on calibration images and adds it to the layer's bias: the bias
is a constant current per step in units of the threshold, so the rate moves by about as much. Hidden layers are
corrected in network order, each measured with the layers below it already corrected, so it also absorbs what is
left of their error. The target is the ANN activation / lambda clipped to [0, 1]: a rate cannot leave that range,
and the conversion promises no more (``neuro.convert``). The output layer is left as it is.
"""

from __future__ import annotations

import dataclasses
from typing import Callable

import numpy as np

from neuro import graph
from neuro.convert import activations
from neuro.datasets import spread
from neuro.errors import NeuroError
from neuro.snn import SNN, Neurons, Synapses

#: Calibration runs on at most this many of the images it is given, spread evenly over them.
MAX_IMAGES = 256
INFO_KEY = "bias_calibration"  # what ``SNN.info`` records of a calibration


def calibrate_biases(snn: SNN, images: np.ndarray, timesteps: int, *, max_images: int = MAX_IMAGES,
                     encoding: str = "current", seed: int = 0, batch_size: int = 256,
                     dynamics: tuple[str, Callable[[SNN], SNN]] | None = None) -> SNN:
    """A copy of ``snn`` whose hidden Conv2d/Dense layers' biases are corrected for runs of ``timesteps`` steps.

    Runs on at most ``max_images`` of ``images`` (the conversion's calibration images), spread evenly over them
    (a sorted draw from a split stored class by class would otherwise give the first classes only), fed by
    ``encoding`` (``neuro.sim.Engine.run``; the seed matters to "rate" only). ``snn.info[INFO_KEY]`` records the
    steps, the number of images and the encoding. ``dynamics`` = (name, proxy): the rates are measured on
    proxy(SNN), a float stand-in for another system's neurons (``chips.api.Chip.float_proxy``, e.g. Loihi's reset
    to zero), so the biases correct that system's error; an SNN already calibrated for other dynamics (the float
    SNN's) is calibrated again, and the record names both. Cost: one ANN forward pass, then per hidden layer one float
    engine run of the whole network (the engine runs whole networks only) for ``timesteps`` steps on those images:
    on the CIFAR-10 reference CNN 6 runs of 256 images (time measured in docs/results.md).
    """
    from neuro.sim import Engine   # here, not at import: `neuro convert` without calibration stays light

    if isinstance(timesteps, bool) or not isinstance(timesteps, (int, np.integer)) or timesteps < 1:
        raise NeuroError(f"bias calibration needs a whole number of steps of 1 or more, got {timesteps!r}")
    if max_images < 1 or len(images) == 0:
        raise NeuroError(f"bias calibration needs at least one image, got {min(len(images), max_images)}")
    if snn.ann is None:
        raise NeuroError("this SNN keeps no ANN to calibrate against: convert the model again")
    name, proxy = dynamics or ("", lambda net: net)
    earlier = snn.info.get(INFO_KEY)
    if earlier is not None and earlier.get("dynamics", "") == name:
        raise NeuroError(f"this SNN's biases are already calibrated ({earlier}): calibrate the converted SNN, once"
                         + (f" for {name}" if name else ""))
    images = images[spread(len(images), max_images)]
    snn.check_input(images)
    acts = activations(snn.ann, images)
    labels = np.zeros(len(images), np.int64)
    ops = list(snn.ops)
    for k, population, relu, scale in _hidden_layers(snn):
        current = proxy(SNN(snn.input_shape, ops, snn.readout, snn.ann, snn.info))
        counts = Engine(current).run(images, labels, timesteps, encoding=encoding, seed=seed, batch_size=batch_size,
                                     record_counts=True, progress=False).spike_counts[population]
        target = np.clip(acts[relu].astype(np.float64) / scale, 0.0, 1.0)
        shift = (target - counts / timesteps).mean(axis=(0, 2, 3) if counts.ndim == 4 else 0)
        layer = ops[k].op
        ops[k] = Synapses(dataclasses.replace(layer, bias=layer.bias + ops[k + 1].threshold * shift))
    record = {"timesteps": int(timesteps), "images": len(images), "encoding": encoding}
    if name:
        record["dynamics"] = name
    if earlier:
        record["after"] = earlier
    info = {**snn.info, INFO_KEY: record}
    return SNN(snn.input_shape, ops, snn.readout, snn.ann, info)


def _hidden_layers(snn: SNN) -> list[tuple[int, int, int, float]]:
    """(op index of its Synapses, index among the Neurons ops, index of its ReLU in the ANN, lambda) of every
    hidden Conv2d/Dense layer, in network order; an SNN not laid out as ``neuro.convert`` makes it is an error."""
    relus = [i for i, layer in enumerate(snn.ann.layers) if isinstance(layer, (graph.ReLU, graph.QCFS))]
    linear = [k for k, op in enumerate(snn.ops)
              if isinstance(op, Synapses) and isinstance(op.op, (graph.Conv2d, graph.Dense))][:-1]
    populations = [k for k, op in enumerate(snn.ops) if isinstance(op, Neurons)]
    scales = snn.info.get("scales")
    ann_shapes, snn_shapes = snn.ann.shapes(), snn.shapes()
    if (not isinstance(scales, list) or not len(linear) == len(relus) == len(scales)
            or any(k + 1 not in populations or ann_shapes[r + 1] != snn_shapes[k + 2] for k, r in zip(linear, relus))):
        raise NeuroError("this SNN's hidden layers do not match its ANN's ReLU layers and scales (it was not made "
                         "by neuro.convert): convert the model again to calibrate it")
    return [(k, populations.index(k + 1), r, float(s)) for k, r, s in zip(linear, relus, scales)]
