"""Coefficient sets as data: a chip's energy and timing constants in TOML files, one value per key with its
unit and its source. A chip ships its sets in its package (``load_dir``, at import); a user's own file is
accepted by path (``find``), checked against the keys of the chip's default set. The format::

    chip = "loihi"                      # the chip the set is for
    name = "dav18-0.9v"                 # optional: the file's stem
    description = "DAV18 scaled to 0.9 V"
    base = "dav18"                      # optional: a shipped set giving every key not listed here

    [values]
    e_synop_dense = { value = 34.0e-12, unit = "J", source = "DAV18 Table 2 x (0.9 / 0.75)^2" }

Loading never changes a shipped set: a file with ``base`` gets a new set of its own.
"""

from __future__ import annotations

from pathlib import Path
from typing import Mapping

from chips.api import CoefficientSet
from neuro.errors import NeuroError
from neuro.tomlfile import parse_toml

TOP_KEYS = ("chip", "name", "description", "base", "values")
ENTRY_KEYS = ("value", "unit", "source")


def load(path, chip: str, sets: Mapping[str, CoefficientSet] | None = None, keys=None) -> CoefficientSet:
    """The set in the TOML file ``path`` for ``chip``; ``base`` is looked up in ``sets``; ``keys``: the keys the
    chip reads (None: any)."""
    path = Path(path)
    try:
        raw = parse_toml(path.read_text(), path)
    except OSError as e:
        raise NeuroError(f"cannot read coefficient file {path}: {e.strerror}: fix the path") from None
    for key in raw.keys() - set(TOP_KEYS):
        raise NeuroError(f"{path}: unknown top-level key {key!r}: a coefficient file has {', '.join(TOP_KEYS)}")
    if raw.get("chip") != chip:
        raise NeuroError(f"{path}: chip = {raw.get('chip')!r}, but this is a set for the {chip!r} chip: set chip = "
                         f"{chip!r} (or use the file with its own chip)")
    if not isinstance(raw.get("values"), dict):
        raise NeuroError(f"{path}: no [values] table: give each constant as key = {{ value = ..., unit = \"...\", "
                         "source = \"...\" }")
    values, units, sources = {}, {}, {}
    if "base" in raw:
        sets = sets or {}
        if raw["base"] not in sets:
            raise NeuroError(f"{path}: base = {raw['base']!r} is not a {chip} coefficient set: use one of "
                             f"{', '.join(sets) or 'none'}")
        base = sets[raw["base"]]
        values, units, sources = dict(base.values), dict(base.units), dict(base.sources)
    for key, entry in raw["values"].items():
        values[key], units[key], sources[key] = _entry(path, key, entry)
    if keys is not None:
        missing = [k for k in keys if k not in values]
        if missing:
            raise NeuroError(f"{path}: missing {', '.join(missing)}: give them under [values], or base = a shipped "
                             f"set to take them from")
        for key in values.keys() - set(keys):
            raise NeuroError(f"{path}: unknown key {key!r} under [values]: the {chip} chip reads {', '.join(keys)}")
    name = raw.get("name", path.stem)
    if not isinstance(name, str) or not name:
        raise NeuroError(f"{path}: name must be a non-empty string, got {name!r}")
    return CoefficientSet(chip, name, str(raw.get("description", "")), values, units, sources, path)


def _entry(path, key: str, entry) -> tuple:
    """(value, unit, source) of one ``[values]`` entry, checked."""
    if not isinstance(entry, dict) or entry.keys() != set(ENTRY_KEYS):
        raise NeuroError(f"{path}: {key} must be {{ value = ..., unit = \"...\", source = \"...\" }} (the source "
                         f"cites where the number comes from), got {entry!r}")
    value, unit, source = (entry[k] for k in ENTRY_KEYS)
    if not _numbers(value):
        raise NeuroError(f"{path}: {key}.value must be a number or a list of numbers, got {value!r}")
    if not isinstance(unit, str) or not isinstance(source, str) or not source:
        raise NeuroError(f"{path}: {key}.unit and {key}.source must be strings, the source not empty")
    return value, unit, source


def _numbers(value) -> bool:
    if isinstance(value, list):
        return bool(value) and all(_numbers(v) for v in value)
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def load_dir(folder, chip: str, default: str) -> dict[str, CoefficientSet]:
    """The sets shipped in ``folder`` (``*.toml``), ``default`` first; every other set has the default's keys and
    may take the rest from an earlier one (``base``)."""
    folder = Path(folder)
    sets = {default: load(folder / f"{default}.toml", chip)}
    keys = tuple(sets[default].values)
    for path in sorted(folder.glob("*.toml")):
        if path.stem != default:
            s = load(path, chip, sets, keys)
            sets[s.name] = s
    return sets


def find(sets: Mapping[str, CoefficientSet], spec, title: str, base_dir=None) -> CoefficientSet:
    """A set of a chip whose shipped ``sets`` are given (the default first): by name, a ``.toml`` file by path
    (relative to ``base_dir``), a ``CoefficientSet`` for the same chip, or None / "" for the default."""
    default = next(iter(sets.values()))
    if spec is None or spec == "":
        return default
    if isinstance(spec, CoefficientSet):
        if spec.chip != default.chip:
            raise NeuroError(f"coefficient set {spec.name!r} is for the {spec.chip} chip, not {default.chip}: "
                             f"give one of {', '.join(sets)}")
        return spec
    if isinstance(spec, (str, Path)) and str(spec).endswith(".toml"):
        path = Path(spec)
        return load(path if base_dir is None or path.is_absolute() else Path(base_dir) / path, default.chip, sets,
                    tuple(default.values))
    if spec not in sets:
        raise NeuroError(f"unknown {title} coefficient set {spec!r}: give one of {', '.join(sets)}, or the path of a "
                         ".toml file (docs/chips/extending.md)")
    return sets[spec]
