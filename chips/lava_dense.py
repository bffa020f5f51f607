"""Integer parameter checks and Lava's Dense weight format, shared by the chips whose reference is Lava.

Lava's ``Dense`` (lava-nc 0.10, lava/proc/dense/models.py, lava/utils/weightutils.py) holds integer weights
clipped to 8 bits + sign for their sign mode (mixed [-256, 255], excitatory [0, 255], inhibitory [-255, 0]),
then truncated to ``num_weight_bits``: (w >> t) << t with t = 8 - num_weight_bits (+ 1 if mixed); an
inhibitory matrix is negated around both steps, so it truncates toward zero. Loihi 1 (``chips.loihi``) and
Loihi 2 (``chips.loihi2``) both take their weights through it.
"""

from __future__ import annotations

import numpy as np

from neuro import graph
from neuro.errors import NeuroError
from neuro.jit import njit

WEIGHT_BITS = 8                      # weights clipped to 8 bits + sign (Lava clip_weights(num_bits=8))
WEIGHT_MIN, WEIGHT_MAX = -(1 << WEIGHT_BITS), (1 << WEIGHT_BITS) - 1
NUM_WEIGHT_BITS_MIN, NUM_WEIGHT_BITS_MAX = 1, 8  # Lava truncate_weights(max_num_weight_bits=8)
FLOAT32_EXACT = 1 << 24              # integer sums below 2^24 are exact in float32 (24-bit significand)


def integers(name: str, value, lo: int, hi: int, what: str) -> np.ndarray:
    """``value`` as an int64 array whose entries are integers in [lo, hi]; otherwise a one-line NeuroError."""
    arr = np.asarray(value)
    if arr.dtype == bool:
        arr = arr.astype(np.int64)
    if not np.issubdtype(arr.dtype, np.number) or not np.all(np.isfinite(arr)):
        raise NeuroError(f"{name} must be integers, got {value!r:.60}: give {what}")
    if np.any(arr != np.round(arr)):
        raise NeuroError(f"{name} must be integers, got non-integer values: give {what}")
    if arr.size and (arr.min() < lo or arr.max() > hi):
        bad = arr.min() if arr.min() < lo else arr.max()
        raise NeuroError(f"{name} = {int(bad)} is out of range: give {what}")
    return arr.astype(np.int64)


def integer(name: str, value, lo: int, hi: int, what: str) -> int:
    """One integer in [lo, hi]; otherwise a one-line NeuroError."""
    arr = integers(name, value, lo, hi, what)
    if arr.size != 1:
        raise NeuroError(f"{name} must be one integer, got shape {arr.shape}: give {what}")
    return int(arr.reshape(()))


def per_neuron(name: str, value, n: int, lo: int, hi: int, what: str) -> np.ndarray:
    """One integer or ``n`` of them (one per neuron), as ``n`` int64 values."""
    arr = integers(name, value, lo, hi, what)
    if arr.ndim > 1 or arr.size not in (1, n):
        raise NeuroError(f"{name} has shape {arr.shape}: give one value or {n} values (one per neuron)")
    return np.broadcast_to(arr.reshape(-1), (n,)).copy()


def sign_mode(weights: np.ndarray) -> str:
    """Lava's determine_sign_mode: all >= 0 excitatory, else all <= 0 inhibitory, else mixed."""
    if weights.min(initial=0) >= 0:
        return "excitatory"
    return "inhibitory" if weights.max(initial=0) <= 0 else "mixed"


def quantize_weights(weights, num_weight_bits: int, name: str = "weights") -> np.ndarray:
    """Integer weights as Lava's Dense holds them: clipped for their sign mode, then truncated to
    ``num_weight_bits`` (module docstring)."""
    w = integers(name, weights, WEIGHT_MIN, WEIGHT_MAX,
                 f"integers in [{WEIGHT_MIN}, {WEIGHT_MAX}] (8 bits + sign; scale them with weight_exp)")
    bits = integer("num_weight_bits", num_weight_bits, NUM_WEIGHT_BITS_MIN, NUM_WEIGHT_BITS_MAX,
                   f"an integer in [{NUM_WEIGHT_BITS_MIN}, {NUM_WEIGHT_BITS_MAX}]")
    mode = sign_mode(w)
    sign = -1 if mode == "inhibitory" else 1
    mixed = int(mode == "mixed")
    w = np.clip(sign * w, WEIGHT_MIN * mixed, WEIGHT_MAX)
    t = WEIGHT_BITS - bits + mixed
    return sign * ((w >> t) << t)


def with_weights(op, w: np.ndarray):
    """A copy of ``op`` holding the integer weights ``w`` (in float32) and no bias (the neurons hold it)."""
    if isinstance(op, graph.Dense):
        return graph.Dense(w.astype(np.float32), None)
    return graph.Conv2d(w.astype(np.float32), None, op.stride, op.padding, op.groups)


@njit(cache=True, inline="always")
def wrap32(x):
    """x (int64) as int32 arithmetic leaves it: two's-complement wrap-around (Lava's fixed-point models)."""
    return ((x + (1 << 31)) & 0xFFFFFFFF) - (1 << 31)
