"""python -m neuro.baselines MODEL.onnx: measure the model on the CPU (and GPU) and print a table or JSON."""

from __future__ import annotations

import argparse
import json
import sys

import numpy as np

from neuro import ann, datasets
from neuro.baselines.platforms import Settings
from neuro.baselines.results import Baselines, Value, write_json
from neuro.baselines.suite import PLATFORMS, measure
from neuro.cli import int_tuple
from neuro.errors import NeuroError


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m neuro.baselines", description=__doc__)
    p.add_argument("model", help="ONNX model file")
    p.add_argument("--batches", type=int_tuple, default=Settings.batches, help="batch sizes (default: 1,16,256,4096)")
    p.add_argument("--window", type=float, default=Settings.window_s,
                   help="least seconds timed per batch size (GPU energy: at least 1) (default: 1)")
    p.add_argument("--warmup", type=float, default=Settings.warmup_s, help="seconds of discarded calls (default: 0.5)")
    p.add_argument("--idle", type=float, default=Settings.idle_s, help="seconds of idle power measurement (default: 3)")
    p.add_argument("--threads", type=int, help="CPU threads (default: every CPU this process may use)")
    p.add_argument("--platforms", default=",".join(PLATFORMS), help=f"comma-separated subset of {','.join(PLATFORMS)}")
    p.add_argument("--data", choices=("mnist", "random"), default="mnist",
                   help="input images: the MNIST test split, or uniform random in [0, 1) (default: mnist)")
    p.add_argument("--data-root", help="folder with the dataset files (default: $NEURO_DATA, then the cache)")
    p.add_argument("--cpu-tdp-w", type=float,
                   help="CPU TDP in W for a labelled estimate (TDP x time / images), never a measurement")
    p.add_argument("--json", action="store_true", help="print JSON instead of the table")
    p.add_argument("-o", "--output", help="also write the results to this JSON file")
    return p


def load_images(args) -> tuple[np.ndarray, str]:
    """The images the batches are cut from, and their description for the record."""
    if args.data == "mnist":
        images, _ = datasets.load("mnist", split="test", root=args.data_root)
        return images, f"MNIST test split, {len(images)} images"
    shape = ann.load_model(args.model).input_shape
    return np.random.default_rng(0).random((1024, *shape), np.float32), "uniform random in [0, 1), 1024 images, seed 0"


def format_table(results: Baselines) -> str:
    s = results.settings
    cpu = f"{results.system['cpu']} ({results.system['usable_cpus']} usable CPUs)"
    lines = [f"{results.model} on {cpu}, {results.date}",
             f"window >= {s['window_s']:g} s per point after {s['warmup_s']:g} s warm-up; inputs: {s['inputs']}",
             f"{'platform':16s} {'batch':>6s} {'images/s':>10s} {'p50 ms':>9s} {'p99 ms':>9s} {'calls':>6s} "
             f"{'mJ/image':>9s} {'dyn mJ/im':>9s}  (n/m: not measurable here)"]
    for p in results.platforms:
        if not p.points:
            lines.append(f"{p.name:16s} {p.status}")
            continue
        threads = f"{p.threads} thread{'s' if p.threads != 1 else ''}" if p.threads else ""
        about = (p.device, p.runtime, threads, p.driver)
        lines.append(f"{p.name:16s} " + "; ".join(a for a in about if a))
        for pt in p.points:
            lines.append(f"{'':16s} {pt.batch:6d} {pt.throughput.value:10.1f} {pt.latency_p50.value:9.3f} "
                         f"{pt.latency_p99.value:9.3f} {pt.calls:6d} {_mj(pt.energy_per_image):>9s} "
                         f"{_mj(pt.dynamic_energy_per_image):>9s}")
        lines.append(f"{'':16s} energy: {p.energy_source}")
        if p.idle_power is not None:
            lines.append(f"{'':16s} idle power {p.idle_power.value:.2f} W")
        estimates = [pt.energy_per_image_estimate for pt in p.points if pt.energy_per_image_estimate is not None]
        if estimates:
            lines.append(f"{'':16s} ESTIMATE, not a measurement (TDP {s['cpu_tdp_w']:g} W x window / images), "
                         "mJ/image: " + ", ".join(f"{1e3 * e.value:.3g}" for e in estimates))
        lines.append(f"{'':16s} argmax agreement with the IR: {100 * p.agreement.value:.2f} %")
    return "\n".join(lines)


def _mj(v: Value) -> str:
    return "n/m" if v.value is None else f"{1e3 * v.value:.4g}"


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    try:
        settings = Settings(args.batches, args.window, args.warmup, args.idle, args.threads, args.cpu_tdp_w)
        images, inputs = load_images(args)
        which = tuple(dict.fromkeys(w.strip() for w in args.platforms.split(",") if w.strip()))
        results = measure(args.model, images, settings, which, inputs)
        if args.output:
            write_json(results, args.output)
    except NeuroError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(json.dumps(results.to_dict(), indent=1) if args.json else format_table(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
