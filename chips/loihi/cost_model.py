"""Loihi 1 cost model: time per step and energy per inference from emulated activity and the mapping."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from chips.api import CoefficientSet
from chips.coefficients import find, load_dir
from chips.compiling import LayerActivity, layer_activity
from chips.loihi.mapping import (CHIP_CORES, CORE_COMPARTMENTS, CORE_INPUT_AXONS, CORE_OUTPUT_AXONS, CORE_SYNAPSE_WORDS,
                                 CORES_PER_TILE, WORD_BITS, LayerMap, LoihiMapping)
from chips.loihi.neuron import WEIGHT_BITS
from neuro.errors import NeuroError

if TYPE_CHECKING:
    from chips.loihi.compile import LoihiProgram

# --- cost model: time per step, energy per inference, frames/s (issue 3 item 6; docs/chips/loihi.md "Cost model") -
# =================================================================================================================
#
# Cores only (DAV18 / SANA-FE event costs): per step and core, synaptic ops, neuron updates (active or inactive),
# spikes out and packets (one per spike and destination core), each with an energy and a time. A core works
# serially, so its time is the sum of its events' times; the spiking phase takes the slowest core's time plus the
# mesh-wide barrier. A layer's activity is spread evenly over its cores. A neuron update is active when the neuron
# gets synaptic input that step (input spread at random over the layer's neurons: a fraction 1 - exp(-synops /
# neurons)) or when its layer has a bias (v changes every step).
#
# Calibrated (what the cores-only model leaves out; docs "Calibrated model"): the spiking phase scaled by a factor
# fitted to NxTF's measured MNIST spiking phase; the x86 (Lakemont) management phase every step; the x86 injecting
# the host's input spikes every step; the x86 cores' power while a model runs; static power. An inference is
# ``steps_per_inference`` steps, run alone (latency = steps x step time, frames/s = 1 / latency).

# The coefficient sets are data (chips/loihi/coefficients/*.toml, each value with its source): the event costs of
# DAV18 and SANA-FE, and the overheads the cores-only model lacks (barrier, static and x86 power, management,
# injection, the fitted spiking-phase factor). A user's file with the same keys is accepted by path.
SETS = load_dir(Path(__file__).with_name("coefficients"), "loihi", "dav18")

# Bounds of the uncertain overheads (published figures, used only for the ranges below)
BOARD_IDLE_W = 0.029                   # Loihi board idle from boot, leakage + idle x86 (Blouw et al. 2019 Table 1)
BLOUW_DYNAMIC_W = 0.081                # Blouw et al. 2019 Table 1: all of KWS's dynamic power (x86 + cores)
CIFAR_IO_PER_STEP_S = 10e-3 / 512      # NxTF CIFAR tutorial: per-image readout + reset + input "around 10 ms every
#                                        512 time steps" (notebook text), amortised per step


@dataclass(frozen=True)
class Coefficients:
    """Energy (J) and time (s) per event; "active"/"inactive" neuron updates, packets = spike messages; and the
    overheads: spiking-phase factor, end-of-step barrier (1 and 32 tiles), static and x86 power per chip, x86
    management per step, x86 time per injected input spike. The keys of the TOML files."""

    name: str
    e_synop_dense: float
    e_synop_conv: float
    t_synop_dense: float
    t_synop_conv: float
    e_active: float
    e_inactive: float
    t_active: float
    t_inactive: float
    e_spike: float
    t_spike: float
    e_packet: float
    t_packet: float
    e_hop_x: float
    e_hop_y: float
    spiking_factor: float
    barrier_1_tile_s: float
    barrier_32_tiles_s: float
    static_w: float
    x86_w: float
    management_s: float
    inject_s: float

    @classmethod
    def of(cls, s: CoefficientSet) -> Coefficients:
        """A set read from a TOML file (its keys checked by the loader) as the model's coefficients."""
        for key, value in s.values.items():
            if isinstance(value, list):
                raise NeuroError(f"{s.path or s.name}: {key} must be one number, got a list")
        return cls(s.name, **{k: float(v) for k, v in s.values.items()})


