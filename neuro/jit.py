"""numba's ``njit``, imported on a kernel's first call instead of at import: ``neuro --help`` and ``neuro chips``
import the kernels' modules but never run a kernel, and importing numba costs about 0.25 s (docs/results.md).

``@njit(...)`` returns a ``LazyKernel``; its first call imports numba, swaps every ``LazyKernel`` in its module's
globals (and in the modules and kernels those name) for the real numba dispatcher, so that numba, compiling one
kernel, finds the dispatchers of the kernels it calls, and then calls the dispatcher.
"""

from __future__ import annotations

import threading
import types

_LOCK = threading.RLock()   # the engine's threads may call their first kernels at the same time


def njit(**options):
    """Decorator: ``numba.njit(**options)``, applied on the first call."""
    return lambda func: LazyKernel(func, options)


class LazyKernel:
    """A numba kernel not yet handed to numba; a call goes to the dispatcher, made on the first one (looking at
    its attributes does not import numba: pytest's collection, for one, probes them)."""

    def __init__(self, func, options: dict):
        self.py_func = func
        self.options = options
        self.dispatcher = None
        self.__name__ = func.__name__
        self.__qualname__ = func.__qualname__
        self.__doc__ = func.__doc__
        self.__module__ = func.__module__

    def __call__(self, *args):
        return (self.dispatcher or self.load())(*args)

    def load(self):
        """The numba dispatcher, after swapping it and its fellow kernels into their modules' globals."""
        with _LOCK:
            if self.dispatcher is None:
                _swap(self.py_func.__globals__, set())
            return self._make()   # also when its module no longer holds it (a benchmark swapped it out)

    def _make(self):
        if self.dispatcher is None:
            import numba

            self.dispatcher = numba.njit(**self.options)(self.py_func)
        return self.dispatcher


def _swap(namespace: dict, seen: set) -> None:
    """Replace every ``LazyKernel`` in ``namespace`` by its dispatcher, following the modules and kernels it names
    (numba resolves a kernel's callees from its globals when it compiles it)."""
    if id(namespace) in seen:
        return
    seen.add(id(namespace))
    for name, value in list(namespace.items()):
        if isinstance(value, LazyKernel):
            namespace[name] = value._make()
            _swap(value.py_func.__globals__, seen)
        elif isinstance(value, types.ModuleType) and _has_kernels(value):
            _swap(vars(value), seen)


def _has_kernels(module: types.ModuleType) -> bool:
    return any(isinstance(v, LazyKernel) for v in vars(module).values())
