"""Timing one batch size: warm-up discarded, then ``repeats`` windows of the same batch repeated until each
window is long enough.

Each call is timed on its own (``sync`` after it, so a GPU call has finished), which gives the
latency of one batch; throughput is images over a window, reported as the mean and standard deviation
over the windows. With an energy counter each window is stretched to the counter's minimum and the
counter is sampled just outside all of them, after a ``sync``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from neuro.baselines.energy import Window

#: Fewest timed calls per window, whatever its length: p50/p99 of fewer calls say little.
MIN_CALLS = 5
#: Timed windows per batch size: throughput is their mean, with their standard deviation.
REPEATS = 5


@dataclass
class Timing:
    """The timed windows of one batch size: per-call latencies (s), their total length (s), the throughput of
    each window (images/s) and the energy over all of them."""

    batch: int
    latencies: np.ndarray
    seconds: float
    energy: Window | None = None
    window_throughputs: np.ndarray | None = None

    @property
    def calls(self) -> int:
        return len(self.latencies)

    @property
    def images(self) -> int:
        return self.batch * self.calls

    @property
    def throughput(self) -> float:
        """Mean images/s over the windows (images over the whole time when there is one window)."""
        if self.window_throughputs is None:
            return self.images / self.seconds
        return float(np.mean(self.window_throughputs))

    @property
    def throughput_std(self) -> float:
        """Standard deviation of images/s over the windows (0 for one window)."""
        return 0.0 if self.window_throughputs is None else float(np.std(self.window_throughputs))

    def latency_percentile(self, q: float) -> float:
        return float(np.percentile(self.latencies, q))


def time_batches(run, x, window_s: float, warmup_s: float, counter=None, sync=lambda: None,
                 clock=time.perf_counter, repeats: int = REPEATS) -> Timing:
    """Time ``run(x)`` (then ``sync()``) after ``warmup_s`` of discarded calls, in ``repeats`` windows of at
    least ``window_s`` each."""
    start = clock()
    while True:  # warm-up: at least one call (first-call setup), then until warmup_s has passed
        run(x)
        sync()
        if clock() - start >= warmup_s:
            break
    target = max(window_s, counter.min_window_s) if counter is not None else window_s
    e0 = counter.sample() if counter is not None else None
    latencies, throughputs, seconds = [], [], 0.0
    for _ in range(repeats):
        calls = 0
        t0 = clock()
        while True:
            s = clock()
            run(x)
            sync()
            t = clock()
            latencies.append(t - s)
            calls += 1
            if t - t0 >= target and calls >= MIN_CALLS:
                break
        seconds += t - t0
        throughputs.append(len(x) * calls / (t - t0))
    energy = counter.window(e0, counter.sample()) if counter is not None else None
    return Timing(len(x), np.array(latencies), seconds, energy, np.array(throughputs))
