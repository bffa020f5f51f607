"""Where the TrueNorth program departs from the float SNN on CIFAR-10: per layer, the correlation of each neuron's
spike count (per image) with the float SNN's, and both mean rates (spikes per neuron per step).

Each layer's output population is compared (a split layer's merge neurons; its partial neurons are skipped), so
the first layer whose correlation falls is where the mapping loses. Measured on the JPEG copy of CIFAR-10.

    PYTHONPATH=. python benchmarks/truenorth_layer_bisect.py --n 20 --timesteps 64
"""

from __future__ import annotations

import argparse

import numpy as np

import chips
from cifar10_chip_losses import experiment_network   # its sibling in benchmarks/
from neuro.sim import Engine


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=20)
    ap.add_argument("--timesteps", type=int, default=64)
    args = ap.parse_args()
    _, _, snn, images, labels = experiment_network(args.n)
    program = chips.compile_for("truenorth", snn, "rate", {})
    run = dict(encoding="regular", record_counts=True, progress=False)
    flt = Engine(snn).run(images, labels, args.timesteps, **run)
    tn = Engine(program.snn, program.backend()).run(images, labels, args.timesteps, **run)
    split = [m.pieces > 1 for m in program.mapping.layers]
    outputs = np.cumsum([2 if s else 1 for s in split]) - 1          # each layer's last population
    print(f"accuracy at step {args.timesteps}: float SNN {100 * flt.accuracy:.2f} %, TrueNorth "
          f"{100 * tn.accuracy:.2f} % ({args.n} images); program depth {program.depth} ticks")
    print("\n".join(program.deviations))
    for i, (m, j) in enumerate(zip(program.mapping.layers, outputs)):
        a, b = flt.spike_counts[i].astype(float).ravel(), tn.spike_counts[j].astype(float).ravel()
        corr = np.corrcoef(a, b)[0, 1] if a.std() > 0 and b.std() > 0 else float("nan")
        print(f"{m.name:10s} pieces {m.pieces:3d}  rate float {a.mean() / args.timesteps:.4f}  TrueNorth "
              f"{b.mean() / args.timesteps:.4f}  count correlation {corr:.3f}")


if __name__ == "__main__":
    main()
