"""Chip models by name: the built-in ones, every installed package's in the ``neuro.chips`` entry-point group,
and those a script registers (``register``). A chip is a ``chips.api.Chip`` (docs/chips/extending.md).

An installed package declares its chip in its own metadata, e.g. in setup.cfg::

    [options.entry_points]
    neuro.chips =
        toy = toy_chip:CHIP

and ``neuro chips``, ``neuro simulate --chip toy``, ``neuro run`` and the report find it by that name.
"""

from __future__ import annotations

import importlib
import re
from importlib.metadata import entry_points

from chips.api import Chip
from neuro.encode import SPIKE_ENCODINGS
from neuro.errors import NeuroError

GROUP = "neuro.chips"
BUILTIN = {"loihi": "chips.loihi.entry:CHIP", "loihi2": "chips.loihi2.entry:CHIP",
           "truenorth": "chips.truenorth.entry:CHIP"}  # also in setup.cfg
NAME = re.compile(r"[a-z][a-z0-9_-]*$")
RESERVED = ("float",)   # the float SNN in an experiment's emulation.chips
HOW_TO_ADD = "install a chip package (entry-point group neuro.chips) or call chips.register (docs/chips/extending.md)"

_registered: dict[str, Chip | str] = {}   # by ``register``: a Chip, or "module:attribute"
_loaded: dict[str, Chip] = {}


def _targets() -> dict[str, str | Chip]:
    """Every chip name and what it points at: built-in, then entry points, then ``register``."""
    out: dict[str, str | Chip] = dict(BUILTIN)
    for ep in entry_points(group=GROUP):
        if ep.name in out and out[ep.name] != ep.value:
            raise NeuroError(f"chip name {ep.name!r} is taken twice: {out[ep.name]} and {ep.value} (entry point of "
                             f"{ep.dist.name if ep.dist else 'an installed package'}): uninstall one")
        out[ep.name] = ep.value
    for name, target in _registered.items():
        if name in out and out[name] != target:
            raise NeuroError(f"chip name {name!r} is taken twice: {out[name]} and {target}: register another name")
        out[name] = target
    return out


def available() -> list[str]:
    """The names of every chip model found (nothing is imported)."""
    return sorted(_targets())


def register(name: str, chip: Chip | str) -> None:
    """Make ``chip`` (a ``Chip``, or "module:attribute" naming one) available as ``name`` in this process, e.g.
    from a notebook; an installed package uses the ``neuro.chips`` entry-point group instead."""
    if not isinstance(name, str) or not NAME.match(name) or name in RESERVED:
        raise NeuroError(f"chip name {name!r} is not allowed: use lower-case letters, digits, - and _, starting with "
                         f"a letter, and not {', '.join(RESERVED)}")
    if isinstance(chip, Chip) and chip.name != name:
        raise NeuroError(f"the chip registered as {name!r} calls itself {chip.name!r}: register it as {chip.name!r}")
    if not isinstance(chip, (Chip, str)):
        raise NeuroError(f"chips.register({name!r}, ...) takes a chips.api.Chip or 'module:attribute', got "
                         f"{type(chip).__name__}")
    taken = _targets().get(name)
    if taken is not None and taken != chip:
        raise NeuroError(f"chip name {name!r} is taken by {taken}: register another name")
    _registered[name] = chip
    _loaded.pop(name, None)


def get(name: str) -> Chip:
    """The chip model registered as ``name``; an unknown name is a one-line error listing the known ones and how
    to add one."""
    targets = _targets()
    if name not in targets:
        raise NeuroError(f"no chip model named {name!r}: available chip models: {', '.join(sorted(targets))}; to add "
                         f"one, {HOW_TO_ADD}")
    if name not in _loaded:
        target = targets[name]
        _loaded[name] = target if isinstance(target, Chip) else _load(name, target)
    return _loaded[name]


def _load(name: str, target: str) -> Chip:
    module, _, attr = target.partition(":")
    try:
        chip = getattr(importlib.import_module(module), attr)
    except (ImportError, AttributeError) as e:
        raise NeuroError(f"chip {name!r} ({target}) does not load: {e}: reinstall its package or fix the entry "
                         "point") from None
    if not isinstance(chip, Chip):
        raise NeuroError(f"chip {name!r} ({target}) is a {type(chip).__name__}, not a chips.api.Chip: point the "
                         "entry point at the package's Chip")
    if chip.name != name:
        raise NeuroError(f"chip {name!r} ({target}) calls itself {chip.name!r}: give the entry point the chip's name")
    return chip


def compile_for(name: str, snn, encoding: str, options: dict | None = None):
    """``snn`` compiled for chip ``name`` with its ``options`` (checked; the rest at their defaults); the encoding
    must be one the chip takes (``Chip.encodings``: most chips' cores take input spikes only: rate or regular)."""
    chip = get(name)
    if encoding not in chip.encodings:
        raise NeuroError(f"the {name} chip model takes input spikes, not analog currents: use the rate or regular "
                         f"encoding (got {encoding!r})" if tuple(chip.encodings) == SPIKE_ENCODINGS else
                         f"the {name} chip model takes the {' or '.join(chip.encodings)} encoding, not {encoding!r}")
    return chip.compile(snn, **chip.check_options(options or {}, f"{name} options"))


def published_points() -> tuple:
    """Every chip's own published points, for the report."""
    return tuple(p for name in available() for p in get(name).published)