COEFFICIENTS = {name: Coefficients.of(s) for name, s in SETS.items()}
_STOCK = COEFFICIENTS["dav18"]
BARRIER_1_TILE_S, BARRIER_32_TILES_S = _STOCK.barrier_1_tile_s, _STOCK.barrier_32_tiles_s
CHIP_STATIC_W, X86_ACTIVE_W = _STOCK.static_w, _STOCK.x86_w
MANAGEMENT_S, INJECT_S = _STOCK.management_s, _STOCK.inject_s
SPIKING_FACTOR = {name: c.spiking_factor for name, c in COEFFICIENTS.items()}


def chip_limits() -> dict:
    """Key limits of a Loihi 1 chip (DAV18 [sec]), as listed by `neuro chips`."""
    return {"cores per chip": CHIP_CORES, "compartments per core": CORE_COMPARTMENTS,
            "input axons per core": CORE_INPUT_AXONS, "output axons per core": CORE_OUTPUT_AXONS,
            "synaptic memory per core (KB)": CORE_SYNAPSE_WORDS * WORD_BITS // 8 // 1024,
            "weight bits": WEIGHT_BITS}


def coefficients(spec: Coefficients | CoefficientSet | str | None = "dav18") -> Coefficients:
    """The coefficients of a shipped set by name (None: dav18), of a ``CoefficientSet`` (e.g. a user's file), or
    ``spec`` itself; an unknown name is a one-line NeuroError listing the names."""
    if isinstance(spec, Coefficients):
        return spec
    s = find(SETS, spec, "Loihi")
    return COEFFICIENTS[s.name] if SETS.get(s.name) is s else Coefficients.of(s)


def barrier_s(tiles: int, one_tile_s: float = BARRIER_1_TILE_S, all_tiles_s: float = BARRIER_32_TILES_S) -> float:
    """End-of-step barrier: DAV18 Table 2's 113 ns (1 tile) to 465 ns (32 tiles), linear in the tiles used;
    beyond one chip extrapolated on the same line (no published point)."""
    return one_tile_s + (all_tiles_s - one_tile_s) * (tiles - 1) / (32 - 1)


def activity_from_result(program: LoihiProgram, result) -> list[LayerActivity]:
    """Per-layer activity per step and image from a ``SimResult`` of ``program`` run on the engine."""
    return layer_activity(program.snn, result)


@dataclass(frozen=True)
class Overheads:
    """The constants the cores-only model lacks (the dav18 set's by default; the TOML files give the sources);
    ``spiking_factor`` None takes the coefficient set's fitted factor."""

    static_w: float = CHIP_STATIC_W
    x86_w: float = X86_ACTIVE_W
    spiking_factor: float | None = None
    management_s: float = MANAGEMENT_S
    inject_s: float = INJECT_S


# Unpublished, disputed or chosen constants: (low, high, why); the point is the coefficient set's value (a range
# is widened to take in a user set's point). spiking_factor's low is absolute (1: the published per-event times
# alone), its high a multiple of the fitted factor. Every output grows with every constant, so the all-low and
# all-high sets bound the outputs (frames/s: low from all-high).
UNCERTAIN = {
    "static_w": (BOARD_IDLE_W, CHIP_STATIC_W, "static power per chip: Blouw 2019's whole-board idle 29 mW (leakage "
                 "+ idle x86) vs Frady 2020's 104 mW per chip at 32 chips"),
    "x86_w": (0.0, BLOUW_DYNAMIC_W, "x86 active power per chip: Blouw 2019 says it could be left out (0) or is up "
              "to all of KWS's 81 mW dynamic power"),
    "spiking_factor": (1.0, 2.0, "spiking-phase factor: 1 = the published per-event times alone (no fit); 2x the "
                       "fitted one: NxTF CIFAR's spiking phase varies 100-200 us by board and sample"),
    "management_s": (MANAGEMENT_S / 2, CIFAR_IO_PER_STEP_S, "x86 management per step: half of NxTF MNIST's 3.44 us "
                     "(our choice) to NxTF CIFAR's ~10 ms of image I/O per 512 steps (19.5 us)"),
    "inject_s": (INJECT_S / 10, INJECT_S * 10, "x86 time per injected input spike: our choice [unsure], 10x either "
                 "way"),
}


