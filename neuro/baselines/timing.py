"""Timing one batch size: warm-up discarded, then the same batch repeated until the window is long enough.

Each call is timed on its own (``sync`` after it, so a GPU call has finished), which gives the
latency of one batch; throughput is images over the whole window. With an energy counter the window
is stretched to the counter's minimum and the counter is sampled just outside it, after a ``sync``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from neuro.baselines.energy import Window

#: Fewest timed calls per point, whatever the window: p50/p99 of fewer calls say little.
MIN_CALLS = 5


@dataclass
class Timing:
    """The timed window of one batch size: per-call latencies (s), its length (s) and energy."""

    batch: int
    latencies: np.ndarray
    seconds: float
    energy: Window | None = None

    @property
    def calls(self) -> int:
        return len(self.latencies)

    @property
    def images(self) -> int:
        return self.batch * self.calls

    @property
    def throughput(self) -> float:
        return self.images / self.seconds

    def latency_percentile(self, q: float) -> float:
        return float(np.percentile(self.latencies, q))


def time_batches(run, x, window_s: float, warmup_s: float, counter=None, sync=lambda: None,
                 clock=time.perf_counter) -> Timing:
    """Time ``run(x)`` (then ``sync()``) after ``warmup_s`` of discarded calls, over at least ``window_s``."""
    start = clock()
    while True:  # warm-up: at least one call (first-call setup), then until warmup_s has passed
        run(x)
        sync()
        if clock() - start >= warmup_s:
            break
    target = max(window_s, counter.min_window_s) if counter is not None else window_s
    e0 = counter.sample() if counter is not None else None
    latencies = []
    t0 = clock()
    while True:
        s = clock()
        run(x)
        sync()
        t = clock()
        latencies.append(t - s)
        if t - t0 >= target and len(latencies) >= MIN_CALLS:
            break
    energy = counter.window(e0, counter.sample()) if counter is not None else None
    return Timing(len(x), np.array(latencies), t - t0, energy)
