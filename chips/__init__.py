"""Chip models, one package each, on the engine's seam (``neuro.sim.Backend``), registered by name here.

A chip package provides its constants (with citations), its neuron kernel (a ``neuro.sim.NeuronModel``),
its weight format (``Backend.synapse_op``), compilation onto its cores and its cost model. Adding a chip
is one package plus one line in ``REGISTRY``.
"""

from __future__ import annotations

import importlib

from neuro.errors import NeuroError

REGISTRY: dict[str, str] = {"loihi": "chips.loihi:compile_snn", "truenorth": "chips.truenorth:compile_snn"}  # chip name -> "module:attribute"


def available() -> list[str]:
    return sorted(REGISTRY)


def compile_for(name: str, snn, encoding: str):
    """``snn`` compiled for chip ``name``; a chip's cores take input spikes, so the encoding must be rate."""
    if encoding != "rate":
        raise NeuroError(f"the {name} chip model takes input spikes, not analog currents: use the rate encoding "
                         f"(got {encoding!r})")
    return get(name)(snn)


def limits(name: str) -> dict:
    """The key limits of a registered chip model (its module's ``chip_limits()``)."""
    get(name)
    return importlib.import_module(REGISTRY[name].split(":")[0]).chip_limits()


def get(name: str):
    """The chip model registered under ``name``; an unknown name is a clear error listing the known ones."""
    if name not in REGISTRY:
        known = ", ".join(available()) or "none yet"
        raise NeuroError(f"no chip model named {name!r}: available chip models: {known}")
    module, attr = REGISTRY[name].split(":")
    return getattr(importlib.import_module(module), attr)
