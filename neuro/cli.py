"""The ``neuro`` command line: convert an ANN, simulate the SNN, run an experiment, write the report."""

from __future__ import annotations

import argparse
import importlib
import json
import signal
import sys
import time
from pathlib import Path

import numpy as np

import chips
from neuro import encode
from neuro.errors import NeuroError, Terminated, os_error

# commands whose parser and function live in their own module: imported only when that command runs or the full
# list is printed, so `neuro chips` and `neuro simulate` do not import the report's plotting or the baselines
MODULE_COMMANDS = {"run": ("neuro.experiment", "cmd_run"), "report": ("neuro.report", "cmd_report"),
                   "sweep": ("neuro.sweep", "cmd_sweep"), "sweep-report": ("neuro.sweep", "cmd_sweep_report")}


def int_tuple(text: str) -> tuple[int, ...]:
    """argparse type for comma-separated integers (a shape like 1,28,28, batch sizes like 1,16,256)."""
    try:
        return tuple(int(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a comma-separated list of integers like 1,28,28") from None


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The parser; for ``command`` "convert", "simulate" or "chips" without the other modules' commands."""
    p = argparse.ArgumentParser(prog="neuro", description=__doc__)
    p.add_argument("--debug", action="store_true", help="show the traceback of an error or interruption")
    sub = p.add_subparsers(dest="command", required=True)

    c = sub.add_parser("convert", help="convert a trained ANN (.onnx, Keras .h5, torch .pt) into an SNN file",
                       description="Convert a trained ANN into a spiking network by data-based normalisation.")
    c.add_argument("model", help="model file: .onnx, Keras .h5, or a torch checkpoint (.pt/.pth)")
    c.add_argument("--data", default="mnist",
                   help="dataset whose training split calibrates the scales: mnist, cifar10 or imagefolder:PATH "
                        "(default: mnist)")
    c.add_argument("--data-root", help="folder with the dataset files (default: $NEURO_DATA, then the cache)")
    c.add_argument("-o", "--output", required=True, help="SNN file to write (HDF5)")
    c.add_argument("--calibration", type=int, default=1000, help="training images used to calibrate (default: 1000)")
    c.add_argument("--percentile", type=float, default=99.9,
                   help="activation percentile used as each layer's scale; 100 = max (default: 99.9)")
    c.add_argument("--scales", choices=("percentile", "model"), default="percentile",
                   help="each layer's scale: the activation percentile, or the QCFS thresholds in the model's "
                        "metadata JSON next to it (a network trained with QCFS; Bu et al. 2022) (default: percentile); "
                        "a QCFS layer's is its threshold either way, and the metadata's must agree")
    c.add_argument("--reset", choices=("subtract", "zero"), default="subtract", help="reset mode (default: subtract)")
    c.add_argument("--leak", type=float, default=0.0, help="fraction of V lost per step; 0 = integrate-and-fire")
    c.add_argument("--v-init", type=float, default=0.5, help="initial V as a fraction of threshold (default: 0.5)")
    c.add_argument("--readout", choices=("potential", "spikes"), default="potential",
                   help="class from the output potential or the output spike count (default: potential)")
    c.add_argument("--pool-neurons", action="store_true", help="spiking neurons after each average pooling")
    c.add_argument("--calibrate-steps", type=int, default=0, metavar="T",
                   help="correct each hidden layer's bias for runs of T steps (Li et al. 2021 bias calibration, "
                        "constant-current input) on at most 256 of the calibration images, spread over them; one "
                        "SNN run per hidden layer (default: 0 = off)")
    c.add_argument("--torch-class", help="for a state_dict checkpoint: the model class as module:Class")
    c.add_argument("--input-shape", type=int_tuple, help="for a torch checkpoint: input shape C,H,W")

    s = sub.add_parser("simulate", help="run an SNN file on a dataset and report accuracy step by step",
                       description="Simulate an SNN on test images; print accuracy after every time step.")
    s.add_argument("snn", help="SNN file written by `neuro convert`")
    s.add_argument("--data", default="mnist", help="dataset: mnist, cifar10 or imagefolder:PATH (default: mnist)")
    s.add_argument("--data-root", help="folder with the dataset files (default: $NEURO_DATA, then the cache)")
    s.add_argument("--split", default="test", choices=("test", "train"), help="dataset split (default: test)")
    s.add_argument("--n", type=int, default=1000, help="number of images (default: 1000)")
    s.add_argument("--spread", action="store_true",
                   help="take the N images spread evenly over the split instead of the first N (class-balanced "
                        "on a split stored class by class, as the CIFAR-10 JPEG copy's)")
    s.add_argument("--timesteps", "-T", type=int, default=32, help="time steps per image (default: 32)")
    s.add_argument("--encoding", choices=encode.ENCODINGS, default="current",
                   help="input encoding (regular: deterministic integrate-and-fire spikes per pixel)")
    s.add_argument("--batch-size", type=int, default=256, help="images simulated together (default: 256)")
    s.add_argument("--seed", type=int, default=0, help="seed of the rate encoding (default: 0)")
    s.add_argument("--chip", help="emulate on this chip model (see `neuro chips`); default: the float SNN")
    s.add_argument("--coefficients",
                   help="the chip's energy/time coefficient set: a name (`neuro chips` lists each chip's, the first "
                        "is the default) or your own .toml file (docs/chips/extending.md)")
    s.add_argument("--chip-option", action="append", default=[], metavar="KEY=VALUE",
                   help="a compile option of the chip, repeatable (`neuro chips` lists each chip's)")
    s.add_argument("--plot", help="write the accuracy-vs-step figure to this PNG")
    s.add_argument("--json", action="store_true", help="print one JSON object instead of the table")
    s.add_argument("--no-progress", action="store_true", help="no progress bar")

    sub.add_parser("chips", help="list the chip models and their key limits",
                   description="List the registered chip models and their key limits.")
    if command not in ("convert", "simulate", "chips"):
        for module in dict.fromkeys(m for m, _ in MODULE_COMMANDS.values()):
            importlib.import_module(module).add_parser(sub)
    return p


def _command(argv: list[str]) -> str | None:
    """The command named in ``argv`` (the first word not an option: the top level takes only flags)."""
    return next((a for a in argv if not a.startswith("-")), None)


def cmd_convert(args) -> None:
    from neuro import ann, datasets, snn
    from neuro.convert import convert, model_thresholds

    if args.calibrate_steps < 0:
        raise NeuroError(f"--calibrate-steps must be 0 (no calibration) or more steps, got {args.calibrate_steps}")
    net = ann.load_model(args.model, torch_class=args.torch_class, torch_input_shape=args.input_shape)
    thresholds = (model_thresholds(ann.load_metadata(args.model), ann.metadata_path(args.model))
                  if args.scales == "model" else None)
    images, _ = datasets.load(args.data, split="train", root=args.data_root)
    if args.calibration < 1:
        raise NeuroError(f"--calibration must be at least 1, got {args.calibration}")
    rng = np.random.default_rng(0)
    calib = images[np.sort(rng.choice(len(images), min(args.calibration, len(images)), replace=False))]
    result = convert(net, calib, percentile=args.percentile, thresholds=thresholds, reset=args.reset, leak=args.leak,
                     v_init=args.v_init, readout=args.readout, pool_neurons=args.pool_neurons)
    if args.calibrate_steps:
        from neuro.calibrate import INFO_KEY, calibrate_biases

        start = time.perf_counter()
        result = calibrate_biases(result, calib, args.calibrate_steps)
        print(f"calibrated the biases for T = {args.calibrate_steps} on {result.info[INFO_KEY]['images']} "
              f"calibration images in {time.perf_counter() - start:.1f} s (measured)")
    result.info["model_file"] = str(args.model)
    snn.save(result, args.output)
    print(f"wrote {args.output}: {len(result.ops)} ops, {sum(1 for o in result.ops if type(o).__name__ == 'Neurons')} "
          f"neuron layers, scales (from {result.info['scales_from']}) "
          f"{', '.join(f'{s:.3g}' for s in result.info['scales'])}")


def cmd_simulate(args) -> None:
    from neuro import datasets, plots, snn
    from neuro.experiment import select_images
    from neuro.sim import Engine

    net = snn.load(args.snn)
    if args.n < 1:
        raise NeuroError(f"--n must be at least 1, got {args.n}")
    if args.batch_size < 1:
        raise NeuroError(f"--batch-size must be at least 1, got {args.batch_size}")
    if args.plot and Path(args.plot).is_dir():
        raise NeuroError(f"--plot {args.plot} is a folder: give a file name like {Path(args.plot) / 'accuracy.png'}")
    images, labels = datasets.load(args.data, split=args.split, root=args.data_root)
    if args.n > len(images):
        raise NeuroError(f"--n is {args.n} but the {args.data} {args.split} split has {len(images)} images: "
                         f"use --n {len(images)} or fewer")
    images, labels = select_images(images, labels, args.n, "spread" if args.spread else "first")
    net.check_input(images)
    ann_accuracy = net.ann.accuracy(images, labels) if net.ann is not None else None
    if not args.chip and (args.coefficients or args.chip_option):
        raise NeuroError("--coefficients and --chip-option apply to a chip: add --chip NAME (see `neuro chips`)")
    chip = chips.get(args.chip) if args.chip else None
    options = chip.parse_options(args.chip_option) if chip else {}
    coefficients = chip.coefficient_set(args.coefficients) if chip else None
    program = chips.compile_for(args.chip, net, args.encoding, options) if chip else None
    engine = Engine(program.snn, program.backend()) if program else Engine(net)
    start = time.perf_counter()
    result = engine.run(images, labels, args.timesteps, encoding=args.encoding, seed=args.seed,
                        batch_size=args.batch_size, progress=not args.no_progress)
    seconds = time.perf_counter() - start
    chip_cost = program.cost(result, args.timesteps, coefficients) if program else None
    if args.plot:
        plots.accuracy_vs_steps({f"SNN ({args.encoding})": result.accuracy_by_step}, args.plot,
                                ann_accuracy=ann_accuracy, title=f"{args.snn}: {len(images)} {args.data} images")
    summary = summarize(result, ann_accuracy, seconds)
    summary.update(encoding=args.encoding, data=args.data, split=args.split, snn=str(args.snn), chip=args.chip)
    if chip_cost is not None:
        summary.update(energy_per_inference_j=chip_cost.energy_per_inference_j,
                       frames_per_second=chip_cost.frames_per_second, latency_s=chip_cost.latency_s,
                       ranges={k: list(v) for k, v in getattr(chip_cost, "ranges", {}).items()},
                       cores=chip_cost.cores, chips=chip_cost.chips, coefficients=chip_cost.coefficients)
    if args.json:
        print(json.dumps(summary, indent=1))
    else:
        print(format_table(result, ann_accuracy, seconds))
        if chip_cost is not None:
            print(f"{args.chip} ({chip_cost.coefficients}, modeled over all {args.timesteps} steps; low-high range): "
                  f"{_ranged(chip_cost, 'energy_per_inference_j', 1e6)} uJ per inference, "
                  f"{_ranged(chip_cost, 'frames_per_second')} frames/s, latency {_ranged(chip_cost, 'latency_s', 1e3)}"
                  f" ms, {chip_cost.cores} cores on {chip_cost.chips} chip(s)")


def _ranged(cost, name: str, scale: float = 1.0) -> str:
    """A cost figure with its low-high range where the chip gives one: "610 (110-3,600)"."""
    value = f"{getattr(cost, name) * scale:.2g}"
    low, high = getattr(cost, "ranges", {}).get(name, (None, None))
    return value if low is None else f"{value} ({low * scale:.2g}-{high * scale:.2g})"


def cmd_chips(args) -> None:
    for name in chips.available():
        chip = chips.get(name)
        print(f"{name} ({chip.title}, {chip.compile.__module__})")
        for key, value in chip.limits.items():
            print(f"  {key}: {value}")
        files = "; or a .toml file" if chip.coefficient_files else ""
        print(f"  coefficient sets: {', '.join(chip.coefficients)} (default {chip.default_coefficients}{files})")
        for option in chip.options:
            print(f"  option {option.summary()}")


def summarize(result, ann_accuracy, seconds: float) -> dict:
    """The JSON form of a simulation result: accuracy per step, per-image activity and per-layer counts."""
    return {
        "n_images": result.n_images,
        "timesteps": result.timesteps,
        "ann_accuracy": ann_accuracy,
        "snn_accuracy": result.accuracy,
        "accuracy_by_step": {str(t + 1): float(a) for t, a in enumerate(result.accuracy_by_step)},
        "synops_per_image": result.per_image("synops"),
        "spikes_per_image": result.per_image("spikes"),
        "effective_acs_per_image": result.per_image("effective_acs"),
        "effective_macs_per_image": result.per_image("effective_macs"),
        "dense_ops_per_image": result.per_image("dense"),
        "images_per_second": result.n_images / seconds if seconds > 0 else None,
        "layers": [{k: v for k, v in vars(c).items()} for c in result.layers],
    }


def format_table(result, ann_accuracy, seconds: float) -> str:
    T = result.timesteps
    steps = sorted({t for t in range(1, T + 1) if T <= 32 or t in (1, 2, 4, 8, 16, 32) or t % max(T // 10, 1) == 0}
                   | {T})
    lines = [f"{result.n_images} images, {T} steps, {result.n_images / seconds:.0f} images/s"]
    if ann_accuracy is not None:
        lines.append(f"ANN accuracy: {100 * ann_accuracy:.2f} %")
    lines.append(" step  SNN accuracy")
    lines += [f"{t:5d}  {100 * result.accuracy_by_step[t - 1]:7.2f} %" for t in steps]
    lines.append(f"synaptic ops per image: {result.per_image('synops'):.4g}; "
                 f"spikes per image: {result.per_image('spikes'):.4g}")
    return "\n".join(lines)


def main(argv=None) -> int:
    """Run one command. Mistakes and OS failures print one ``error:`` line (status 2); SIGINT and SIGTERM print
    one line (status 130, 143); ``--debug`` shows the traceback instead."""
    argv = sys.argv[1:] if argv is None else list(argv)
    args = build_parser(_command(argv)).parse_args(argv)
    signal.signal(signal.SIGTERM, _terminate)
    commands = {"convert": cmd_convert, "simulate": cmd_simulate, "chips": cmd_chips}
    if args.command in MODULE_COMMANDS:
        module, name = MODULE_COMMANDS[args.command]
        commands[args.command] = getattr(importlib.import_module(module), name)
    try:
        commands[args.command](args)
    except (NeuroError, OSError) as e:
        if args.debug:
            raise
        print(f"error: {os_error(e) if isinstance(e, OSError) else e}", file=sys.stderr)
        return 2
    except (KeyboardInterrupt, Terminated) as e:
        if args.debug:
            raise
        print("interrupted" + (": run again with --resume" if args.command in ("run", "sweep") else ""), file=sys.stderr)
        return 143 if isinstance(e, Terminated) else 130
    return 0


def _terminate(signum, frame):
    raise Terminated


if __name__ == "__main__":
    sys.exit(main())
