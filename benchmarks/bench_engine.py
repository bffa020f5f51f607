"""Engine speed and memory on the reference MNIST CNN, measured side by side in one run.

Prints: images/s at T steps and batch B (constant-current input unless --encoding rate), synaptic events/s,
peak memory, ``step_over_forward_ratio`` (one engine step = run time / T, over one onnxruntime forward pass
of the ANN on the same batch), the same for the time-batched engine (``time_batched``: tiles of
--time-batch steps, runs interleaved with the step engine's so both see the same machine load, and
checked to give the same accuracy at every step), and the event-driven vs dense synaptic paths on one
conv layer across input activity levels.

    python benchmarks/bench_engine.py [--json] [--timesteps 100] [--batch 256] [--time-batch 8]
                                      [--encoding current|rate]
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import time
from pathlib import Path

import numpy as np
from threadpoolctl import threadpool_limits

from neuro import ann, datasets, graph
from neuro.convert import convert
from neuro.encode import to_channel_last
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


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--timesteps", type=int, default=100)
    p.add_argument("--batch", type=int, default=256)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--time-batch", type=int, default=8, help="tile length of the time-batched runs")
    p.add_argument("--encoding", choices=("current", "rate"), default="current")
    p.add_argument("--json", action="store_true")
    args = p.parse_args(argv)

    net = ann.load_model(MODEL)
    train_x, _ = datasets.load("mnist", split="train")
    test_x, test_y = datasets.load("mnist", split="test")
    snn = convert(net, train_x[:1000])
    batch_x, batch_y = test_x[:args.batch], test_y[:args.batch]

    engine = Engine(snn)
    forward = onnx_forward(np.ascontiguousarray(batch_x))
    modes = {"step": None, "time_batched": args.time_batch}
    runs, results, forwards = {mode: [] for mode in modes}, {}, []
    for tile in modes.values():
        engine.run(batch_x, batch_y, 2, encoding=args.encoding, time_batch=tile, progress=False)  # compile kernels
    for _ in range(args.repeats):  # interleaved, so that the engine modes and the forward pass see the same load
        for mode, tile in modes.items():
            start = time.perf_counter()
            results[mode] = engine.run(batch_x, batch_y, args.timesteps, encoding=args.encoding, time_batch=tile,
                                       progress=False)
            runs[mode].append(time.perf_counter() - start)
        forwards.append(median_time(forward, 4))
    if not np.array_equal(results["step"].correct_by_step, results["time_batched"].correct_by_step):
        raise SystemExit("the time-batched engine's accuracy differs from the step engine's at some step")
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
    }
    if args.json:
        print(json.dumps(figures, indent=1))
    else:
        for key, value in [*figures.items(), *(("time_batched " + k, v) for k, v in figures["time_batched"].items())]:
            if key not in ("path_crossover", "time_batched"):
                print(f"{key:30s} {value:.4g}" if isinstance(value, float) else f"{key:30s} {value}")
        print("synaptic paths, 16->32 ch 5x5 conv on 12x12, by input activity:")
        print("  activity  event ms  dense ms  event/dense")
        for r in figures["path_crossover"]:
            print(f"  {r['activity']:8.3f}  {r['event_ms']:8.3f}  {r['dense_ms']:8.3f}  {r['event_over_dense']:11.2f}")
    return figures


if __name__ == "__main__":
    main()
