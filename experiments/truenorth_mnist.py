"""The MNIST test set on the emulated TrueNorth (rate-coded input, 128 ticks): the shipped CNN converted and
mapped onto cores (chips.truenorth.program), accuracy after every tick, cores, and the modeled cost.
Writes JSON (docs/figures/truenorth_mnist_10k.json) and the accuracy plot next to it.

    python experiments/truenorth_mnist.py [SNN.h5] [--n N] [--ticks T] [--scheme multilevel --levels 4]

SNN.h5 defaults to out/mnist_snn.h5 from the README's conversion (`neuro convert ... -o out/mnist_snn.h5`).
"""
import argparse
import datetime
import json
import time

from chips.truenorth.program import compile_snn
from neuro import datasets, plots, snn as S
from neuro.atomic import atomic_path
from neuro.sim import Engine

p = argparse.ArgumentParser()
p.add_argument("snn", nargs="?", default="out/mnist_snn.h5")
p.add_argument("--n", type=int, default=10000)
p.add_argument("--ticks", type=int, default=128)
p.add_argument("--scheme", default="multilevel")
p.add_argument("--levels", type=int, default=4)
p.add_argument("-o", default="docs/figures/truenorth_mnist_10k.json")
args = p.parse_args()

net = S.load(args.snn)
x, y = datasets.load("mnist", split="test")
x, y = x[:args.n], y[:args.n]
program = compile_snn(net, args.scheme, args.levels)
t0 = time.time()
r = Engine(program.snn, program.backend()).run(x, y, args.ticks, encoding="rate", progress=False)
m = program.mapping
out = {"date": datetime.date.today().isoformat(), "n_images": args.n, "ticks": args.ticks, "scheme": args.scheme,
       "levels": args.levels, "ann_accuracy": net.ann.accuracy(x, y), "seconds": round(time.time() - t0, 1),
       "cores": m.cores, "chips": m.chips, "mean_hops": m.mean_hops, "depth_ticks": program.depth,
       "leak_clipped": program.leak_clipped,
       "layers": [dict(name=lm.name, fan_in=lm.fan_in, pieces=lm.pieces, cores=lm.cores,
                       quantisation_error=lm.quantisation_error) for lm in m.layers],
       "sops_per_image": r.per_image("synops"), "spikes_per_image": r.per_image("spikes"),
       "accuracy_by_step": {str(t + 1): float(a) for t, a in enumerate(r.accuracy_by_step)}}
for ticks in sorted({t for t in (32, 64, args.ticks // 2) if t <= args.ticks} | {args.ticks}):
    for voltage in (0.8, 0.7):
        for whole in (True, False):
            c = program.cost(r.until(ticks), ticks, tick_hz=1000.0, voltage=voltage, whole_chips=whole)
            out[f"cost_T{ticks}_{voltage}V_{'whole' if whole else 'share'}"] = dict(
                accuracy=float(r.accuracy_by_step[ticks - 1]), energy_per_inference_j=c.energy_per_inference_j,
                frames_per_second=c.frames_per_second, latency_s=c.latency_s, power_w=c.power_w,
                cores=c.cores, chips=c.chips)
with atomic_path(args.o) as tmp, open(tmp, "w") as f:
    json.dump(out, f, indent=1)
plots.accuracy_vs_steps({f"TrueNorth ({args.scheme} {args.levels}, rate-coded)": r.accuracy_by_step},
                        args.o.replace(".json", ".png"), out["ann_accuracy"],
                        f"MNIST {args.n} test images on {m.cores} emulated TrueNorth cores")
print(json.dumps({k: v for k, v in out.items() if k != "accuracy_by_step"}, indent=1))
