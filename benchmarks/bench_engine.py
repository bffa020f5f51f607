"""Engine speed and memory on the reference MNIST CNN, measured side by side in one run.

Prints: images/s at T steps and batch B (constant-current input unless --encoding rate), synaptic events/s,
peak memory, ``step_over_forward_ratio`` (one engine step = run time / T, over one onnxruntime forward pass
of the ANN on the same batch), the same for the time-batched engine (``time_batched``: tiles of
--time-batch steps, runs interleaved with the step engine's so both see the same machine load, and
checked to give the same accuracy at every step), and the event-driven vs dense synaptic paths on one
conv layer across input activity levels. With --baseline-kernels FILE (another version of neuro/kernels.py, e.g.
``git show REV:neuro/kernels.py > old.py``) both engine modes also run with that file's kernels, interleaved
with the others, and must give the same accuracy at every step and the same spike counts. --profile prints
instead where one engine thread spends its time (cProfile, the kernels under their own names), with either
version of the kernels.

    python benchmarks/bench_engine.py [--json] [--timesteps 100] [--batch 256] [--time-batch 8]
                                      [--encoding current|rate] [--baseline-kernels FILE] [--profile]
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import functools
import importlib.util
import json
import os
import pstats
import resource
import statistics
import sys
import time
from pathlib import Path

import numpy as np
from threadpoolctl import threadpool_limits

from neuro import ann, datasets, graph, kernels
from neuro.convert import convert
from neuro.encode import to_channel_last
from neuro.jit import LazyKernel
from neuro.sim import Engine, LayerCounts, SynapseStage

MODEL = Path(__file__).resolve().parents[1] / "experiments" / "models" / "mnist_cnn.onnx"


def median_time(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def onnx_forward(batch: np.ndarray):
    """One onnxruntime forward pass of the ANN on ``batch``, as a function (warmed up)."""
    import onnxruntime as ort

    sess = ort.InferenceSession(str(MODEL), providers=["CPUExecutionProvider"])
    name = sess.get_inputs()[0].name
    sess.run(None, {name: batch})  # warm-up
    return lambda: sess.run(None, {name: batch})


def path_crossover(batch: int, repeats: int) -> list[dict]:
    """Time both synaptic paths of a 16 -> 32 channel 5x5 conv on 12x12 inputs at several activity levels, on
    one thread and one BLAS thread (as each of the engine's threads runs them)."""
    rng = np.random.default_rng(0)
    conv = graph.Conv2d(rng.normal(size=(32, 16, 5, 5)).astype(np.float32), np.zeros(32, np.float32))
    stage = SynapseStage(conv, (16, 12, 12), conv.output_shape((16, 12, 12)), None, 0.0)
    stage.reset(batch)
    rows = []
    with threadpool_limits(1, user_api="blas"):
        for activity in (0.005, 0.01, 0.02, 0.05, 0.1, 0.2):
            x = to_channel_last((rng.random((batch, 16, 12, 12)) < activity).astype(np.float32))
            timing = {}
            for path, threshold in (("event", 2.0), ("dense", 0.0)):
                stage.event_threshold = threshold
                stage.step(x, LayerCounts("warm-up"))
                timing[path] = median_time(lambda: stage.step(x, LayerCounts("t")), repeats)
            rows.append(dict(activity=activity, event_ms=1e3 * timing["event"], dense_ms=1e3 * timing["dense"],
                             event_over_dense=timing["event"] / timing["dense"]))
    return rows


def load_kernels(path: str) -> dict:
    """The kernels of another version of neuro/kernels.py that the current module also has, by name."""
    spec = importlib.util.spec_from_file_location("baseline_kernels", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module   # numba's kernel cache finds a kernel's module by name
    spec.loader.exec_module(module)
    return {name: getattr(module, name) for name, value in vars(kernels).items()
            if hasattr(value, "py_func") and hasattr(getattr(module, name, None), "py_func")}


@contextlib.contextmanager
def swapped_kernels(replacements: dict):
    """neuro.kernels with ``replacements`` in place of its own kernels (the engine looks them up on each call)."""
    before = {name: getattr(kernels, name) for name in replacements}
    vars(kernels).update(replacements)
    try:
        yield
    finally:
        vars(kernels).update(before)


def profile(snn, images, labels, args, replacements: dict) -> list[dict]:
    """The step engine on one thread under cProfile (its own time per function, largest first); each kernel is
    wrapped in a Python function of its own name so that cProfile sees it."""
    chosen = replacements or {name: k.load() if isinstance(k, LazyKernel) else k
                              for name, k in vars(kernels).items() if hasattr(k, "py_func")}
    wrapped = {name: functools.wraps(k.py_func)(lambda *a, _k=k: _k(*a)) for name, k in chosen.items()}
    engine, profiler = Engine(snn, threads=1), cProfile.Profile()
    with swapped_kernels(wrapped):
        engine.run(images, labels, 2, encoding=args.encoding, progress=False)  # compile
        run_slice = engine._run_slice   # the engine's one worker thread runs this: profile it there
        engine._run_slice = lambda *a: profiler.runcall(run_slice, *a)
        engine.run(images, labels, args.timesteps, encoding=args.encoding, progress=False)
    stats = pstats.Stats(profiler).stats
    total = sum(tottime for _, _, tottime, _, _ in stats.values())
    rows = sorted(((tottime, f"{Path(file).name}:{name}" if file != "~" else name)
                   for (file, _, name), (_, _, tottime, _, _) in stats.items()), reverse=True)
    return [dict(function=name, seconds=t, share=t / total) for t, name in rows[:10]]


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--timesteps", type=int, default=100)
    p.add_argument("--batch", type=int, default=256)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--time-batch", type=int, default=8, help="tile length of the time-batched runs")
    p.add_argument("--encoding", choices=("current", "rate"), default="current")
    p.add_argument("--baseline-kernels", metavar="FILE",
                   help="also time both modes with the kernels of this other version of neuro/kernels.py")
    p.add_argument("--profile", action="store_true", help="print where one engine thread spends its time instead")
    p.add_argument("--json", action="store_true")
    args = p.parse_args(argv)
    baseline = load_kernels(args.baseline_kernels) if args.baseline_kernels else None

    net = ann.load_model(MODEL)
    train_x, _ = datasets.load("mnist", split="train")
    test_x, test_y = datasets.load("mnist", split="test")
    snn = convert(net, train_x[:1000])
    batch_x, batch_y = test_x[:args.batch], test_y[:args.batch]
    if args.profile:
        rows = profile(snn, batch_x, batch_y, args, baseline or {})
        for r in rows:
            print(f"{100 * r['share']:5.1f} %  {r['seconds']:7.3f} s  {r['function']}")
        return {"profile": rows, "load_average": os.getloadavg()}

    engine = Engine(snn)
    forward = onnx_forward(np.ascontiguousarray(batch_x))
    modes = {"step": (None, {}), "time_batched": (args.time_batch, {})}
    if baseline is not None:
        modes.update(step_baseline=(None, baseline), time_batched_baseline=(args.time_batch, baseline))
    runs, results, forwards = {mode: [] for mode in modes}, {}, []
    for tile, swap in modes.values():
        with swapped_kernels(swap):  # compile kernels
            engine.run(batch_x, batch_y, 2, encoding=args.encoding, time_batch=tile, progress=False)
    for _ in range(args.repeats):  # interleaved, so that the engine modes and the forward pass see the same load
        for mode, (tile, swap) in modes.items():
            with swapped_kernels(swap):
                start = time.perf_counter()
                results[mode] = engine.run(batch_x, batch_y, args.timesteps, encoding=args.encoding,
                                           time_batch=tile, progress=False)
                runs[mode].append(time.perf_counter() - start)
        forwards.append(median_time(forward, 4))
    for mode in modes:
        if not np.array_equal(results["step"].correct_by_step, results[mode].correct_by_step):
            raise SystemExit(f"the {mode} engine's accuracy differs from the step engine's at some step")
        if [c.spikes for c in results[mode].layers] != [c.spikes for c in results["step"].layers]:
            raise SystemExit(f"the {mode} engine's spike counts differ from the step engine's")
    forward_s = statistics.median(forwards)

    def speed(mode):
        run_s = statistics.median(runs[mode])
        step_s = run_s / args.timesteps
        return {"images_per_second": args.batch / run_s,
                "synaptic_events_per_second": results[mode].per_image("synops") * args.batch / run_s,
                "engine_step_ms": 1e3 * step_s, "step_over_forward_ratio": step_s / forward_s}

    result = results["step"]
    figures = {
        "model": MODEL.name,
        "batch": args.batch,
        "timesteps": args.timesteps,
        "encoding": args.encoding,
        **speed("step"),
        "peak_memory_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "onnxruntime_forward_ms": 1e3 * forward_s,
        "snn_accuracy_on_batch": result.accuracy,
        "time_batched": {"time_batch": args.time_batch, **speed("time_batched"),
                         "speed_over_step_engine": statistics.median(runs["step"]) /
                         statistics.median(runs["time_batched"])},
        "path_crossover": path_crossover(args.batch, args.repeats * 2),
        "load_average": os.getloadavg(),
    }
    if baseline is not None:
        figures["baseline_kernels"] = {
            "file": args.baseline_kernels, "kernels": sorted(baseline), "same_accuracy_and_spike_counts": True,
            **{f"{mode}_{key}": value for mode in ("step", "time_batched")
               for key, value in speed(f"{mode}_baseline").items()},
            **{f"{mode}_speedup": statistics.median(runs[f"{mode}_baseline"]) / statistics.median(runs[mode])
               for mode in ("step", "time_batched")}}
    if args.json:
        print(json.dumps(figures, indent=1))
    else:
        for key, value in [*figures.items(), *(("time_batched " + k, v) for k, v in figures["time_batched"].items())]:
            if key not in ("path_crossover", "time_batched", "baseline_kernels", "load_average"):
                print(f"{key:30s} {value:.4g}" if isinstance(value, float) else f"{key:30s} {value}")
        print(f"load average {figures['load_average']}")
        for key, value in figures.get("baseline_kernels", {}).items():
            print(f"baseline kernels {key:30s} {value:.4g}" if isinstance(value, float) else
                  f"baseline kernels {key:30s} {value}")
        print("synaptic paths, 16->32 ch 5x5 conv on 12x12, by input activity:")
        print("  activity  event ms  dense ms  event/dense")
        for r in figures["path_crossover"]:
            print(f"  {r['activity']:8.3f}  {r['event_ms']:8.3f}  {r['dense_ms']:8.3f}  {r['event_over_dense']:11.2f}")
    return figures


if __name__ == "__main__":
    main()
