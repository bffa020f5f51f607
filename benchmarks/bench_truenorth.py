"""TrueNorth full-chip emulation speed on MER14's benchmark workload (4,096 cores, 20 Hz, 128 synapses).

Builds ``chips.truenorth.chip.mer14_workload`` (every neuron at a 20 Hz mean rate at the 1 kHz tick, each
spike reaching an axon with 128 set crossbar bits), warms the kernels up on a few ticks, then runs N ticks
with ``run_chip``. Prints the MEASURED mean rate and SOPs per neuron spike (so the workload can be checked),
SOPs, hops and spikes per tick, emulated ticks per second, the ratio to real time (ticks/s / 1,000) and the
build time.

    python benchmarks/bench_truenorth.py [--json] [--ticks 300] [--cores 4096] [--threads N] [--seed 0]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from importlib.metadata import version

import numba
import numpy as np

from chips.truenorth import CHIP_CORES, CORE_NEURONS, TICK_HZ
from chips.truenorth.chip import MER14_RATE_HZ, MER14_SYNAPSES, mer14_workload, run_chip

WARM_UP_TICKS = 5


def measure(args) -> dict:
    start = time.perf_counter()
    chip = mer14_workload(cores=args.cores, seed=args.seed)
    build_s = time.perf_counter() - start
    start = time.perf_counter()
    run_chip(chip, np.zeros((WARM_UP_TICKS, 0), bool), seed=args.seed)
    warm_up_s = time.perf_counter() - start
    start = time.perf_counter()
    run = run_chip(chip, np.zeros((args.ticks, 0), bool), seed=args.seed)
    run_s = time.perf_counter() - start
    neurons = args.cores * CORE_NEURONS
    ticks_per_second = args.ticks / run_s
    return dict(
        cores=args.cores, neurons=neurons, ticks=args.ticks, target_rate_hz=MER14_RATE_HZ,
        target_synapses=MER14_SYNAPSES,
        measured_rate_hz=run.neuron_spikes / (args.ticks * neurons) * TICK_HZ,
        sops_per_neuron_spike=run.sops / run.neuron_spikes,
        sops_per_tick=run.sops / args.ticks, spikes_per_tick=run.neuron_spikes / args.ticks,
        hops_per_spike=run.hops / run.neuron_spikes, chip_crossings=run.chip_crossings,
        run_s=run_s, ticks_per_second=ticks_per_second, real_time_ratio=ticks_per_second / TICK_HZ,
        sops_per_second=run.sops / run_s, build_s=build_s, warm_up_s=warm_up_s)


def machine() -> dict:
    return dict(cpu_count=os.cpu_count(), numba_threads=numba.get_num_threads(),
                threading_layer=numba.threading_layer(), load_average=os.getloadavg(),
                python=platform.python_version(), numpy=np.__version__, numba=version("numba"),
                processor=platform.processor() or platform.machine())


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--ticks", type=int, default=300, help="timed ticks (300 take about 10-30 s on 2 cores)")
    p.add_argument("--cores", type=int, default=CHIP_CORES)
    p.add_argument("--threads", type=int, default=numba.config.NUMBA_NUM_THREADS)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", action="store_true")
    args = p.parse_args(argv)
    numba.set_num_threads(args.threads)
    figures = measure(args)
    figures["machine"] = machine()
    if args.json:
        print(json.dumps(figures, indent=1))
    else:
        for key, value in figures.items():
            print(f"{key:24s} {value:.4g}" if isinstance(value, float) else f"{key:24s} {value}")
    return figures


if __name__ == "__main__":
    main()
