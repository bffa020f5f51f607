"""Why the emulated Loihi 2 loses MNIST accuracy late on spike input: per layer, how far sigma drifts from the exact
(untruncated) integral of the same messages, and the accuracy after steps 8/16/32/48/64 and each population's
messages per image at those steps (docs/chips/loihi2.md, "Late accuracy loss on spike input").

Lava's fixed-point Dense (PyDenseModelBitAcc) floors each step's W s >> -weight_exp; the compiled MNIST layers
all have weight_exp = -8, so every step a neuron's input is not a multiple of 2^8 its sigma loses [0, 1) unit.
``--rounding round`` is a counterfactual, not Lava: it adds 2^(-weight_exp - 1) to each step's W s first (round
half up), to show the loss is that floor's.

    NEURO_DATA=... python experiments/loihi2_drift.py SNN.h5 [--n 100] [--timesteps 64] [--encoding rate]
                                                             [--rounding floor]
"""
import argparse
import json

import numpy as np

from chips.loihi2.chip import compile_snn
from chips.loihi2.neuron import Loihi2Backend, SigmaDeltaNeurons
from neuro import datasets, snn as S
from neuro.sim import Engine


class _Probe(SigmaDeltaNeurons):
    """A sigma-delta layer that also integrates its input exactly (float64, no floor) and logs sigma's drift."""

    def __init__(self, *args, log, steps, rounding):
        super().__init__(*args)
        self.rounding = rounding
        if self.layer.kind == "sigma_delta":
            self.log = log.setdefault(self.layer.name, np.zeros((steps, 2)))

    def reset(self, batch, n):
        super().reset(batch, n)
        self.exact, self.pending, self.t = np.zeros((batch, n)), np.zeros((batch, n)), 0

    def step(self, current, spikes):
        layer = self.layer
        if layer.kind != "sigma_delta":
            return super().step(current, spikes)
        self.exact += self.pending                 # one step of synaptic delay, as the chip's a[t]
        self.pending = current.astype(np.float64) * 2.0 ** layer.weight_exp
        if self.rounding == "round" and layer.weight_exp < 0:
            current = current + np.float32(2 ** (-layer.weight_exp - 1))
        sent = super().step(current, spikes)
        self.log[self.t] += [(self.sigma - self.exact).sum(), self.sigma.size]
        self.t += 1
        return sent


def drift(program, images, labels, timesteps: int, encoding: str, rounding: str = "floor"):
    """Run ``program`` (a compiled Loihi 2 program) on ``images``; returns the SimResult and, per sigma-delta layer,
    (timesteps, 2): sigma's summed drift from the exact integral and the neuron-images it sums over, per step."""
    log = {}

    class Backend(Loihi2Backend):
        def neuron_model(self, op):
            return _Probe(*self._by_neurons[id(op)], log=log, steps=timesteps, rounding=rounding)

    r = Engine(program.snn, Backend(program.layers, program.snn, program.units), threads=1).run(
        images, labels, timesteps, encoding=encoding, progress=False)
    return r, log


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("snn")
    ap.add_argument("--n", type=int, default=100)
    ap.add_argument("--timesteps", type=int, default=64)
    ap.add_argument("--encoding", default="rate")
    ap.add_argument("--rounding", choices=("floor", "round"), default="floor")
    a = ap.parse_args()
    program = compile_snn(S.load(a.snn))
    x, y = datasets.load("mnist", split="test")
    r, log = drift(program, x[:a.n], y[:a.n], a.timesteps, a.encoding, a.rounding)
    marks = [t for t in (4, 8, 16, 32, 48, 64) if t <= a.timesteps]
    populations = [i for i, layer in enumerate(r.layers) if layer.name.endswith(":Neurons")]
    messages = r.counts_by_step[:, populations, 0] / a.n     # (step, population): messages per image
    print(json.dumps({
        "images": a.n, "encoding": a.encoding, "rounding": a.rounding,
        "accuracy_pct": {t: round(100 * float(r.accuracy_by_step[t - 1]), 1) for t in marks},
        "mean_sigma_drift_units": {name: {t: round(float(s[t - 1, 0] / s[t - 1, 1]), 2) for t in marks}
                                   for name, s in log.items()},
        "messages_per_image": {layer.name: {t: round(float(messages[t - 1, k]), 1) for t in marks}
                               for k, layer in enumerate(program.layers)}}, indent=1))


if __name__ == "__main__":
    main()
