"""The comparison the report answers: each chip model at equal accuracy against the same ANN on CPUs and GPUs.

``references(run, net)`` gives every reference platform with images/s, latency, energy per image and power,
each a ``Value`` with its provenance: measured (or recorded) where a counter existed, else **estimated** with a
low-high range (``neuro.baselines.estimate``: the measured CPU time x a package-power range; GPUs from the
network's own FLOPs and bytes against published peaks). ``chip_rows(run)`` gives every emulated system at its
first step of equal accuracy (or why it has none). ``ratio`` divides two numbers and their ranges.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from neuro import graph
from neuro.baselines import estimate
from neuro.baselines.results import ESTIMATED, MEASURED, Value
from neuro.results import ChipRun, Results

#: Batches of the estimated GPUs (the issue's grid); the report shows batch 1 and the best of them.
GPU_BATCHES = (1, 16, 256, 4096)
#: The GPUs estimated when none was measured or recorded: datacenter, edge, and Blouw et al. 2019's card.
ESTIMATED_GPUS = ("H100-SXM", "Jetson-AGX-Orin", "Quadro-K4000")


@dataclass
class Reference:
    """One platform at one batch size: the ANN's images/s, latency per batch, energy per image and power."""

    label: str
    kind: str            # "cpu" or "gpu"
    batch: int
    images_per_s: Value
    latency: Value       # one batch, s
    energy: Value        # J per image
    power: Value         # W while it runs
    note: str = ""       # the formula and the held-out check of an estimate


@dataclass
class ChipRow:
    """An emulated system at its first step of equal accuracy (``step`` None: it never gets there)."""

    name: str
    run: ChipRun
    step: int | None
    accuracy: float                  # at ``step``, else the best over the run
    interval: tuple[float, float]    # binomial 95 % interval of ``accuracy``
    energy: Value | None             # J per image, None for the float SNN (no chip)
    frames_per_second: Value | None
    latency: Value | None
    power: Value | None              # energy / latency: the mean power while it classifies one image
    reach: str = ""                  # how (or why not) it reached equal accuracy, as ``neuro run`` recorded it


def wilson_interval(correct: int, n: int, z: float = 1.959964) -> tuple[float, float]:
    """Wilson score 95 % interval of a binomial proportion (Wilson 1927): honest near 0 and 1, where the
    normal approximation breaks."""
    if n <= 0:
        return 0.0, 1.0
    p = correct / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half)


def bounds(v: Value) -> tuple[float, float]:
    """(low, high) of a number: its range, or the number itself when it has none."""
    return (v.low, v.high) if v.low is not None else (v.value, v.value)


def ratio(num: Value, den: Value, unit: str = "x") -> Value:
    """num / den with the widest range their ranges allow; provenance of both (e.g. "modeled / estimated")."""
    if num.value is None or den.value is None or den.value == 0:
        return Value(None, unit, "n/a", "a number is missing")
    (nl, nh), (dl, dh) = bounds(num), bounds(den)
    provenance = num.provenance if num.provenance == den.provenance else f"{num.provenance} / {den.provenance}"
    return Value(num.value / den.value, unit, provenance, "", nl / dh, nh / dl)


def _estimated(r: estimate.Range, unit: str, note: str) -> Value:
    return Value(r.point, unit, ESTIMATED, note, r.low, r.high)


# --- references ------------------------------------------------------------------------------------------

def references(run: Results, net: graph.Network) -> list[Reference]:
    """Batch 1 and the best-throughput batch of every measured or recorded platform (CPU energy estimated
    where no counter was readable), plus estimated GPUs when no GPU was measured or recorded."""
    refs = []
    for b in run.baselines:
        where = "" if b.source == "measured" else f", recorded {b.results.date[:10]}"
        for p in b.results.platforms:
            if not p.points:
                continue
            best = max(p.points, key=lambda pt: pt.throughput.value)
            for pt in [pt for pt in p.points if pt.batch == 1][:1] + ([best] if best.batch != 1 else []):
                refs.append(_measured(p, pt, where))
    if not any(r.kind == "gpu" for r in refs):
        work = estimate.network_work(net)
        for gpu in ESTIMATED_GPUS:
            points = [estimate.estimate_gpu(work, gpu, b) for b in GPU_BATCHES]
            best = max(points, key=lambda e: e.images_per_s.point)
            for e in [points[0]] + ([best] if best.batch != 1 else []):
                refs.append(_gpu_estimate(e))
    return refs


def _measured(p, pt, where: str) -> Reference:
    kind = "gpu" if p.name.startswith("gpu") else "cpu"
    label = f"{p.name} batch {pt.batch}{where}"
    seconds = pt.latency_p50.value / 1e3                      # one batch, p50
    latency = Value(seconds, "s", pt.latency_p50.provenance, "one batch, p50")
    if pt.energy_per_image.value is not None:
        energy = pt.energy_per_image
        power = Value(energy.value * pt.throughput.value, "W", energy.provenance, "energy/image x images/s")
        return Reference(label, kind, pt.batch, pt.throughput, latency, energy, power)
    e = estimate.estimate_cpu(1 / pt.throughput.value, p.threads or 1, p.device, pt.batch)
    note = f"energy estimated: {e.formula}; {e.check_note}"
    return Reference(label, kind, pt.batch, pt.throughput, latency,
                     _estimated(e.energy_per_image_j, "J/image", note), _estimated(e.power_w, "W", note), note)


def _gpu_estimate(e: estimate.Estimate) -> Reference:
    note = f"{e.formula}; held-out checks: {e.check_note}" + "".join(f"; {n}" for n in e.notes)
    return Reference(f"{e.device} batch {e.batch} (estimated)", "gpu", e.batch,
                     _estimated(e.images_per_s, "images/s", note), _estimated(e.latency_s, "s", note),
                     _estimated(e.energy_per_image_j, "J/image", note), _estimated(e.power_w, "W", note), note)


# --- chips ------------------------------------------------------------------------------------------------

def chip_rows(run: Results) -> list[ChipRow]:
    """Every emulated system at its first step of equal accuracy (as recorded by ``neuro run``)."""
    rows = []
    for c in run.chips.values():
        recorded = c.cost.get("equal_accuracy_step")
        step = int(recorded.value) if recorded is not None and recorded.value else None
        reach = recorded.note if recorded is not None else "not recorded (a results file from before this version)"
        acc = float(c.accuracy_by_step[step - 1]) if step else float(c.accuracy_by_step.max())
        suffix = "_at_equal_accuracy"
        energy, fps, latency = (c.cost.get(k + suffix) if step else None
                                for k in ("energy_per_image", "frames_per_second", "latency"))
        power = None
        if energy is not None and latency is not None:
            power = ratio(energy, latency, "W")
            power.note = "energy per image / latency: the mean power while classifying one image"
        rows.append(ChipRow(c.name, c, step, acc, wilson_interval(round(acc * c.n_images), c.n_images),
                            energy, fps, latency, power, reach))
    return rows


def measured_or_recorded(v: Value) -> bool:
    return v.provenance in (MEASURED, "recorded")
