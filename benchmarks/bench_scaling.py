"""Engine scaling: images/s, synaptic events/s and peak memory against batch size, time steps and network size.

Three sweeps of the step engine (constant-current input, the engine's default threads), one point per value:

* batch size 1 .. 1,024 on the reference MNIST CNN at T = 16;
* time steps T = 8 .. 512 on the MNIST CNN at batch 64;
* network size at batch 32, T = 16: the MNIST CNN, the CIFAR-10 CNN (experiments/models/cifar10_cnn.onnx) and a
  synthetic network, the CIFAR-10 CNN with every conv 3x as wide (random He-normal weights, about 9x the
  synapses), converted on the same images.

Each point times one ``Engine.run`` over a few images (at least one batch) and counts its synaptic events (the
engine's synops), so the time per synaptic event shows whether the cost grows faster than the work. Peak memory
is tracemalloc's peak during the runs: the engine's own buffers (numpy reports its arrays to tracemalloc), not
the process's RSS. Each point takes the median of --repeats runs (3: about 3 minutes at load 6 on 2 cores);
read the figures as a shape, with the load average stored beside them. CIFAR-10 images are the shared JPEG copy's, not
the canonical pixels; the conversions calibrate on the first 100 test images (this measures speed, not accuracy).

    python benchmarks/bench_scaling.py [--json] [--out docs/figures/bench_scaling.json] [--repeats 3] [--quick]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
import tracemalloc
from pathlib import Path

import numpy as np

from neuro import ann, datasets, graph
from neuro.atomic import atomic_path
from neuro.convert import convert
from neuro.sim import Engine

MODELS = Path(__file__).resolve().parents[1] / "experiments" / "models"
FIGURES = Path(__file__).resolve().parents[1] / "docs" / "figures"
BATCHES = (1, 4, 16, 64, 256, 1024)
STEPS = (8, 16, 32, 64, 128, 256, 512)
WIDEN = 3


def widened(net: graph.Network, factor: int, seed: int = 0) -> graph.Network:
    """``net`` with every conv ``factor`` times as wide (its first input excepted) and He-normal random weights:
    a synthetic network about factor**2 times as large, for the network-size sweep."""
    rng = np.random.default_rng(seed)
    layers, channels = [], net.input_shape[0]
    for layer in net.layers:
        if isinstance(layer, graph.Conv2d):
            out, _, kh, kw = layer.weight.shape
            w = rng.normal(0, np.sqrt(2 / (channels * kh * kw)), (out * factor, channels, kh, kw))
            layer = graph.Conv2d(w.astype(np.float32), np.zeros(out * factor, np.float32), layer.stride,
                                 layer.padding)
            channels = out * factor
        elif isinstance(layer, graph.Dense):
            n_in = int(np.prod(graph.chain_shapes(net.input_shape, layers)[-1]))
            w = rng.normal(0, np.sqrt(2 / n_in), (layer.weight.shape[0], n_in))
            layer = graph.Dense(w.astype(np.float32), np.zeros(layer.weight.shape[0], np.float32))
        layers.append(layer)
    return graph.Network(net.input_shape, layers, name=f"{net.name} x{factor} wide")


def point(engine: Engine, images, labels, timesteps: int, batch: int, repeats: int) -> dict:
    """Timed runs (the median): images/s, synaptic events/s, time per event, tracemalloc peak (the largest)."""
    times, peak = [], 0
    for _ in range(repeats):
        tracemalloc.start()
        start = time.perf_counter()
        result = engine.run(images, labels, timesteps, batch_size=batch, progress=False)
        times.append(time.perf_counter() - start)
        peak = max(peak, tracemalloc.get_traced_memory()[1])
        tracemalloc.stop()
    seconds = statistics.median(times)
    events = result.per_image("synops") * len(images)
    return dict(batch=batch, timesteps=timesteps, images=len(images), seconds=seconds,
                images_per_second=len(images) / seconds, synaptic_events=events,
                synaptic_events_per_second=events / seconds, ns_per_synaptic_event=1e9 * seconds / events,
                peak_tracemalloc_mb=peak / 2**20, accuracy=result.accuracy)


def networks(quick: bool) -> dict:
    """(SNN, images, labels) by name: the MNIST CNN, the CIFAR-10 CNN and the widened CIFAR-10 CNN."""
    mnist_x, mnist_y = datasets.load("mnist", split="test")
    cifar_x, cifar_y = datasets.load("cifar10", split="test")
    cifar = ann.load_model(MODELS / "cifar10_cnn.onnx")
    nets = {"MNIST CNN": (ann.load_model(MODELS / "mnist_cnn.onnx"), mnist_x, mnist_y),
            "CIFAR-10 CNN": (cifar, cifar_x, cifar_y),
            f"CIFAR-10 CNN x{WIDEN} wide (synthetic)": (widened(cifar, WIDEN), cifar_x, cifar_y)}
    if quick:
        nets.pop(f"CIFAR-10 CNN x{WIDEN} wide (synthetic)")
    return {name: (convert(net, x[:100]), x, y, sum(getattr(op, "weight", np.zeros(0)).size for op in net.layers))
            for name, (net, x, y) in nets.items()}


def sweep(quick: bool = False, repeats: int = 3) -> dict:
    nets = networks(quick)
    snn, x, y, _ = nets["MNIST CNN"]
    engine = Engine(snn)
    engine.run(x[:4], y[:4], 2, progress=False)  # compile the kernels
    by_batch = [point(engine, x[:max(b, 64)], y[:max(b, 64)], 16, b, repeats)
                for b in (BATCHES[:4] if quick else BATCHES)]
    by_steps = [point(engine, x[:64], y[:64], t, 64, repeats) for t in (STEPS[:4] if quick else STEPS)]
    by_network = []
    for name, (snn, x, y, weights) in nets.items():
        engine = Engine(snn)
        engine.run(x[:2], y[:2], 2, progress=False)
        by_network.append(dict(network=name, weights=weights, **point(engine, x[:32], y[:32], 16, 32, repeats)))
    return dict(engine="step by step (time_batch=None), constant current, default threads", repeats=repeats,
                threads=len(engine.workers),
                memory="tracemalloc peak during the run (numpy arrays included), not RSS",
                cifar10_pixels="the shared JPEG copy's re-encodings, not the canonical CIFAR-10 pixels",
                by_batch=by_batch, by_steps=by_steps, by_network=by_network)


def figure(data: dict, path: Path) -> None:
    """Three columns (batch, T, network), three rows (images/s, ns per synaptic event, peak memory)."""
    from neuro.plots import plt

    fig, axes = plt.subplots(3, 3, figsize=(12, 9), dpi=110)
    columns = [("by_batch", "batch", "batch size (MNIST CNN, T = 16)"),
               ("by_steps", "timesteps", "time steps T (MNIST CNN, batch 64)"),
               ("by_network", "synaptic_events", "synaptic events per run (batch 32, T = 16, 32 images)")]
    rows = [("images_per_second", "images/s"), ("ns_per_synaptic_event", "ns per synaptic event"),
            ("peak_tracemalloc_mb", "peak memory (MB, tracemalloc)")]
    for j, (key, x_key, x_label) in enumerate(columns):
        xs = [p[x_key] for p in data[key]]
        for i, (y_key, y_label) in enumerate(rows):
            ax = axes[i, j]
            ax.plot(xs, [p[y_key] for p in data[key]], "o-")
            ax.set_xscale("log")
            if i == 0 or (i == 2 and key != "by_steps"):
                ax.set_yscale("log")
            else:  # linear from 0: flat is flat
                ax.set_ylim(0, 1.1 * max(p[y_key] for p in data[key]))
            ax.grid(True, which="both", alpha=0.3)
            if j == 0:
                ax.set_ylabel(y_label)
            if i == 2:
                ax.set_xlabel(x_label)
            if key == "by_network":
                for p in data[key]:
                    ax.annotate(p["network"].replace(" (synthetic)", "*"), (p[x_key], p[y_key]), fontsize=7)
    load = ", ".join(f"{v:.1f}" for v in data["load_average_before"])
    fig.suptitle(f"Engine scaling (measured, median of {data['repeats']} runs per point, 2 cores shared, load "
                 f"average {load}); "
                 "* synthetic", fontsize=10)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--json", action="store_true", help="print the figures as JSON")
    p.add_argument("--out", type=Path, default=FIGURES / "bench_scaling.json",
                   help="JSON file to write (the PNG beside it); default docs/figures/bench_scaling.json")
    p.add_argument("--quick", action="store_true", help="fewer points and no synthetic network (a smoke test)")
    p.add_argument("--repeats", type=int, default=3, help="timed runs per point, the median taken (default 3)")
    args = p.parse_args(argv)
    before = os.getloadavg()
    data = dict(load_average_before=before, **sweep(args.quick, args.repeats), load_average_after=os.getloadavg())
    with atomic_path(args.out) as tmp:
        tmp.write_text(json.dumps(data, indent=1))
    figure(data, args.out.with_suffix(".png"))
    if args.json:
        print(json.dumps(data, indent=1))
    else:
        for key in ("by_batch", "by_steps", "by_network"):
            for q in data[key]:
                print(f"{key:10s} {q.get('network', ''):34s} batch {q['batch']:5d} T {q['timesteps']:4d}: "
                      f"{q['images_per_second']:9.1f} images/s, {q['synaptic_events_per_second']:.3g} events/s, "
                      f"{q['ns_per_synaptic_event']:.3g} ns/event, {q['peak_tracemalloc_mb']:.1f} MB")
    return data


if __name__ == "__main__":
    main()
