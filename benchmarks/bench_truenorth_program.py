"""Speed of a converted network on TrueNorth cores (the engine's layer-level program), and where its time goes.

Converts the reference CIFAR-10 CNN as experiments/cifar10.toml does (without its bias calibration, which
changes no work), compiles it for TrueNorth with the experiment's [chips.truenorth] options, runs N spread test
images for T ticks and prints images/s, image-ticks/s, the accuracy at the last tick (to check that two versions
compute the same) and the seconds each kind of stage takes, summed over the engine's threads: crossbar sums (the
CoreOps), partial neurons (split fan-in), merges and the layers' own neurons. Run from an older checkout
(``cd OLD && PYTHONPATH=. python NEW/benchmarks/bench_truenorth_program.py``) it measures that version.

    PYTHONPATH=. python benchmarks/bench_truenorth_program.py [--n 40] [--timesteps 128] [--threads 1] [--json]
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import time

import chips
from chips.truenorth.program import CoreOp, MergeOp
from cifar10_chip_losses import EXPERIMENT, experiment_network
from neuro.experiment import load_config
from neuro.sim import Engine
from neuro.snn import Neurons


def stage_kinds(snn) -> list[str]:
    """What each op of a TrueNorth program's SNN does: its synapse op's kind, or whether its neurons feed a merge."""
    synapse_op = [getattr(op, "op", None) for op in snn.ops] + [None]
    kinds = []
    for i, op in enumerate(snn.ops):
        if isinstance(op, Neurons):
            kinds.append("partial neurons" if isinstance(synapse_op[i + 1], MergeOp) else "neurons")
        else:
            kinds.append("crossbar sums" if isinstance(synapse_op[i], CoreOp) else
                         "merges" if isinstance(synapse_op[i], MergeOp) else "other")
    return kinds


def timed(engine: Engine, kinds: list[str], seconds: dict) -> None:
    """Wrap each stage's ``tile`` so that its time adds to ``seconds[kind]``."""
    for stages in engine.workers:
        for stage, kind in zip(stages, kinds):
            def tile(*args, _run=stage.tile, _kind=kind, **kwargs):
                start = time.perf_counter()
                out = _run(*args, **kwargs)
                seconds[_kind] += time.perf_counter() - start
                return out
            stage.tile = tile


def measure(args) -> dict:
    _, _, snn, images, labels = experiment_network(args.n, calibrate_steps=0)
    options = load_config(EXPERIMENT).chip("truenorth")[0]
    start = time.perf_counter()
    program = chips.compile_for("truenorth", snn, "regular", options)
    compile_s = time.perf_counter() - start
    engine = Engine(program.snn, program.backend(), threads=args.threads)
    engine.run(images[:1], labels[:1], 2, encoding="regular", progress=False)       # compiles the kernels
    seconds = collections.defaultdict(float)
    timed(engine, stage_kinds(program.snn), seconds)
    start = time.perf_counter()
    result = engine.run(images, labels, args.timesteps, encoding="regular", batch_size=args.batch, progress=False)
    run_s = time.perf_counter() - start
    return dict(images=args.n, timesteps=args.timesteps, threads=args.threads, batch=args.batch,
                cores=program.mapping.cores, compile_s=compile_s, run_s=run_s, images_per_s=args.n / run_s,
                image_ticks_per_s=args.n * args.timesteps / run_s, accuracy=float(result.accuracy_by_step[-1]),
                stage_seconds=dict(sorted(seconds.items(), key=lambda kv: -kv[1])), load_average=os.getloadavg())


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--n", type=int, default=40, help="test images, spread over the split")
    p.add_argument("--timesteps", type=int, default=128)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--batch", type=int, default=250)
    p.add_argument("--json", action="store_true")
    args = p.parse_args(argv)
    figures = measure(args)
    if args.json:
        print(json.dumps(figures, indent=1))
    else:
        for key, value in figures.items():
            if key == "stage_seconds":
                value = ", ".join(f"{kind} {s:.1f} s" for kind, s in value.items())
            print(f"{key:18s} {value:.4g}" if isinstance(value, float) else f"{key:18s} {value}")
    return figures


if __name__ == "__main__":
    main()
