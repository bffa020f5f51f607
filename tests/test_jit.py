"""neuro.jit: kernels that compile on their first call, and find the kernels they call (fresh compiles, no cache)."""

import os
import subprocess
import sys

import numpy as np

from neuro.jit import LazyKernel, njit


@njit(cache=False)
def _double(x):
    return 2 * x


@njit(cache=False)
def _sum_doubled(a):
    total = 0.0
    for v in a:
        total += _double(v)   # a kernel calling another: numba must see _double's dispatcher, not a LazyKernel
    return total


def test_a_kernel_calls_another_and_both_become_dispatchers():
    assert isinstance(_sum_doubled, LazyKernel)
    assert _sum_doubled(np.arange(4.0)) == 12.0
    assert not isinstance(globals()["_double"], LazyKernel)   # swapped for numba's dispatcher
    assert _double(3) == 6 and _double.py_func(3) == 6


def test_kernels_compile_with_an_empty_cache(tmp_path):
    """The TrueNorth chip's parallel kernel (plain numba options, calling chips.truenorth.core's kernels) and an
    engine kernel compile in a process with an empty numba cache: a cached kernel is not typed again, so a
    kernel that called a LazyKernel would pass with a warm cache only."""
    code = ("import numpy as np\n"
            "from chips.truenorth.chip import mer14_workload, run_chip\n"
            "run_chip(mer14_workload(cores=2, seed=0), np.zeros((3, 0), bool))\n"
            "from neuro import kernels\n"
            "x = np.ones((1, 16), np.float32); out = np.empty((1, 4), np.float32)\n"
            "kernels.avg_pool(x, out, 4, 4, 1, 2, 2, 2, 2, 2, 2, 0, 0)\n"
            "assert (out == 1).all()\n")
    env = {**os.environ, "NUMBA_CACHE_DIR": str(tmp_path)}
    subprocess.run([sys.executable, "-c", code], check=True, env=env, timeout=600)
