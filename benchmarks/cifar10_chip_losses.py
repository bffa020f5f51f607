"""Where the emulated chips lose accuracy on CIFAR-10: the float SNN with one chip rule at a time, then the chips.

Each row is one system run on the same spread test images (``select_images(..., "spread")``) at the same T;
accuracy at a few steps. Float ablations apply one chip rule to the converted SNN: reset to zero (Loihi's
reset), a spiking readout (class = most spikes; TrueNorth cannot read V off chip), Loihi's 8-bit weights and
13-bit biases (the compiled program's effective weights, run with float neurons and subtractive reset), and
TrueNorth's weight codes at the default and the widest levels. Measured on the JPEG copy of CIFAR-10.
``--split train`` runs on training images outside the calibration sample instead, to tune a chip option (Loihi's
``reset_threshold``, one row per ``--loihi-reset`` factor) without looking at the test split.

    PYTHONPATH=. python benchmarks/cifar10_chip_losses.py --n 200 --timesteps 128 --encoding regular [--json F]
    PYTHONPATH=. python benchmarks/cifar10_chip_losses.py --split train --n 150 --timesteps 64 \
        --loihi-reset 1,0.9,0.8,0.7,0.6 --only "float SNN|Loihi, reset_threshold 1|..."
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time

import numpy as np

import chips
from chips.loihi.compile import float_proxy as loihi_neurons
from chips.loihi.neuron import VTH_SHIFT
from chips.truenorth.program import float_proxy as truenorth_weights
from neuro import ann, datasets, graph
from neuro.experiment import calibrated_for, calibration_indices, convert_for, load_config, select_images
from neuro.sim import Engine
from neuro.snn import SNN, Neurons, Synapses

EXPERIMENT = "experiments/cifar10.toml"   # its [model] and [conversion]: the network every row runs


def _variant(snn: SNN, **changes) -> SNN:
    """The SNN with every hidden population's ``Neurons`` fields changed (``readout`` changes the output's)."""
    readout = changes.pop("readout", snn.readout)
    neurons = [i for i, op in enumerate(snn.ops) if isinstance(op, Neurons)]
    ops = []
    for i, op in enumerate(snn.ops):
        if isinstance(op, Neurons):
            if i == neurons[-1]:
                op = dataclasses.replace(op, spiking=readout == "spikes", v_init=op.v_init if readout != "spikes"
                                         else snn.ops[neurons[0]].v_init, **changes)
            else:
                op = dataclasses.replace(op, **changes)
        ops.append(op)
    return SNN(snn.input_shape, ops, readout, snn.ann, snn.info)


def _loihi_weights_float(program, snn: SNN) -> SNN:
    """The Loihi program's effective (quantised) weights and biases in threshold units, run by float neurons with
    the converted SNN's reset, v_init and readout: the 8-bit weight loss alone."""
    conv = [op for op in snn.ops if isinstance(op, Neurons)]
    ops, shape = [], tuple(snn.input_shape)
    for layer, neurons, q in zip(program.layers, conv, program.quantisation):
        syn = layer.synapse
        if isinstance(syn, graph.Dense) and len(shape) > 1:
            ops.append(graph.Flatten())
            shape = (int(np.prod(shape)),)
        unit = float(q["vth"] << VTH_SHIFT)   # the quantisation's unit (a probed output layer's vth differs)
        w = layer.weights * 2.0 ** (layer.weight_exp + 6) / unit
        bias = np.asarray(layer.bias(), np.float64) / unit
        op = graph.Dense(w, bias) if isinstance(syn, graph.Dense) else \
            graph.Conv2d(w, bias, syn.stride, syn.padding, syn.groups)
        ops += [Synapses(op), neurons]
        shape = op.output_shape(shape)
    return SNN(snn.input_shape, ops, snn.readout, snn.ann, snn.info)


