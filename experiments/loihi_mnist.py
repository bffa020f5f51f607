"""The MNIST test set on the emulated Loihi (rate-coded input, 128 steps): accuracy after every step and the
modeled cost under both coefficient sets. Prints JSON (docs/figures/loihi_mnist_10k.json).

    python experiments/loihi_mnist.py [SNN.h5]    # default out/mnist_snn.h5, from the README's main job
"""
import json
import sys
import time

import chips
from neuro import datasets, snn as S
from neuro.sim import Engine
net = S.load(sys.argv[1] if len(sys.argv) > 1 else "out/mnist_snn.h5")
x, y = datasets.load("mnist", split="test")
program = chips.compile_for("loihi", net, "rate")
t0 = time.time()
r = Engine(program.snn, program.backend()).run(x, y, 128, encoding="rate", progress=False)
out = {"ann_accuracy": net.ann.accuracy(x, y), "seconds": time.time() - t0,
       "accuracy_by_step": {str(t + 1): float(a) for t, a in enumerate(r.accuracy_by_step)}}
for name in ("dav18", "sana-fe"):
    for steps in (32, 64, 128):
        c = program.cost(r, steps, name)
        out[f"{name}_T{steps}"] = dict(energy_per_inference_j=c.energy_per_inference_j, frames_per_second=c.frames_per_second,
                                       latency_s=c.latency_s, cores=c.cores, chips=c.chips)
print(json.dumps(out, indent=1))
