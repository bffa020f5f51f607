"""Input encodings: what the first layer receives each step from an image batch (N, C, H, W) in [0, 1].

* ``current``: the pixel values themselves, the same every step (constant input current);
* ``rate``: Bernoulli spikes, P(spike) = pixel value per step, i.e. a discrete-time Poisson process;
  image i's spikes come from its own generator seeded by (seed, i), so they depend on the seed and
  the image's index only, never on batch size, threads or the machine.

Both give flat channel-last arrays (N, H*W*C), the engine's layout.
"""

from __future__ import annotations

import numpy as np

from neuro.errors import NeuroError

ENCODINGS = ("current", "rate")


def to_channel_last(images: np.ndarray) -> np.ndarray:
    """(N, C, H, W) or (N, D) -> flat (N, H*W*C) float32."""
    x = np.asarray(images, np.float32)
    if x.ndim == 4:
        x = x.transpose(0, 2, 3, 1)
    return np.ascontiguousarray(x.reshape(len(x), -1))


class _Constant:
    static = True

    def __init__(self, images):
        self.x = to_channel_last(images)

    def step(self):
        return self.x


class _Rate:
    static = False

    def __init__(self, images, seed: int, start: int):
        self.p = to_channel_last(images)
        if self.p.size and (self.p.min() < 0 or self.p.max() > 1):
            raise NeuroError("rate encoding needs pixel values in [0, 1]: scale the images first")
        self.rngs = [np.random.default_rng([seed, start + i]) for i in range(len(self.p))]
        self.u, self.x = np.empty_like(self.p), np.empty_like(self.p)

    def step(self):
        for rng, u in zip(self.rngs, self.u):
            rng.random(out=u, dtype=np.float32)
        np.less(self.u, self.p, out=self.x, casting="unsafe")
        return self.x


class Playback:
    """Plays recorded input spikes (N, T, n_in) to the engine: step t of image i gives trains[i, t].

    Use it as the ``encoding`` of ``neuro.sim.Engine.run`` (the images then only set the batch). Spikes are
    0/1 (any non-zero entry is a spike); ``graded=True`` plays the entries themselves, as integer payloads for
    chips with graded spikes.
    """

    def __init__(self, trains: np.ndarray, graded: bool = False):
        trains = np.asarray(trains)
        self.trains = (trains if graded else trains != 0).astype(np.float32)

    def for_batch(self, images, start: int):
        return _PlaybackBatch(self.trains[start:start + len(images)])


class _PlaybackBatch:
    static = False

    def __init__(self, trains):
        self.trains, self.t = trains, 0

    def step(self):
        x = np.ascontiguousarray(self.trains[:, self.t])
        self.t += 1
        return x


class Encoder:
    def __init__(self, encoding: str, seed: int):
        if encoding not in ENCODINGS:
            raise NeuroError(f"encoding {encoding!r} is unknown: use one of {ENCODINGS}")
        if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
            raise NeuroError(f"seed must be an integer of 0 or more, got {seed!r}")
        self.encoding, self.seed = encoding, seed

    def for_batch(self, images, start: int):
        """The step-by-step input of images ``start``, ``start + 1``, ...: rate coding seeds image i by (seed, i)."""
        if self.encoding == "current":
            return _Constant(images)
        return _Rate(images, self.seed, start)