@dataclass(frozen=True)
class LoihiCost:
    """Time and energy of one inference under the calibrated model; ``energy_j`` splits it by component (J per
    inference: synops, neurons, spikes, network = the cores' events; x86; static). ``cores_only``: the same
    figures from the cores' events, barrier and static power alone. ``ranges``: (low, high) of
    energy_per_inference_j, frames_per_second and latency_s over ``UNCERTAIN``; ``assumptions``: one line per
    uncertain constant; ``calibration``: the held-out misses (docs/chips/loihi.md "Calibration")."""

    coefficients: str
    cores: int
    chips: int
    step_s: float
    slowest_core_s: float
    barrier_s: float
    latency_s: float
    frames_per_second: float
    energy_per_inference_j: float
    dynamic_energy_per_inference_j: float
    energy_j: dict
    step_parts_s: dict = field(default_factory=dict)
    cores_only: dict = field(default_factory=dict)
    ranges: dict = field(default_factory=dict)
    assumptions: list = field(default_factory=list)
    calibration: str = ""

    @property
    def variants(self) -> dict[str, dict]:
        """The same inference under other assumptions, for the report's "what flips the verdict"."""
        return {"cores only (no x86 management, input injection or x86 power; the uncalibrated model)":
                self.cores_only}


def _layer_step(m: LayerMap, act: LayerActivity, c: Coefficients) -> tuple[dict, float]:
    """Energy per step by component (J) of one layer, and the time per step (s) of each of its cores."""
    if act.synops < 0 or act.spikes < 0 or act.spikes > m.neurons:
        raise NeuroError(f"{m.name}: activity {act} is impossible: give synops >= 0 and 0 <= spikes <= "
                         f"{m.neurons} (its neurons) per step")
    active = m.neurons if m.biased else m.neurons * -np.expm1(-act.synops / m.neurons)
    e_syn, t_syn = (c.e_synop_dense, c.t_synop_dense) if m.kind == "dense" else (c.e_synop_conv, c.t_synop_conv)
    packets = act.spikes * m.packets_per_spike
    energy = dict(synops=act.synops * e_syn,
                  neurons=active * c.e_active + (m.neurons - active) * c.e_inactive,
                  spikes=act.spikes * c.e_spike,
                  network=packets * (c.e_packet + m.hops_x * c.e_hop_x + m.hops_y * c.e_hop_y))
    time = (act.synops * t_syn + active * c.t_active + (m.neurons - active) * c.t_inactive
            + act.spikes * c.t_spike + packets * c.t_packet) / m.cores
    return energy, time


def _check(mapping: LoihiMapping, activity: list[LayerActivity], steps_per_inference) -> None:
    if len(activity) != len(mapping.layers):
        raise NeuroError(f"{len(activity)} layer activities for {len(mapping.layers)} mapped layers: "
                         "give one per layer")
    if isinstance(steps_per_inference, bool) or not isinstance(steps_per_inference, (int, np.integer)) \
            or steps_per_inference < 1:
        raise NeuroError(f"steps_per_inference is {steps_per_inference!r}: give an integer >= 1")


def injected_spikes(mapping: LoihiMapping, activity: list[LayerActivity]) -> float:
    """Input spikes per step the x86 injects: the first layer's synaptic ops / its mean fan-out."""
    first = mapping.layers[0]
    return activity[0].synops * first.inputs / first.synapses if first.synapses else 0.0


