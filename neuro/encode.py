"""Input encodings: what the first layer receives each step from an image batch (N, C, H, W) in [0, 1].

* ``current``: the pixel values themselves, the same every step (constant input current);
* ``rate``: Bernoulli spikes, P(spike) = pixel value per step, i.e. a discrete-time Poisson process;
  image i's spikes come from its own generator seeded by (seed, i), so they depend on the seed and
  the image's index only, never on batch size, threads or the machine;
* ``regular``: deterministic spikes from one integrate-and-fire neuron per pixel: each step the pixel value p
  is added to an accumulator, which spikes and loses 1 when it reaches 1 (reset by subtraction). The
  accumulator starts at 0.5 (the same half-threshold start as the converted neurons' ``v_init``), so the
  spike count after t steps is floor(p t + 1/2), p t rounded, and every prefix of the train is within half a
  spike of p t: no Bernoulli noise, still binary spikes for the chips. This is how NxTF feeds images to
  Loihi: input-layer neurons driven by the pixel as a bias current (Rueckauer et al. 2022, docs/references.md).

All give flat channel-last arrays (N, H*W*C), the engine's layout.
"""

from __future__ import annotations

import numpy as np

from neuro.errors import NeuroError

ENCODINGS = ("current", "rate", "regular")
SPIKE_ENCODINGS = ("rate", "regular")   # the encodings that give the first layer binary spikes
REGULAR_PHASE = 0.5   # the regular encoder's initial accumulator: counts are p t rounded, not floored


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


def _probabilities(images, encoding: str) -> np.ndarray:
    """Channel-last pixel values, checked to lie in [0, 1] (a spike encoding's rates)."""
    p = to_channel_last(images)
    if p.size and not (p.min() >= 0 and p.max() <= 1):
        raise NeuroError(f"{encoding} encoding needs pixel values in [0, 1], got values in [{p.min():.3g}, "
                         f"{p.max():.3g}]: scale the images first")
    return p


class _Rate:
    static = False

    def __init__(self, images, seed: int, start: int):
        self.p = _probabilities(images, "rate")
        self.rngs = [np.random.default_rng([seed, start + i]) for i in range(len(self.p))]
        self.u, self.x = np.empty_like(self.p), np.empty_like(self.p)

    def step(self):
        for rng, u in zip(self.rngs, self.u):
            rng.random(out=u, dtype=np.float32)
        np.less(self.u, self.p, out=self.x, casting="unsafe")
        return self.x


class _Regular:
    """Integrate-and-fire spikes per pixel, in closed form: step t (1-based) spikes where floor(p t + 1/2) rises.

    The closed form is the accumulator's (start 1/2, add p, spike and subtract 1 at >= 1) without its running
    float sum, so step t depends on p and t only; float64 keeps p t exact enough for every p = k/255 and t < 2^20."""

    static = False

    def __init__(self, images):
        self.p = _probabilities(images, "regular").astype(np.float64)
        self.t = 0
        self.x = np.empty(self.p.shape, np.float32)

    def step(self):
        self.t += 1
        np.subtract(np.floor(self.p * self.t + REGULAR_PHASE), np.floor(self.p * (self.t - 1) + REGULAR_PHASE),
                    out=self.x, casting="unsafe")
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
        if self.encoding == "regular":
            return _Regular(images)
        return _Rate(images, self.seed, start)
