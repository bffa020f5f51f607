"""The public chip API: what a chip model is (``Chip``), what its compiled program and its cost offer
(``Program``, ``Cost``), its compile options (``Option``) and its coefficient sets (``CoefficientSet``).

A chip package builds one ``Chip`` and exposes it in the ``neuro.chips`` entry-point group (or calls
``chips.register``); the command line, the experiment runner and the report then use it by name. The engine's
seam a chip plugs into is re-exported here: ``Backend`` (its weight format and neuron models) and
``NeuronModel`` (its neuron update). docs/chips/extending.md walks through a chip written against this API.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Protocol, Sequence

from neuro.encode import SPIKE_ENCODINGS
from neuro.errors import NeuroError
from neuro.published import PublishedPoint
from neuro.sim import Backend, NeuronModel, SimResult
from neuro.snn import SNN

__all__ = ["Backend", "Chip", "CoefficientSet", "Cost", "NeuronModel", "Option", "Program", "PublishedPoint"]

_KINDS = {bool: "true or false", int: "an integer", float: "a number", str: "a string"}


@dataclass(frozen=True)
class Option:
    """One compile option a chip declares (``neuro simulate --chip-option name=value``, ``[chips.<chip>] name =
    value`` in an experiment). ``kind``: int, float, str or bool. ``choices``: the allowed values of a string
    option, or words a number option also takes (e.g. "max"). ``low``/``high``: the inclusive range of a number."""

    name: str
    kind: type
    default: Any
    help: str
    choices: tuple = ()
    low: float | None = None
    high: float | None = None

    def __post_init__(self):
        if self.kind not in _KINDS:
            raise NeuroError(f"option {self.name!r}: kind {self.kind!r} is not supported: use int, float, str or bool")
        self.check(self.default, f"option {self.name!r}'s default")

    def allowed(self) -> str:
        """What the option takes, in words: "an integer in [1, 131071]", "one of 'trinary', 'multilevel'"."""
        words = ", ".join(map(repr, self.choices))
        if self.kind is str and self.choices:
            return f"one of {words}"
        text = _KINDS[self.kind]
        if self.low is not None or self.high is not None:
            text += f" in [{'-inf' if self.low is None else f'{self.low:g}'}, " \
                    f"{'inf' if self.high is None else f'{self.high:g}'}]"
        return f"{text} or {words}" if self.choices else text

    def check(self, value, where: str):
        """``value`` as the option's kind when allowed; otherwise a one-line NeuroError naming ``where``."""
        if any(value == c and type(value) is type(c) for c in self.choices):
            return value
        ok = {bool: lambda v: isinstance(v, bool), str: lambda v: isinstance(v, str) and not self.choices,
              int: lambda v: isinstance(v, int) and not isinstance(v, bool),
              float: lambda v: isinstance(v, (int, float)) and not isinstance(v, bool)}[self.kind](value)
        if ok and self.kind in (int, float):
            value = self.kind(value)
            ok = (self.low is None or value >= self.low) and (self.high is None or value <= self.high)
        if not ok:
            raise NeuroError(f"{where}: {self.name} must be {self.allowed()}, got {value!r}")
        return value

    def parse(self, text: str, where: str):
        """A command-line value (always text) as the option's kind, checked."""
        if text in self.choices:
            return text
        try:
            value = {bool: lambda t: {"true": True, "false": False}[t.lower()], int: int, float: float,
                     str: str}[self.kind](text)
        except (KeyError, ValueError):
            raise NeuroError(f"{where}: {self.name} must be {self.allowed()}, got {text!r}") from None
        return self.check(value, where)

    def summary(self) -> str:
        """One line for ``neuro chips``."""
        return f"{self.name} ({self.allowed()}; default {self.default!r}): {self.help}"


@dataclass(frozen=True)
class CoefficientSet:
    """A chip's energy and timing constants, read from a TOML file (``chips.coefficients``): one value per key,
    each with its unit and its source (the citation)."""

    chip: str
    name: str
    description: str
    values: Mapping[str, Any]         # key -> a number, or a list of numbers
    units: Mapping[str, str]
    sources: Mapping[str, str]
    path: Path | None = None

    def __getitem__(self, key: str):
        return self.values[key]


