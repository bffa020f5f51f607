"""Loihi 1 cost model: time per step and energy per inference from emulated activity and the mapping."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from chips.loihi.mapping import (CHIP_CORES, CORE_COMPARTMENTS, CORE_INPUT_AXONS, CORE_OUTPUT_AXONS, CORE_SYNAPSE_WORDS,
                                 CORES_PER_TILE, WORD_BITS, LayerMap, LoihiMapping)
from chips.loihi.neuron import WEIGHT_BITS
from neuro.errors import NeuroError
from neuro.snn import Neurons, Synapses

if TYPE_CHECKING:
    from chips.loihi.compile import LoihiProgram

# --- cost model: time per step, energy per inference, frames/s (issue 3 item 6; docs/chips/loihi.md "Cost model") -
# =================================================================================================================
#
# Per step and core: synaptic ops, neuron updates (active or inactive), spikes out and packets (one per spike
# and destination core), each with an energy and a time. A core works serially, so its time is the sum of its
# events' times; the step takes the slowest core's time plus the mesh-wide barrier. Energy per step = the sum of
# all events' energies + static power x step time. A layer's activity is spread evenly over its cores. A neuron
# update is active when the neuron gets synaptic input that step (with input spread at random over the layer's
# neurons, a fraction 1 - exp(-synops / neurons)) or when its layer has a bias (v changes every step). Host I/O
# (injecting the input, reading the output) and the x86 cores are not modelled; an image is one inference of
# ``steps_per_inference`` steps, run alone (latency = steps x step time, frames/s = 1 / latency).

BARRIER_1_TILE_S, BARRIER_32_TILES_S = 113e-9, 465e-9   # end-of-step barrier, 1 and 32 tiles (DAV18 Table 2 [sec])
CHIP_STATIC_W = 0.104                  # static power per Loihi 1 chip: 3.34 W for 32 chips (Frady et al. 2020 [sec])


@dataclass(frozen=True)
class Coefficients:
    """Energy (J) and time (s) per event; "active"/"inactive" neuron updates, packets = spike messages."""

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


COEFFICIENTS = {
    # DAV18 Table 2 (pre-silicon, 0.75 V): synaptic op 23.6 pJ (min) / 3.5 ns (max); neuron update 81 / 52 pJ,
    # 8.4 / 5.3 ns (active / inactive); within-tile spike 1.7 pJ (charged per packet); tile hop 3.0 (E-W) /
    # 4.0 (N-S) pJ. The table gives no time for spikes or packets: 0.
    "dav18": Coefficients("dav18", 23.6e-12, 23.6e-12, 3.5e-9, 3.5e-9, 81e-12, 52e-12, 8.4e-9, 5.3e-9,
                          0.0, 0.0, 1.7e-12, 0.0, 3.0e-12, 4.0e-12),
    # SANA-FE arch/loihi.yaml (calibrated on Loihi): dense synapse 35.5 pJ / 3.8 ns, conv synapse 24.0 pJ / 3.1 ns;
    # every neuron accessed 51.2 pJ / 6.0 ns, an active one + update 21.6 pJ / 3.7 ns; spike out 69.3 pJ / 30 ns;
    # axon out (per packet) 111 pJ / 5.1 ns; hop 3.0-4.2 pJ, taken as 3.0 E-W and 4.2 N-S [unsure which is which].
    "sana-fe": Coefficients("sana-fe", 35.5e-12, 24.0e-12, 3.8e-9, 3.1e-9, 51.2e-12 + 21.6e-12, 51.2e-12,
                            6.0e-9 + 3.7e-9, 6.0e-9, 69.3e-12, 30e-9, 111e-12, 5.1e-9, 3.0e-12, 4.2e-12),
}


def chip_limits() -> dict:
    """Key limits of a Loihi 1 chip (DAV18 [sec]), as listed by `neuro chips`."""
    return {"cores per chip": CHIP_CORES, "compartments per core": CORE_COMPARTMENTS,
            "input axons per core": CORE_INPUT_AXONS, "output axons per core": CORE_OUTPUT_AXONS,
            "synaptic memory per core (KB)": CORE_SYNAPSE_WORDS * WORD_BITS // 8 // 1024,
            "weight bits": WEIGHT_BITS, "coefficient sets": ", ".join(COEFFICIENTS)}


def coefficients(name: str) -> Coefficients:
    """A coefficient set by name, or a one-line NeuroError listing the names."""
    if name not in COEFFICIENTS:
        raise NeuroError(f"unknown Loihi coefficient set {name!r}: give one of {', '.join(COEFFICIENTS)}")
    return COEFFICIENTS[name]


def barrier_s(tiles: int) -> float:
    """End-of-step barrier: DAV18 Table 2's 113 ns (1 tile) to 465 ns (32 tiles), linear in the tiles used;
    beyond one chip extrapolated on the same line (no published point)."""
    return BARRIER_1_TILE_S + (BARRIER_32_TILES_S - BARRIER_1_TILE_S) * (tiles - 1) / (32 - 1)


@dataclass(frozen=True)
class LayerActivity:
    """A layer's mean activity per step of one inference: synaptic ops into it and spikes out of it."""

    synops: float
    spikes: float


def activity_from_result(program: LoihiProgram, result) -> list[LayerActivity]:
    """Per-layer activity per step and image from a ``SimResult`` of ``program`` run on the engine."""
    per = max(result.n_images, 1) * result.timesteps
    syn = [c.synops for c, op in zip(result.layers, program.snn.ops) if isinstance(op, Synapses)]
    spk = [c.spikes for c, op in zip(result.layers, program.snn.ops) if isinstance(op, Neurons)]
    return [LayerActivity(s / per, k / per) for s, k in zip(syn, spk)]


@dataclass(frozen=True)
class LoihiCost:
    """Time and energy of one inference; ``energy_j`` splits it by component (J per inference)."""

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


def cost(mapping: LoihiMapping, activity: list[LayerActivity], steps_per_inference: int,
         coefficients_name: str = "dav18") -> LoihiCost:
    """Latency, frames/s and energy per inference of a mapped network with the given per-step activity."""
    c = coefficients(coefficients_name)
    if len(activity) != len(mapping.layers):
        raise NeuroError(f"{len(activity)} layer activities for {len(mapping.layers)} mapped layers: "
                         "give one per layer")
    if isinstance(steps_per_inference, bool) or not isinstance(steps_per_inference, (int, np.integer)) \
            or steps_per_inference < 1:
        raise NeuroError(f"steps_per_inference is {steps_per_inference!r}: give an integer >= 1")
    per_layer = [_layer_step(m, a, c) for m, a in zip(mapping.layers, activity)]
    slowest = float(max(t for _, t in per_layer))
    barrier = barrier_s(-(-mapping.cores // CORES_PER_TILE))
    step = slowest + barrier
    energy = {k: float(steps_per_inference * sum(e[k] for e, _ in per_layer)) for k in per_layer[0][0]}
    dynamic = sum(energy.values())
    energy["static"] = steps_per_inference * step * CHIP_STATIC_W * mapping.chips
    latency = steps_per_inference * step
    return LoihiCost(c.name, mapping.cores, mapping.chips, step, slowest, barrier, latency, 1 / latency,
                     dynamic + energy["static"], dynamic, energy)