def experiment_network(n: int, split: str = "test", calibrate_steps: int | None = None):
    """The experiment's config, the reference CIFAR-10 ANN, its SNN converted as experiments/cifar10.toml
    converts it (``calibrate_steps``: that [conversion] key instead of the file's), and ``n`` images spread over
    ``split`` with their labels (of the training split, only images outside the calibration sample)."""
    config = load_config(EXPERIMENT)
    if calibrate_steps is not None:
        config.values["conversion"]["calibrate_steps"] = calibrate_steps
    net = ann.load_model(config.resolve(config["model"]["path"]))
    if split == "train":
        train, train_labels = datasets.load("cifar10", split="train")
        rest = np.setdiff1d(np.arange(len(train)), calibration_indices(config, len(train)))
        images, labels = train[rest], train_labels[rest]
    else:
        images, labels = datasets.load("cifar10", split="test")
    images, labels = select_images(images, labels, n, "spread")
    return config, net, convert_for(config), images, labels


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=200)
    ap.add_argument("--timesteps", type=int, default=128)
    ap.add_argument("--encoding", default="regular")
    ap.add_argument("--split", default="test", choices=["test", "train"],
                    help="images: spread over the test split, or over training images outside the calibration sample")
    ap.add_argument("--loihi-reset", default="0.7", help="Loihi reset_threshold factors, one row each (comma-separated)")
    ap.add_argument("--truenorth-resolution", default="", help="TrueNorth partial_resolution values, one row each "
                    "(comma-separated; the row \"TrueNorth (multilevel 4, its widest)\" runs the default)")
    ap.add_argument("--calibrate-steps", type=int, default=None, help="[conversion] calibrate_steps instead of the "
                    "experiment's: the float SNN's biases calibrated for that T, and each swept chip row's again on "
                    "its float proxy")
    ap.add_argument("--only", default="", help="row names to run, separated by | (default: all)")
    ap.add_argument("--json", default="")
    args = ap.parse_args()

    config, net, snn, images, labels = experiment_network(args.n, args.split, args.calibrate_steps)
    ann_acc = float(np.mean(net.predict(images) == labels))
    loihi = chips.compile_for("loihi", snn, "rate")

    rows = {
        "float SNN, constant current": (lambda: Engine(snn), "current"),
        "float SNN": (lambda: Engine(snn), args.encoding),
        "float, reset to zero": (lambda: Engine(_variant(snn, reset="zero")), args.encoding),
        "float, spiking readout": (lambda: Engine(_variant(snn, readout="spikes")), args.encoding),
        "float, reset to zero + spiking readout": (lambda: Engine(_variant(snn, reset="zero", readout="spikes")),
                                                   args.encoding),
        "float, Loihi 8-bit weights": (lambda: Engine(_loihi_weights_float(loihi, snn)), args.encoding),
        "Loihi": (lambda: _loihi(snn, {}), args.encoding),
        "float, TrueNorth 4-bit weight codes": (lambda: Engine(truenorth_weights(snn, {})), args.encoding),
        "float, reset to zero, thresholds x 0.7": (lambda: Engine(loihi_neurons(snn, {"reset_threshold": 0.7})),
                                                   args.encoding),
        "TrueNorth (multilevel 4, its widest)": (lambda: _tn(snn, {}), args.encoding),
    }
    for factor in map(float, args.loihi_reset.split(",")):
        rows[f"Loihi, reset_threshold {factor:g}"] = (
            lambda f=factor: _loihi(calibrated_for(config, "loihi", snn, {"reset_threshold": f}),
                                    {"reset_threshold": f}),
            args.encoding)
    for k in [int(v) for v in args.truenorth_resolution.split(",") if v]:
        rows[f"TrueNorth, partial_resolution {k}"] = (
            lambda k=k: _tn(calibrated_for(config, "truenorth", snn, {"partial_resolution": k}),
                            {"partial_resolution": k}),
            args.encoding)
    only = [s for s in args.only.split("|") if s]
    out = dict(n=args.n, split=args.split, timesteps=args.timesteps, encoding=args.encoding, ann=ann_acc,
               calibrate_steps=config["conversion"]["calibrate_steps"], rows={})
    steps = [s for s in (16, 32, 48, 64, 96, 128, 192, 256) if s <= args.timesteps]
    print(f"ANN on these {args.n} {args.split} images: {100 * ann_acc:.2f} %; accuracy (%) at steps {steps}")
    for name, (make, enc) in rows.items():
        if only and name not in only:
            continue
        t0 = time.perf_counter()
        r = make().run(images, labels, args.timesteps, encoding=enc, seed=0, progress=False)
        acc = [100 * float(r.accuracy_by_step[s - 1]) for s in steps]
        out["rows"][name] = dict(encoding=enc, accuracy_by_step=[float(a) for a in r.accuracy_by_step],
                                 seconds=time.perf_counter() - t0)
        print(f"{name:45s} [{enc}] " + " ".join(f"{a:6.2f}" for a in acc) + f"   ({time.perf_counter() - t0:.0f} s)",
              flush=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(out, f, indent=1)


def _program(snn, options, chip="truenorth"):
    return chips.compile_for(chip, snn, "rate", options)


def _tn(snn, options):
    program = _program(snn, options)
    return Engine(program.snn, program.backend())


def _loihi(snn, options):
    program = _program(snn, options, "loihi")
    return Engine(program.snn, program.backend())


if __name__ == "__main__":
    main()