class Cost(Protocol):
    """What the experiment, the command line and the report read of a chip's cost of one inference. Optional,
    read when present: ``ranges`` {name: (low, high)} of the three figures, ``assumptions`` [one line per
    uncertain constant], ``calibration`` (one line: how the model does on published measurements), ``variants``
    {label: {energy_per_inference_j, frames_per_second, latency_s}} (the same inference under another
    assumption)."""

    coefficients: str                 # the coefficient set's name
    cores: int
    chips: int
    energy_per_inference_j: float
    frames_per_second: float
    latency_s: float


class Program(Protocol):
    """A converted SNN compiled for a chip. ``snn``: the SNN the engine runs (``Engine(program.snn,
    program.backend())``); ``deviations``: one line per way it differs from the converted SNN."""

    snn: SNN
    deviations: list[str]

    def backend(self) -> Backend: ...

    def cost(self, result: SimResult, steps: int, coefficients: CoefficientSet | None = None) -> Cost:
        """The cost of one inference of ``steps`` steps with the activity of ``result`` (an engine run of
        ``snn``); ``coefficients`` None: the chip's default set."""


@dataclass(frozen=True)
class Chip:
    """A chip model. ``compile(snn, **options)`` returns a ``Program``; ``limits``: what ``neuro chips`` lists;
    ``coefficients``: the shipped sets by name, the default first (``chips.coefficients.load_dir``);
    ``options``: what compile takes besides the SNN; ``published``: the chip's own published points for the
    report; ``wide_options``: the options with the chip's finest weights (the conformance check runs the
    program they give against the float SNN); ``coefficient_files``: whether its cost takes a user's TOML file
    (False: only the shipped sets, e.g. a model fitted to them at import); ``encodings``: the input encodings
    its program takes (rate, regular: input spikes; current: the frame itself, as graded spikes); ``float_proxy(snn,
    options)``: the float SNN whose neurons run as the program's do, on which bias calibration measures the rates
    when it calibrates for this chip (``neuro.calibrate``; None: the converted SNN itself)."""

    name: str
    title: str                        # how messages name it, e.g. "Loihi"
    compile: Callable[..., Program]
    limits: Mapping[str, Any]
    coefficients: Mapping[str, CoefficientSet]
    options: Sequence[Option] = ()
    published: Sequence[PublishedPoint] = ()
    wide_options: Mapping[str, Any] = field(default_factory=dict)
    coefficient_files: bool = True
    encodings: Sequence[str] = SPIKE_ENCODINGS   # the input encodings its program takes ("current": graded input, e.g. Loihi 2)
    float_proxy: Callable[[SNN, Mapping[str, Any]], SNN] | None = None

    def __post_init__(self):
        if not self.coefficients:
            raise NeuroError(f"chip {self.name!r} has no coefficient set: ship at least one TOML file")
        self.check_options(self.wide_options, f"chip {self.name!r}'s wide_options")

    @property
    def default_coefficients(self) -> str:
        return next(iter(self.coefficients))

    def check_options(self, given: Mapping[str, Any], where: str) -> dict:
        """Every declared option, ``given`` ones checked and the rest at their defaults."""
        known = {o.name: o for o in self.options}
        for key in given.keys() - known.keys():
            raise NeuroError(f"{where}: the {self.title} chip has no option {key!r}: its options are "
                             f"{', '.join(known) or 'none'} (neuro chips lists them)")
        return {name: o.check(given[name], where) if name in given else o.default for name, o in known.items()}

    def parse_options(self, pairs: Sequence[str]) -> dict:
        """``--chip-option key=value`` texts as checked options."""
        known, given = {o.name: o for o in self.options}, {}
        for pair in pairs:
            key, eq, text = pair.partition("=")
            if not eq:
                raise NeuroError(f"--chip-option {pair!r}: give key=value, e.g. {self._example()}")
            if key not in known:
                self.check_options({key: text}, "--chip-option")
            given[key] = known[key].parse(text, "--chip-option")
        return self.check_options(given, "--chip-option")

    def _example(self) -> str:
        return f"{self.options[0].name}={self.options[0].default}" if self.options else "name=value"

    def coefficient_set(self, spec: str | CoefficientSet | None = None, base_dir: Path | None = None) \
            -> CoefficientSet:
        """A shipped set by name, a TOML file by path (``.toml``, relative to ``base_dir``), or the default."""
        from chips.coefficients import find
        if not self.coefficient_files and spec not in (None, "", *self.coefficients, *self.coefficients.values()):
            raise NeuroError(f"the {self.title} cost model takes only its own coefficient sets "
                             f"({', '.join(self.coefficients)}), not {getattr(spec, 'name', spec)!r}: use one of them")
        return find(self.coefficients, spec, self.title, base_dir)
