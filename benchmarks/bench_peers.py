"""Our engine next to the best existing ANN->SNN converters: same model, same images, same T.

Converts a model (default: the reference MNIST CNN; ``--data cifar10 --model
experiments/models/cifar10_cnn.onnx`` for the CIFAR-10 one) with each system and simulates ``--n`` test
images (the first N for MNIST; for CIFAR-10, whose test split is stored class by class, every
(10,000 / N)-th image, as the experiments' ``select = "spread"``) for
``--timesteps`` steps in batches of ``--batch``, then prints accuracy and images/s of each, as
medians of interleaved repeats (ours, spikingjelly, sinabs, ours, ...) in one process. The peers come
from the optional ``bench`` extra (``pip install -e '.[bench]'``, best in a venv of its own; it pulls a
large torch build, so it is kept out of CI). Written against spikingjelly 2.0 (``FXConverter`` and
recipes; 0.0.0.0.x had ``Converter(mode=...)``) and sinabs 3.1.

What every system gets (the same for all three):
* the same weights: the model file is imported once into our IR (``neuro.ann.load_model``) and the
  peers get an ``nn.Sequential`` built from that IR, weights copied;
* constant-current (analog) input: the image itself is the input current at every step;
* calibration on the same first 1000 training images (``neuro.datasets.load``, the dataset of ``--data``),
  99.9th percentile normalisation;
* ``torch.set_num_threads(--threads)`` (default 2); numba and BLAS on their default threads.

The systems:
* ``ours``: ``Engine(convert(net, calibration, percentile=99.9)).run(images, labels, T)``. IF neurons,
  reset by subtraction, V starting at half the threshold; readout = the membrane potential of the
  non-spiking output layer after T steps (argmax), ``convert``'s default.
* ``spikingjelly``: ``ann2snn.FXConverter(RateCodingRecipe(dataloader, mode="99.9%"))``, its robust
  normalisation: a layer-wise ``VoltageHook`` records the 99.9 % quantile of each ReLU's output
  (zeros included, momentum 0.1 over calibration batches of ``--calib-batch`` = 100 images, as its
  MNIST example) and each ReLU becomes scaler -> ``IFNode(v_reset=None)`` (threshold 1, reset by
  subtraction) -> scaler. Run as its example does: single-step mode, ``functional.reset_net`` per
  batch, the network called once per step under ``torch.no_grad``; readout = the sum over the T
  steps of the (non-spiking) output layer's output, i.e. the potential of an integrating output.
* ``sinabs``: ``sinabs.from_model(seq, input_shape, spike_threshold=1, reset_fn=MembraneSubtract(),
  min_v_mem=-1, add_spiking_output=True)`` on weights normalised by us the textbook way (Rueckauer
  et al. 2017, as ``neuro.convert``): lambda_l = 99.9th percentile of layer l's non-zero ReLU
  activations, W_l <- W_l lambda_{l-1} / lambda_l, b_l <- b_l / lambda_l, the output layer scaled
  by the percentile of its positive outputs (Sinabs' own ``normalize_weights`` mis-scales biases).
  Neurons ``IAFSqueeze`` with its default ``MultiSpike`` (``--sinabs-spike single`` for at most one
  spike per step). Readout = output-layer spike counts over T (its MNIST tutorial's readout);
  ``accuracy_ties_broken_by_v`` also breaks count ties with the output layer's ``v_mem``. By default
  one step per call (``--sinabs-feed step``: states persist between calls, buffers stay small);
  ``--sinabs-feed sequence`` feeds all T steps at once as (batch*T, C, H, W), as its tutorial does.

Timing: each timed run simulates all n images (every batch, including state resets); conversion is
not timed. After one warm-up run per system on one batch (full T), the systems run interleaved
``--repeats`` times; images/s = n / median run time. The peers' networks recompute the first layer every step;
ours computes the constant input current once per batch (the engine's handling of static input).
Run it on an otherwise idle machine: with more busy threads than free cores, torch's OpenMP barriers
(and numba's) wait on descheduled threads and the figures swing several-fold.

    python benchmarks/bench_peers.py [--json] [--n 1024] [--timesteps 100] [--batch 256] [--repeats 3]
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import io
import json
import logging
import statistics
import sys
import time
from importlib import metadata
from pathlib import Path

import numpy as np

from neuro import ann, datasets, graph
from neuro.baselines import to_torch
from neuro.convert import convert, layer_scales
from neuro.errors import NeuroError
from neuro.experiment import select_images
from neuro.sim import Engine

MODEL = Path(__file__).resolve().parents[1] / "experiments" / "models" / "mnist_cnn.onnx"
SYSTEMS = ("ours", "spikingjelly", "sinabs")
N_CALIBRATION = 1000


def _import_torch():
    try:
        import torch
    except ImportError as e:
        raise NeuroError("bench_peers needs the bench extra: pip install -e '.[bench]'") from e
    logging.getLogger("torch._library.triton").setLevel(logging.ERROR)  # "Triton not available" on CPU builds
    return torch


# --- the same network for everyone ---------------------------------------------------------------------

def normalised(net: graph.Network, calibration: np.ndarray, percentile: float) -> graph.Network:
    """Textbook layer-wise normalisation (Rueckauer et al. 2017), the scales of ``neuro.convert``.

    lambda_l = percentile of the non-zero activations of ReLU l on ``calibration`` (lambda_0 = 1 for
    images in [0, 1]); the Conv2d/Dense feeding it gets W * lambda_{l-1} / lambda_l and b / lambda_l.
    The last Conv2d/Dense is scaled by the percentile of its positive outputs, so a spiking output
    layer fires at rate ~ output / lambda_out.
    """
    scales = layer_scales(net, calibration, percentile)
    layers = net.layers[:-1] if isinstance(net.layers[-1], graph.Softmax) else net.layers
    last = max(i for i, layer in enumerate(layers) if isinstance(layer, (graph.Conv2d, graph.Dense)))
    out, prev = [], 1.0
    for i, layer in enumerate(layers):
        if isinstance(layer, (graph.Conv2d, graph.Dense)):
            if i == last:
                scale = scales["output"]
            elif i + 1 < len(layers) and isinstance(layers[i + 1], graph.ReLU):
                scale = scales[i + 1]
            else:
                raise NeuroError(f"layer {i} ({type(layer).__name__}) is not followed by a ReLU")
            w, b = layer.weight * (prev / scale), layer.bias / scale
            layer = graph.Dense(w, b) if isinstance(layer, graph.Dense) else \
                graph.Conv2d(w, b, layer.stride, layer.padding, layer.groups)
            prev = scale
        out.append(layer)
    return graph.Network(net.input_shape, out, net.name + " (normalised)")


# --- the three systems ---------------------------------------------------------------------------------

class Ours:
    name = "ours"

    def __init__(self, net, calibration, args):
        self.engine = Engine(convert(net, calibration, percentile=args.percentile))
        self.batch = args.batch
        self.readout = "membrane potential of the non-spiking output layer after T steps (argmax)"

    def run(self, images, labels, timesteps) -> dict:
        result = self.engine.run(images, labels, timesteps, batch_size=self.batch, progress=False)
        return {"accuracy": result.accuracy}


class SpikingJelly:
    name = "spikingjelly"

    def __init__(self, net, calibration, args):
        import torch
        from spikingjelly.activation_based import ann2snn, functional

        self.torch, self.functional, self.batch = torch, functional, args.batch
        loader = [torch.from_numpy(np.ascontiguousarray(calibration[i:i + args.calib_batch]))
                  for i in range(0, len(calibration), args.calib_batch)]
        recipe = ann2snn.RateCodingRecipe(dataloader=loader, mode=f"{args.percentile:g}%")
        with contextlib.redirect_stderr(io.StringIO()):  # its calibration tqdm bar
            self.snn = ann2snn.FXConverter(recipe=recipe, device="cpu").convert(to_torch(net))
        self.snn.eval()
        self.n_out = int(np.prod(net.output_shape))
        self.readout = "sum over T of the non-spiking output layer's output (argmax), as its MNIST example"

    def run(self, images, labels, timesteps) -> dict:
        torch = self.torch
        out = torch.empty(min(self.batch, len(images)), self.n_out)
        correct = 0
        with torch.no_grad():
            for start in range(0, len(images), self.batch):
                img = torch.from_numpy(np.ascontiguousarray(images[start:start + self.batch]))
                acc = out[:len(img)].zero_()
                self.functional.reset_net(self.snn)
                for _ in range(timesteps):
                    acc += self.snn(img)
                correct += int((acc.argmax(1).numpy() == labels[start:start + self.batch]).sum())
        return {"accuracy": correct / len(images)}


class Sinabs:
    name = "sinabs"

    def __init__(self, net, calibration, args):
        import torch
        import sinabs
        import sinabs.layers as sl
        from sinabs.activation import MembraneSubtract, MultiSpike, SingleSpike

        self.torch, self.batch, self.feed = torch, args.batch, args.sinabs_feed
        seq = to_torch(normalised(net, calibration, args.percentile))
        self.snn = sinabs.from_model(
            seq, input_shape=net.input_shape, spike_threshold=torch.tensor(1.0),
            spike_fn=MultiSpike if args.sinabs_spike == "multi" else SingleSpike,
            reset_fn=MembraneSubtract(), min_v_mem=-1.0, add_spiking_output=True,
            num_timesteps=1 if self.feed == "step" else args.timesteps, spike_layer_class=sl.IAFSqueeze)
        self.snn.eval()
        self.output_layer = self.snn.spiking_model.spike_output
        self.n_out = int(np.prod(net.output_shape))
        self.readout = "output-layer spike count over T (argmax), as its MNIST tutorial"

    def run(self, images, labels, timesteps) -> dict:
        torch = self.torch
        counts = torch.empty(min(self.batch, len(images)), self.n_out)
        correct = tie_broken = 0
        with torch.no_grad():
            for start in range(0, len(images), self.batch):
                img = torch.from_numpy(np.ascontiguousarray(images[start:start + self.batch]))
                y = labels[start:start + self.batch]
                c = counts[:len(img)].zero_()
                self.snn.reset_states()
                if self.feed == "step":
                    for _ in range(timesteps):
                        c += self.snn(img)
                else:
                    seq = img.unsqueeze(1).expand(len(img), timesteps, *img.shape[1:]).reshape(-1, *img.shape[1:])
                    c += self.snn(seq).unflatten(0, (len(img), timesteps)).sum(1)
                correct += int((c.argmax(1).numpy() == y).sum())
                # counts differ by >= 1 where they differ; 0.25 * clip(V, -1, 1) only breaks ties
                v = self.output_layer.v_mem.reshape(len(img), -1).clamp(-1, 1)
                tie_broken += int(((c + 0.25 * v).argmax(1).numpy() == y).sum())
        return {"accuracy": correct / len(images), "accuracy_ties_broken_by_v": tie_broken / len(images)}


# --- the benchmark --------------------------------------------------------------------------------------

def _versions(names) -> dict:
    out = {}
    for pkg in ("neuro", "numpy", "numba", "torch", *(("spikingjelly",) if "spikingjelly" in names else ()),
                *(("sinabs",) if "sinabs" in names else ())):
        try:
            out[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            out[pkg] = None
    return out


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--model", type=Path, default=MODEL, help="model file (default: the reference MNIST CNN)")
    p.add_argument("--data", default="mnist", help="dataset name for neuro.datasets.load (default mnist)")
    p.add_argument("--n", type=int, default=1024, help="N test images (CIFAR-10: spread over the split)")
    p.add_argument("--timesteps", type=int, default=100)
    p.add_argument("--batch", type=int, default=256)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--threads", type=int, default=2, help="torch.set_num_threads")
    p.add_argument("--percentile", type=float, default=99.9)
    p.add_argument("--calib-batch", type=int, default=100, help="SpikingJelly calibration batch size")
    p.add_argument("--sinabs-spike", choices=("multi", "single"), default="multi",
                   help="Sinabs spike function: MultiSpike (its default) or SingleSpike")
    p.add_argument("--sinabs-feed", choices=("step", "sequence"), default="step",
                   help="Sinabs input: one step per call, or all T steps in one (batch*T) call")
    p.add_argument("--systems", default=",".join(SYSTEMS), help=f"comma-separated subset of {SYSTEMS}")
    p.add_argument("--json", action="store_true")
    args = p.parse_args(argv)
    names = list(dict.fromkeys(s.strip() for s in args.systems.split(",") if s.strip()))
    if unknown := set(names) - set(SYSTEMS):
        p.error(f"unknown systems {sorted(unknown)}: use some of {SYSTEMS}")
    if args.n < 1 or args.timesteps < 1 or args.batch < 1 or args.repeats < 1:
        p.error("--n, --timesteps, --batch and --repeats must be at least 1")

    torch = _import_torch()
    torch.set_num_threads(args.threads)
    if not args.model.is_file():
        raise NeuroError(f"model file not found: {args.model} (train it with experiments/train_mnist.py, "
                         "or pass --model)")
    net = ann.load_model(args.model)
    if any(isinstance(layer, graph.QCFS) for layer in net.layers):  # the peers' converters would treat it as linear
        raise NeuroError(f"{args.model} has QCFS activations: the peers here convert ReLU networks only (their "
                         "converters replace nn.ReLU); give a ReLU model")
    train_x, _ = datasets.load(args.data, split="train")
    test_x, test_y = datasets.load(args.data, split="test")
    # writable copies (the loader's arrays are read-only views, which torch.from_numpy warns about)
    calibration = np.array(train_x[:N_CALIBRATION])
    images, labels = select_images(test_x, test_y, args.n, "first" if args.data == "mnist" else "spread")
    images, labels = np.array(images), np.array(labels)

    classes = {"ours": Ours, "spikingjelly": SpikingJelly, "sinabs": Sinabs}
    systems, convert_s = [], {}
    for name in names:
        start = time.perf_counter()
        try:
            systems.append(classes[name](net, calibration, args))
        except ImportError as e:
            raise NeuroError(f"{name} is not installed ({e}): pip install -e '.[bench]'") from e
        convert_s[name] = time.perf_counter() - start

    warm_n = min(args.batch, args.n)
    for s in systems:  # numba compilation, torch's first-call setup, allocator warm-up: one batch, full T
        s.run(images[:warm_n], labels[:warm_n], args.timesteps)
    times = {s.name: [] for s in systems}
    results = {}
    for _ in range(args.repeats):
        for s in systems:
            gc.collect()
            start = time.perf_counter()
            r = s.run(images, labels, args.timesteps)
            times[s.name].append(time.perf_counter() - start)
            if s.name in results and r != results[s.name]:
                print(f"warning: {s.name} gave {r} after {results[s.name]} on the same input", file=sys.stderr)
            results[s.name] = r

    figures = {
        "model": args.model.name, "data": args.data, "n": args.n, "timesteps": args.timesteps, "batch": args.batch,
        "repeats": args.repeats, "torch_threads": args.threads, "calibration_images": len(calibration),
        "percentile": args.percentile, "input": "constant current (analog image every step)",
        "ann_accuracy": net.accuracy(images, labels),
    }
    for s in systems:
        med = statistics.median(times[s.name])
        figures[s.name] = {**results[s.name], "images_per_second": args.n / med, "seconds": times[s.name],
                           "convert_seconds": convert_s[s.name], "readout": s.readout}
    if "sinabs" in names:
        figures["sinabs"].update(spike_fn=args.sinabs_spike, feed=args.sinabs_feed)
    peers = [n for n in names if n != "ours"]
    if "ours" in names and peers:
        fastest = max(peers, key=lambda n: figures[n]["images_per_second"])
        ours = figures["ours"]
        figures["fastest_peer"] = fastest
        figures["speedup_over_best_peer"] = ours["images_per_second"] / figures[fastest]["images_per_second"]
        figures["accuracy_minus_fastest_peer"] = ours["accuracy"] - figures[fastest]["accuracy"]
        figures["goal_3x_at_equal_or_better_accuracy"] = bool(
            figures["speedup_over_best_peer"] >= 3 and figures["accuracy_minus_fastest_peer"] >= 0)
    figures["versions"] = _versions(names)

    if args.json:
        print(json.dumps(figures, indent=1))
    else:
        print_table(figures, [sy.name for sy in systems])
    return figures


def print_table(figures: dict, names: list[str]) -> None:
    print(f"{figures['model']}: {figures['n']} {figures.get('data', 'mnist')} test images, T={figures['timesteps']}, "
          f"batch {figures['batch']}, {figures['torch_threads']} torch threads, median of "
          f"{figures['repeats']} interleaved repeats; ANN accuracy {100 * figures['ann_accuracy']:.2f} %")
    print(f"  {'system':14s} {'version':10s} {'accuracy %':>10s} {'images/s':>10s} {'ours is':>8s}")
    for name in names:
        f = figures[name]
        version = figures["versions"].get("neuro" if name == "ours" else name)
        ratio = figures["ours"]["images_per_second"] / f["images_per_second"] if "ours" in figures else float("nan")
        print(f"  {name:14s} {str(version):10s} {100 * f['accuracy']:10.2f} {f['images_per_second']:10.1f} "
              f"{ratio:7.2f}x")
    if "sinabs" in figures:
        print(f"  (sinabs with count ties broken by V: {100 * figures['sinabs']['accuracy_ties_broken_by_v']:.2f} %)")
    if "speedup_over_best_peer" in figures:
        print(f"speedup over the fastest peer ({figures['fastest_peer']}): {figures['speedup_over_best_peer']:.2f}x, "
              f"accuracy difference {100 * figures['accuracy_minus_fastest_peer']:+.2f} points")


if __name__ == "__main__":
    try:
        main()
    except NeuroError as e:
        sys.exit(f"error: {e}")