def evaluate(mapping: LoihiMapping, activity: list[LayerActivity], steps: int,
             name: Coefficients | CoefficientSet | str = "dav18", injected: float | None = None,
             overheads: Overheads = Overheads()) -> dict:
    """The model's figures (no ranges): step parts, latency, frames/s, energy by component, cores-only figures."""
    c = coefficients(name)
    _check(mapping, activity, steps)
    injected = injected_spikes(mapping, activity) if injected is None else injected
    if injected < 0:
        raise NeuroError(f"injected spikes per step is {injected}: give a number >= 0")
    per_layer = [_layer_step(m, a, c) for m, a in zip(mapping.layers, activity)]
    slowest = float(max(t for _, t in per_layer))
    barrier = barrier_s(-(-mapping.cores // CORES_PER_TILE), c.barrier_1_tile_s, c.barrier_32_tiles_s)
    factor = c.spiking_factor if overheads.spiking_factor is None else overheads.spiking_factor
    parts = dict(spiking=factor * slowest + barrier, management=overheads.management_s,
                 injection=injected * overheads.inject_s)
    step = sum(parts.values())
    events = {k: float(steps * sum(e[k] for e, _ in per_layer)) for k in per_layer[0][0]}
    energy = dict(events, x86=steps * step * overheads.x86_w * mapping.chips,
                  static=steps * step * overheads.static_w * mapping.chips)
    bare_step = slowest + barrier
    bare_static = steps * bare_step * c.static_w * mapping.chips
    cores_only = dict(step_s=bare_step, latency_s=steps * bare_step, frames_per_second=1 / (steps * bare_step),
                      dynamic_energy_per_inference_j=sum(events.values()), static_j=bare_static,
                      energy_per_inference_j=sum(events.values()) + bare_static)
    return dict(coefficients=c.name, cores=mapping.cores, chips=mapping.chips, step_s=step, slowest_core_s=slowest,
                barrier_s=barrier, latency_s=steps * step, frames_per_second=1 / (steps * step),
                energy_per_inference_j=sum(energy.values()), dynamic_energy_per_inference_j=sum(energy.values())
                - energy["static"], energy_j=energy, step_parts_s=parts, cores_only=cores_only)


def _value(c: Coefficients, key: str, end: int | None):
    """A constant's point (end None), low (0) or high (1) value under coefficients ``c``."""
    point = getattr(c, key)
    if key == "spiking_factor":
        return point * (1.0 if end is None else [1 / point, 2.0][end])
    return point if end is None else [min, max][end](UNCERTAIN[key][end], point)


def _overheads(c: Coefficients, ends: dict) -> Overheads:
    """Overheads with each constant at its point, low or high end (``ends``: key -> None, 0 or 1)."""
    return Overheads(**{key: _value(c, key, ends.get(key)) for key in UNCERTAIN})


OUTPUTS = ("energy_per_inference_j", "frames_per_second", "latency_s", "dynamic_energy_per_inference_j")


def cost(mapping: LoihiMapping, activity: list[LayerActivity], steps_per_inference: int,
         coefficients_name: Coefficients | CoefficientSet | str | None = "dav18",
         injected: float | None = None) -> LoihiCost:
    """Latency, frames/s and energy per inference of a mapped network with the given per-step activity (calibrated
    model), with ranges, assumptions and the held-out calibration line. ``coefficients_name``: a shipped set's
    name (None: dav18) or a set (``coefficients``). ``injected``: input spikes per step the x86 injects (None:
    from the first layer's synaptic ops)."""
    from chips.loihi.calibration import calibration_line
    c = coefficients(coefficients_name)   # an unknown set is a NeuroError before anything is computed
    estimate = estimate_cost(mapping, activity, steps_per_inference, c, injected)
    return replace(estimate, calibration=calibration_line(c))


def estimate_cost(mapping: LoihiMapping, activity: list[LayerActivity], steps_per_inference: int,
                  coefficients_name: Coefficients | CoefficientSet | str | None = "dav18",
                  injected: float | None = None) -> LoihiCost:
    """``cost`` without the calibration line."""
    c = coefficients(coefficients_name)
    args = (mapping, activity, steps_per_inference, c, injected)
    point = evaluate(*args, overheads=_overheads(c, {}))
    low, high = (evaluate(*args, overheads=_overheads(c, dict.fromkeys(UNCERTAIN, end))) for end in (0, 1))
    ranges = {k: (min(low[k], high[k]), max(low[k], high[k])) for k in OUTPUTS}
    assumptions = []
    for key, (_, _, why) in UNCERTAIN.items():
        at = [evaluate(*args, overheads=_overheads(c, {key: end})) for end in (0, 1)]
        effect = ", ".join(f"{k} x{at[0][k] / point[k]:.2g} to x{at[1][k] / point[k]:.2g}" for k in OUTPUTS[:2])
        assumptions.append(f"{key}: point {_value(c, key, None):.4g}, low {_value(c, key, 0):.4g}, high "
                           f"{_value(c, key, 1):.4g} ({why}); {effect}")
    return LoihiCost(**point, ranges=ranges, assumptions=assumptions)
