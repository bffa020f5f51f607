"""Baseline results as plain dataclasses: every number carries its unit and its provenance.

Provenance says where a number comes from: ``measured`` in this run, ``recorded`` (measured earlier
and read back from a file), ``estimated`` (a formula, given in ``note``), or ``not measurable here``
(no number; ``note`` says why). ``write_json`` is atomic; ``read_json`` turns measured into recorded.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

from neuro.atomic import atomic_path
from neuro.errors import NeuroError

MEASURED = "measured"
RECORDED = "recorded"
ESTIMATED = "estimated"
NOT_MEASURABLE = "not measurable here"


@dataclass
class Value:
    """One number (or None when not measurable) with its unit, provenance and an optional note.

    Modeled and estimated numbers carry their ``low``-``high`` range; a measured mean over repeats its
    standard deviation ``std``.
    """

    value: float | None
    unit: str
    provenance: str
    note: str = ""
    low: float | None = None
    high: float | None = None
    std: float | None = None

    def __post_init__(self):
        slack = 1e-9 * abs(self.value or 0.0)  # the range and the point are computed apart: allow rounding
        if self.value is not None and self.low is not None and not self.low - slack <= self.value <= self.high + slack:
            raise NeuroError(f"{self.value:g} {self.unit} lies outside its range {self.low:g}-{self.high:g}")

    @classmethod
    def measured(cls, value: float, unit: str, note: str = "") -> Value:
        return cls(float(value), unit, MEASURED, note)

    @classmethod
    def missing(cls, unit: str, reason: str) -> Value:
        return cls(None, unit, NOT_MEASURABLE, reason)


@dataclass
class Point:
    """One batch size on one platform: throughput, latency per batch and energy per image."""

    batch: int
    calls: int  # batches run in the timed window (p99 of few calls is interpolated: see this count)
    window: Value
    throughput: Value
    latency_p50: Value
    latency_p99: Value
    energy_per_image: Value
    dynamic_energy_per_image: Value
    energy_per_image_estimate: Value | None = None


@dataclass
class Platform:
    """One way of running the ANN (e.g. onnxruntime on the CPU); ``status`` is why there are no points."""

    name: str
    status: str
    device: str = ""
    runtime: str = ""
    driver: str = ""
    threads: int | None = None
    energy_source: str = ""
    idle_power: Value | None = None
    agreement: Value | None = None  # fraction of argmax equal to the IR's float forward pass
    points: list[Point] = field(default_factory=list)


@dataclass
class Baselines:
    """All platforms measured for one model, with the system, settings and date of the run."""

    model: str
    model_sha256: str
    date: str
    system: dict
    settings: dict
    platforms: list[Platform] = field(default_factory=list)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> Baselines:
        platforms = [_platform(p) for p in d["platforms"]]
        return cls(d["model"], d["model_sha256"], d["date"], d["system"], d["settings"], platforms)


def _value(d: dict | None) -> Value | None:
    return None if d is None else Value(**d)


def _platform(d: dict) -> Platform:
    points = [Point(**{k: _value(v) if isinstance(v, dict) or v is None else v for k, v in p.items()})
              for p in d["points"]]
    return Platform(**{**d, "idle_power": _value(d["idle_power"]), "agreement": _value(d["agreement"]),
                       "points": points})


def write_json(results: Baselines, path) -> Path:
    """Write ``results`` as JSON; the file appears complete or not at all."""
    path = Path(path)
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(results.to_dict(), indent=1) + "\n")
    return path


def read_json(path) -> Baselines:
    """Read results written by ``write_json``; their measured numbers become ``recorded``."""
    try:
        results = Baselines.from_dict(json.loads(Path(path).read_text()))
    except FileNotFoundError:
        raise NeuroError(f"baseline file not found: {path}") from None
    except OSError as e:
        raise NeuroError(f"cannot read baseline file {path}: {e.strerror}") from None
    except (ValueError, KeyError, TypeError) as e:
        raise NeuroError(f"{path} is not a baseline results file ({type(e).__name__}: {e}): "
                         "write it with neuro.baselines.write_json") from None
    for value in _values(results):
        if value.provenance == MEASURED:
            value.provenance = RECORDED
    return results


def _values(results: Baselines):
    """Every Value in ``results``."""
    for p in results.platforms:
        yield from (v for v in (p.idle_power, p.agreement) if v is not None)
        for point in p.points:
            yield from (v for v in vars(point).values() if isinstance(v, Value))
