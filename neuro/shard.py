"""One experiment's test images split into shards that run on different Dask workers, their counts merged exactly.

Each shard runs the same converted SNN (and the same chip program, compiled again from it on the worker) on a
contiguous slice of the images. Rate-coded spikes are seeded by (seed, global image index) (``neuro.encode``), so
a shard that passes its global offset draws the very spikes the whole run would. Every count the engine keeps is
a whole number held in float64 (spikes, synaptic events, hops) or int64 (images correct), so the merged sums are
those of one process bit for bit, whatever the order of the additions; the chip's cost model then prices the
merged counts as it would the single run's.
"""

from __future__ import annotations

import numpy as np

from neuro import encode
from neuro.errors import NeuroError
from neuro.sim import LAYER_COUNT_FIELDS, LayerCounts, SimResult


def bounds(n: int, shards: int) -> list[tuple[int, int]]:
    """``shards`` contiguous (start, stop) slices of ``n`` images, sizes differing by one at most, none empty."""
    if shards < 1:
        raise NeuroError(f"shards is {shards}: give 1 or more")
    edges = np.linspace(0, n, min(shards, max(n, 1)) + 1).astype(int)
    return [(int(a), int(b)) for a, b in zip(edges[:-1], edges[1:]) if b > a]


class OffsetEncoder:
    """``encode.Encoder`` for the images from global index ``offset`` on: shard-local image i gets the spikes of
    image ``offset + i``."""

    def __init__(self, encoding: str, seed: int, offset: int):
        self.encoder, self.offset = encode.Encoder(encoding, seed), offset

    def for_batch(self, images, start: int):
        return self.encoder.for_batch(images, self.offset + start)


def run_shard(chip: str, snn, images, labels, emulation: dict, seed: int, offset: int,
              options: dict | None = None) -> SimResult:
    """The engine run of one shard (images ``offset``..): the float SNN or ``chip``'s program compiled from ``snn``
    with the chip's ``options``."""
    import chips
    from neuro.experiment import FLOAT, _engine

    program = None if chip == FLOAT else chips.compile_for(chip, snn, emulation["encoding"], options)
    return _engine(program, snn).run(images, labels, emulation["timesteps"],
                                     encoding=OffsetEncoder(emulation["encoding"], seed, offset), seed=seed,
                                     batch_size=emulation["batch_size"], progress=False)


def merge(parts: list[SimResult]) -> SimResult:
    """The shards' results, in image order, as one run over all their images."""
    if not parts:
        raise NeuroError("no shard results to merge")
    first = parts[0]
    if any(p.timesteps != first.timesteps or [c.name for c in p.layers] != [c.name for c in first.layers]
           for p in parts):
        raise NeuroError("shard results differ in steps or layers: they come from different runs; run again")
    layers = []
    for i, c in enumerate(first.layers):
        total = LayerCounts(c.name, c.neurons)
        for f in LAYER_COUNT_FIELDS:
            setattr(total, f, sum(getattr(p.layers[i], f) for p in parts))
        layers.append(total)
    by_step = None
    if all(p.counts_by_step is not None for p in parts):
        by_step = np.sum([p.counts_by_step for p in parts], axis=0)
    return SimResult(sum(p.n_images for p in parts), first.timesteps,
                     np.sum([p.correct_by_step for p in parts], axis=0), layers,
                     np.concatenate([p.predictions for p in parts]), counts_by_step=by_step)


def sharded(shards: int):
    """A ``simulate`` hook for ``run_experiment``: each chip's images in ``shards`` Dask tasks, run from inside a
    task on a Dask worker (``worker_client`` lets the point's task wait without holding a worker thread)."""

    def simulate(chip, snn, images, labels, emulation, seed, options):
        from distributed import worker_client

        with worker_client() as client:
            # the SNN travels inside each task: a scattered copy is one more dependency a worker can lose
            # ("lost dependencies" cancelled shards now and then in tests/test_sweep.py)
            futures = [client.submit(run_shard, chip, snn, images[a:b], labels[a:b], emulation, seed, a,
                                     options, pure=False)
                       for a, b in bounds(len(images), shards)]
            return merge(client.gather(futures))

    return simulate
