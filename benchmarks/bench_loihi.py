"""Loihi emulation speed against Lava's CPU backend and against the float path, on one network in one run.

The network is a dense chain shaped like Blouw et al.'s keyword-spotting net (390-256-256-29) with random
8-bit weights, driven by random input spikes (~10 % of neurons spike per step). Lava (lava-nc,
``Loihi1SimCfg(select_tag="fixed_pt")``, one OS process per Lava process) runs a few samples one after another
on a network built once per pass (build time and the first, warm-up sample reported apart). The engine runs
the same samples with the Loihi backend, and a batch for throughput on the Loihi and the float backend (the
same chain as float integrate-and-fire neurons). Lava passes and engine runs alternate, so all see the same
machine load; figures are medians. Checked on the way: every layer's spikes equal those of a monitored Lava
pass, every layer's v after each sample equals the timed (unmonitored) Lava passes', and the batch's spike
counts on those samples equal Lava's. The engine's Loihi runs are made twice, step by step and time-batched
(tiles of --time-batch steps, ``neuro.sim.Engine.run``), both checked against Lava.

    .venv-lava/bin/python benchmarks/bench_loihi.py [--json] [--timesteps 200] [--lava-samples 3]
                                                    [--batch 256] [--repeats 5] [--threads N] [--seed 0]
                                                    [--time-batch 20]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from importlib.metadata import version

# Lava fixes the multiprocessing start method when first imported, which fails once the engine has run
# (tests/test_loihi_lava.py): import it before anything else.
from lava.magma.core.run_conditions import RunSteps
from lava.magma.core.run_configs import Loihi1SimCfg
from lava.proc.dense.process import Dense
from lava.proc.io.source import RingBuffer
from lava.proc.lif.process import LIF
from lava.proc.monitor.process import Monitor

import numpy as np

from chips.loihi import LoihiBackend, chain_layers, program_snn
from neuro import graph
from neuro.encode import Playback
from neuro.sim import Engine
from neuro.snn import SNN, Neurons, Synapses

SIZES = (390, 256, 256, 29)   # Blouw et al. 2019 keyword spotting (docs/references.md section 2)
INPUT_DENSITY = 0.2           # fraction of inputs spiking per step
RUNS = ("lava", "lava_monitored", "loihi_same_samples", "loihi_batch", "loihi_same_samples_tiled", "loihi_batch_tiled",
        "float_batch")


def network(seed: int) -> list[dict]:
    """``simulate_chain`` layer dicts: mixed-sign 8-bit weights, CUBA decays, ~10 % of neurons spiking per step."""
    rng = np.random.default_rng(seed)
    return [dict(weights=rng.integers(-256, 256, (n_out, n_in)), num_weight_bits=8, weight_exp=0,
                 du=1024, dv=256, vth=6000, bias_mant=rng.integers(0, 200, n_out), bias_exp=2)
            for n_in, n_out in zip(SIZES[:-1], SIZES[1:])]


def float_snn(chain) -> SNN:
    """The chain as a float SNN in v units: each input spike brings the charge that CUBA's decaying current
    u delivers in total (a << 6 summed over 4096 / (du + 1) steps), leak dv / 4096, reset to zero."""
    ops = []
    for layer in chain:
        gain = 2.0 ** (layer.weight_exp + 6) * 4096 / (layer.du + 1)
        ops += [Synapses(graph.Dense(layer.weights * gain, layer.bias())),
                Neurons(float(layer.vth << 6), leak=layer.dv / 4096, reset="zero")]
    return SNN((SIZES[0],), ops, readout="spikes")


def input_spikes(seed: int, n: int, timesteps: int) -> np.ndarray:
    """(n, n_in, T) random 0/1 input spikes (Lava's RingBuffer layout per sample)."""
    rng = np.random.default_rng(seed)
    return (rng.random((n, SIZES[0], timesteps)) < INPUT_DENSITY).astype(np.int32)


class LavaChain:
    """RingBuffer -> Dense -> LIF ... built and compiled once; the RingBuffer holds the samples back to back,
    played one run of T steps each, the state reset to zero between them.

    With ``monitored``, a Monitor per LIF records its spikes (one more OS process each)."""

    def __init__(self, layers: list[dict], samples: np.ndarray, monitored: bool):
        n, _, self.T = samples.shape
        self.n = n
        prev = RingBuffer(data=np.concatenate(list(samples), axis=1)).s_out
        self.stages, self.monitors = [], []
        for spec in layers:
            w = spec["weights"]
            dense = Dense(weights=w, num_weight_bits=spec["num_weight_bits"], weight_exp=spec["weight_exp"])
            lif = LIF(shape=(w.shape[0],), du=spec["du"], dv=spec["dv"], vth=spec["vth"],
                      bias_mant=spec["bias_mant"], bias_exp=spec["bias_exp"])
            prev.connect(dense.s_in)
            dense.a_out.connect(lif.a_in)
            self.stages.append((dense, lif))
            prev = lif.s_out
            if monitored:
                self.monitors.append(Monitor())
                self.monitors[-1].probe(lif.s_out, n * self.T)
        self.root = self.stages[0][1]

    def build(self) -> float:
        """Compile the processes and create the runtime; returns the seconds taken."""
        start = time.perf_counter()
        self.root.create_runtime(run_cfg=Loihi1SimCfg(select_tag="fixed_pt"))
        return time.perf_counter() - start

    def run_samples(self) -> tuple[list[float], list[np.ndarray]]:
        """Seconds of each sample (reset + T steps) and per layer v (n_samples, n) after each sample."""
        times, final_v = [], []
        for k in range(self.n):
            start = time.perf_counter()
            if k:
                self._reset()
            self.root.run(condition=RunSteps(num_steps=self.T))
            times.append(time.perf_counter() - start)
            final_v.append([lif.v.get().astype(np.int64) for _, lif in self.stages])
        return times, [np.stack(v) for v in zip(*final_v)]

    def _reset(self) -> None:
        """u, v and the dense buffers back to zero."""
        for dense, lif in self.stages:
            zeros = np.zeros(lif.v.shape, np.int32)
            lif.u.set(zeros)
            lif.v.set(zeros)
            dense.a_buff.set(zeros)

    def spikes(self) -> list[np.ndarray]:
        """Per layer (n_samples, n, T) bool, from the monitors."""
        out = []
        for (_, lif), monitor in zip(self.stages, self.monitors):
            s = monitor.get_data()[lif.name]["s_out"] != 0           # (n_samples T, n)
            out.append(s.reshape(-1, self.T, s.shape[1]).transpose(0, 2, 1))
        return out

    def stop(self) -> None:
        self.root.stop()


def lava_pass(layers: list[dict], samples: np.ndarray, monitored: bool = False) -> tuple[list[float], dict]:
    """Build, run every sample, stop (idle Lava processes would slow the engine's runs). Returns the seconds
    of each sample but the first (a warm-up that starts the processes) and the details."""
    chain = LavaChain(layers, samples, monitored)
    try:
        build_s = chain.build()
        times, final_v = chain.run_samples()
        spikes = chain.spikes()
    finally:
        chain.stop()
    return times[1:], dict(build_s=build_s, first_sample_s=times[0], final_v=final_v, spikes=spikes)


def run_engine(engine: Engine, samples: np.ndarray, **record):
    """The engine on (n, n_in, T) input spikes."""
    n, n_in, T = samples.shape
    return engine.run(np.zeros((n, n_in), np.float32), np.zeros(n, np.int64), T,
                      encoding=Playback(samples.transpose(0, 2, 1)), progress=False, **record)


def timed(fn):
    """``fn`` as a run for ``time_interleaved``: ([its seconds], its result)."""
    def run():
        start = time.perf_counter()
        result = fn()
        return [time.perf_counter() - start], result
    return run


def time_interleaved(runs: dict, repeats: int) -> tuple[dict, dict]:
    """Median seconds and last result of each named run (returning (seconds list, result)), repeats
    interleaved so that all see the same machine load; one untimed warm-up run each first."""
    times, results = {name: [] for name in runs}, {}
    for name, fn in runs.items():
        fn()
    for _ in range(repeats):
        for name, fn in runs.items():
            seconds, results[name] = fn()
            times[name] += seconds
    return {name: statistics.median(t) for name, t in times.items()}, results


def assert_same_spikes(ours, lava: list[np.ndarray]) -> None:
    """Every layer's spike trains of the engine's trace equal Lava's."""
    for k, (trace, expected) in enumerate(zip(ours, lava)):
        np.testing.assert_array_equal(trace["spikes"].transpose(0, 2, 1) != 0, expected,
                                      err_msg=f"layer {k} spikes differ from Lava")


def assert_same_final_v(ours, lava_v: list[np.ndarray], what: str) -> None:
    """Every layer's v after the last step of each sample equals Lava's."""
    for k, (trace, expected) in enumerate(zip(ours, lava_v)):
        np.testing.assert_array_equal(trace["v"][:, -1], expected, err_msg=f"{what}: layer {k} final v differs")


def assert_same_counts(counts: list[np.ndarray], lava: list[np.ndarray], what: str) -> None:
    """Per-neuron spike totals of the first samples equal Lava's."""
    for k, (total, expected) in enumerate(zip(counts, lava)):
        np.testing.assert_array_equal(total[:len(expected)], expected.sum(axis=2),
                                      err_msg=f"{what}: layer {k} spike counts differ from Lava")


def rates(T: int, seconds: float, n: int) -> dict:
    """Rates of ``n`` samples of T steps in ``seconds``; a step of one sample counts as one step."""
    return dict(seconds=seconds, steps_per_second=n * T / seconds, samples_per_second=n / seconds)


def measure(args) -> dict:
    """A monitored Lava pass (every layer's spikes), then Lava, Loihi and float runs interleaved."""
    T, n = args.timesteps, args.lava_samples
    layers = network(args.seed)
    batch = input_spikes(args.seed + 1, max(args.batch, n), T)
    same, big = batch[:n], batch[:args.batch]
    monitored_s, monitored = lava_pass(layers, same, monitored=True)

    chain = chain_layers(layers, SIZES[0])
    snn = program_snn(chain, (SIZES[0],))
    loihi = Engine(snn, LoihiBackend(chain, snn), threads=args.threads)
    floats = Engine(float_snn(chain), threads=args.threads)
    tiled = dict(time_batch=args.time_batch)
    seconds, results = time_interleaved({
        "lava": lambda: lava_pass(layers, same),
        "loihi_same_samples": timed(lambda: run_engine(loihi, same, record_steps=True)),
        "loihi_batch": timed(lambda: run_engine(loihi, big, record_counts=True)),
        "loihi_same_samples_tiled": timed(lambda: run_engine(loihi, same, record_steps=True, **tiled)),
        "loihi_batch_tiled": timed(lambda: run_engine(loihi, big, record_counts=True, **tiled)),
        "float_batch": timed(lambda: run_engine(floats, big, record_counts=True))}, args.repeats)

    for suffix in ("", "_tiled"):
        traces = results["loihi_same_samples" + suffix].traces
        assert_same_spikes(traces, monitored["spikes"])
        assert_same_final_v(traces, monitored["final_v"], "Lava monitored")
        assert_same_final_v(traces, results["lava"]["final_v"], "Lava")
        assert_same_counts(results["loihi_batch" + suffix].spike_counts, monitored["spikes"], f"batch {args.batch}")

    lava = results["lava"]
    figures = dict(
        network="-".join(map(str, SIZES)), timesteps=T, input_density=INPUT_DENSITY, repeats=args.repeats,
        lava=dict(samples=n - 1, build_s=lava["build_s"], first_sample_s=lava["first_sample_s"],
                  **rates(T, seconds["lava"], 1)),
        lava_monitored=dict(samples=n - 1, build_s=monitored["build_s"], first_sample_s=monitored["first_sample_s"],
                            **rates(T, statistics.median(monitored_s), 1)),
        loihi_same_samples=dict(samples=n, **rates(T, seconds["loihi_same_samples"], n)),
        loihi_batch=dict(samples=args.batch, **rates(T, seconds["loihi_batch"], args.batch)),
        loihi_same_samples_tiled=dict(samples=n, time_batch=args.time_batch,
                                      **rates(T, seconds["loihi_same_samples_tiled"], n)),
        loihi_batch_tiled=dict(samples=args.batch, time_batch=args.time_batch,
                               **rates(T, seconds["loihi_batch_tiled"], args.batch)),
        float_batch=dict(samples=args.batch, **rates(T, seconds["float_batch"], args.batch)),
        spikes_per_sample={key: [float(c.sum()) / args.batch for c in results[f"{key}_batch"].spike_counts]
                           for key in ("loihi", "float")},
        bit_exact_with_lava=True,   # asserted above
    )
    per_second = {key: figures[key]["samples_per_second"] for key in RUNS}
    figures["ratios"] = dict(
        loihi_batch_over_lava=per_second["loihi_batch"] / per_second["lava"],
        loihi_batch_over_lava_monitored=per_second["loihi_batch"] / per_second["lava_monitored"],
        loihi_same_samples_over_lava=per_second["loihi_same_samples"] / per_second["lava"],
        loihi_over_float=per_second["loihi_batch"] / per_second["float_batch"],
        loihi_batch_tiled_over_loihi_batch=per_second["loihi_batch_tiled"] / per_second["loihi_batch"],
        loihi_same_samples_tiled_over_loihi_same_samples=per_second["loihi_same_samples_tiled"] /
        per_second["loihi_same_samples"])
    return figures


def machine(threads: int) -> dict:
    return dict(cpu_count=os.cpu_count(), engine_threads=threads, load_average=os.getloadavg(),
                python=platform.python_version(), numpy=np.__version__, numba=version("numba"),
                lava_nc=version("lava-nc"), processor=platform.processor() or platform.machine())


def print_table(f: dict) -> None:
    for key, value in f["machine"].items():
        print(f"{key:28s} {value}")
    print(f"network {f['network']}, T = {f['timesteps']}, input density {f['input_density']}")
    for key in ("lava", "lava_monitored"):
        print(f"{key}: build + compile {f[key]['build_s']:.2f} s, first sample (starts the processes) "
              f"{f[key]['first_sample_s']:.2f} s: neither in the rates")
    print(f"{'':28s} {'samples':>8s} {'steps/s':>12s} {'samples/s':>12s}")
    for key in RUNS:
        r = f[key]
        print(f"{key:28s} {r['samples']:8d} {r['steps_per_second']:12.4g} {r['samples_per_second']:12.4g}")
    print("spikes per sample per layer:", {k: [round(x) for x in v] for k, v in f["spikes_per_sample"].items()})
    for key, value in f["ratios"].items():
        print(f"{key:28s} {value:.4g}")
    print("spikes of every layer and final v identical to Lava:", f["bit_exact_with_lava"])


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--timesteps", type=int, default=200)
    p.add_argument("--lava-samples", type=int, default=3,
                   help="samples each Lava pass runs, the first an untimed warm-up (>= 2); the engine runs them too")
    p.add_argument("--batch", type=int, default=256, help="samples per engine throughput run")
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--threads", type=int, default=os.cpu_count())
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--time-batch", type=int, default=20, help="tile length of the time-batched engine runs")
    p.add_argument("--json", action="store_true")
    args = p.parse_args(argv)
    if args.lava_samples < 2:
        p.error("--lava-samples must be at least 2: the first sample of each Lava pass is a warm-up")
    figures = dict(machine=machine(args.threads), **measure(args))
    if args.json:
        print(json.dumps(figures, indent=1))
    else:
        print_table(figures)
    return figures


if __name__ == "__main__":
    main()
