"""The report: ``report.md`` and PNG figures drawn from one or more results files (``neuro.results``).

Sections: the runs; accuracy vs time step; the CPU/GPU baselines; energy per inference vs accuracy;
frames/s per platform; the gap table (each chip model against the CPU and the GPU at equal
accuracy); the published points; a generated verdict. Every number carries its provenance
(measured, modeled, recorded, published, estimated); a number that does not exist says why.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np

import chips
from neuro import plots, results
from neuro.atomic import atomic_path
from neuro.baselines.results import NOT_MEASURABLE, Platform, Point, Value
from neuro.results import PUBLISHED, ChipRun, Results

#: "Equal accuracy": an SNN matches the ANN once it is within this many percentage points of it.
EQUAL_ACCURACY_POINTS = 0.5
#: The chip models the question is about; each gets a gap-table row whether or not it ran.
QUESTION_CHIPS = ("truenorth", "loihi")


@dataclass(frozen=True)
class PublishedPoint:
    """A number from a publication (REFERENCES.md), never measured here."""

    system: str
    task: str
    accuracy: float | None      # fraction
    energy_j: float | None      # per inference
    fps: tuple[float, float] | None  # frames/s, (low, high); low == high for one number
    note: str
    source: str


PUBLISHED_POINTS = (
    PublishedPoint("TrueNorth, 64-copy ensemble", "MNIST", 0.9942, 121e-6, None,
                   "other copies of the paper say 108 uJ", "Esser et al. 2015, NeurIPS (ESS15)"),
    PublishedPoint("TrueNorth, 1 copy", "MNIST", 0.927, 0.408e-6, None,
                   "other copies of the paper say 0.268 uJ", "Esser et al. 2015, NeurIPS (ESS15)"),
    PublishedPoint("TrueNorth, one chip", "8 data sets (vision, speech)", None, None, (1200, 2600),
                   "25-275 mW, > 6,000 frames/s/W", "Esser et al. 2016, PNAS 113:11441 (ESS16)"),
    PublishedPoint("Loihi", "keyword spotting 390-256-256-29, batch 1", None, 0.27e-3, (296, 296),
                   "idle-subtracted dynamic energy", "Blouw et al. 2019, Table 1"),
    PublishedPoint("Quadro K4000 GPU", "keyword spotting 390-256-256-29, batch 1", None, 29.8e-3, (770, 770),
                   "idle-subtracted dynamic energy", "Blouw et al. 2019, Table 1"),
    PublishedPoint("Xeon E5-2630 CPU", "keyword spotting 390-256-256-29, batch 1", None, 6.3e-3, (1814, 1814),
                   "idle-subtracted dynamic energy", "Blouw et al. 2019, Table 1"),
    PublishedPoint("Loihi (NxTF)", "MNIST 4-conv net, 512 steps/image", 0.9844, None, (1 / 29.4e-3, 1 / 29.4e-3),
                   "29.4 ms per image (frames/s = 1 / 29.4 ms)", "Intel NxTF tutorial notebook outputs"),
    PublishedPoint("H100-SXM", "ImageNet ResNet-50, offline", None, None, (88.7e3, 88.7e3),
                   "a far larger network than the MNIST CNN", "MLPerf Inference v4.0"),
    PublishedPoint("Syntiant NDP9120", "CIFAR-10 ResNet-8", None, 102e-6, (62, 62), "",
                   "MLPerf Tiny v1.1"),
)

COLORS = {"measured": "C0", "recorded": "C1", "modeled": "C2", PUBLISHED: "0.45"}


@dataclass
class Reference:
    """A baseline platform at one batch size, as the gap table and the figures use it."""

    label: str
    source: str          # "measured" or "recorded"
    platform: Platform
    point: Point


def write_report(results_paths, out_dir) -> Path:
    """Read every results file (all must be readable), write ``out_dir/report.md`` and its figures."""
    runs = [results.read(p) for p in results_paths]
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    figures = {
        "accuracy": _accuracy_figure(runs, out_dir / "accuracy_vs_steps.png"),
        "energy": _energy_figure(runs, out_dir / "energy_vs_accuracy.png"),
        "fps": _fps_figure(runs, out_dir / "frames_per_second.png"),
    }
    text = "\n".join(_markdown(runs, figures)) + "\n"
    path = out_dir / "report.md"
    with atomic_path(path) as tmp:
        tmp.write_text(text)
    return path


# --- numbers ---------------------------------------------------------------------------------------------

def _fmt(v: Value | None, scale: float = 1.0, unit: str = "", digits: int = 4) -> str:
    """A number with its provenance, or why there is none."""
    if v is None:
        return "n/a"
    if v.value is None:
        return v.provenance
    return f"{v.value * scale:.{digits}g}{' ' + unit if unit else ''} ({v.provenance})"


def _rate(v: Value) -> str:
    return v.provenance if v.value is None else f"{v.value:,.0f} ({v.provenance})"


def _pct(fraction: float, provenance: str) -> str:
    return f"{100 * fraction:.2f} % ({provenance})"


def _references(run: Results) -> list[Reference]:
    """Batch 1 and the best-throughput batch of every platform that has points, measured or recorded."""
    refs = []
    for b in run.baselines:
        for p in b.results.platforms:
            if not p.points:
                continue
            best = max(p.points, key=lambda pt: pt.throughput.value)
            chosen = [pt for pt in p.points if pt.batch == 1][:1] + ([best] if best.batch != 1 else [])
            where = "" if b.source == "measured" else f", recorded {b.results.date[:10]}"
            for pt in chosen:
                refs.append(Reference(f"{p.name} batch {pt.batch}{where}", b.source, p, pt))
    return refs


def _steps_to(chip: ChipRun, target: float) -> int | None:
    """First time step (1-based) at which the accuracy reaches ``target``, or None."""
    hit = np.nonzero(chip.accuracy_by_step >= target - 1e-12)[0]
    return int(hit[0]) + 1 if hit.size else None


def _shown_steps(T: int) -> list[int]:
    return sorted({2 ** k for k in range(T.bit_length()) if 2 ** k <= T} | {T})


def _chip_label(name: str) -> str:
    return "float SNN (no chip)" if name == "float" else name


# --- figures ---------------------------------------------------------------------------------------------

def _save(fig, path: Path) -> str:
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)
    return path.name


def _accuracy_figure(runs: list[Results], path: Path) -> str | None:
    curves = {(f"{r.name}: " if len(runs) > 1 else "") + _chip_label(c.name): c.accuracy_by_step
              for r in runs for c in r.chips.values()}
    if not curves:
        return None
    ann = next((r.conversion["ann_accuracy"] for r in runs if r.conversion), None)
    n = next(iter(c.n_images for r in runs for c in r.chips.values()))
    plots.accuracy_vs_steps(curves, path, ann_accuracy=ann,
                            title=f"accuracy after each time step ({n} test images; emulated, modeled)")
    return path.name


def _energy_figure(runs: list[Results], path: Path) -> str:
    fig, ax = plt.subplots(figsize=(6.4, 4.2), dpi=120)
    plotted, unknown = set(), []

    def point(x, y, label, provenance, marker):
        ax.scatter([x], [100 * y], color=COLORS[provenance], marker=marker, s=50, zorder=3,
                   label=provenance if provenance not in plotted else None)
        ax.annotate(label, (x, 100 * y), textcoords="offset points", xytext=(6, 4), fontsize=7)
        plotted.add(provenance)

    for r in runs:
        ann = r.conversion.get("ann_accuracy")
        for ref in _references(r):
            e = ref.point.energy_per_image
            if ann is not None and e.value is not None:
                point(e.value, ann, ref.label, ref.source, "o")
            elif e.value is None:
                unknown.append(ref.label)
        for c in r.chips.values():
            e = c.cost.get("energy_per_image")
            if e is not None and e.value is not None:
                point(e.value, float(c.accuracy_by_step[-1]), _chip_label(c.name), e.provenance, "s")
    for p in PUBLISHED_POINTS:
        if p.accuracy is not None and p.energy_j is not None:
            point(p.energy_j, p.accuracy, f"{p.system} (MNIST)", PUBLISHED, "^")
    ax.set_xscale("log")
    ax.set_xlabel("energy per inference (J, log scale)")
    ax.set_ylabel("accuracy (%)")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(loc="lower right", fontsize=8, title="provenance", title_fontsize=8)
    ax.set_title("energy per inference vs accuracy, MNIST (only where energy is known)", fontsize=9)
    if unknown:
        ax.text(0.02, 0.5, "energy not measurable here:\n" + "\n".join(unknown), transform=ax.transAxes,
                fontsize=7, va="center", color="0.3")
    lo, hi = ax.get_xlim()
    ax.set_xlim(lo, hi * 30)  # room for the labels
    return _save(fig, path)


def _fps_figure(runs: list[Results], path: Path) -> str:
    bars = []  # (label, low, high, provenance)
    for r in runs:
        for ref in _references(r):
            v = ref.point.throughput.value
            bars.append((f"{ref.label} (MNIST CNN)", v, v, ref.source))
    for p in PUBLISHED_POINTS:
        if p.fps is not None:
            bars.append((f"{p.system}: {p.task}", *p.fps, PUBLISHED))
    fig, ax = plt.subplots(figsize=(7.6, 0.42 * len(bars) + 1.4), dpi=120)
    y = np.arange(len(bars))[::-1]
    for yi, (label, lo, hi, prov) in zip(y, bars):
        ax.barh(yi, lo, color=COLORS[prov], height=0.6)
        if hi > lo:
            ax.barh(yi, hi - lo, left=lo, color=COLORS[prov], alpha=0.4, height=0.6)
        ax.text(hi * 1.15, yi, f"{lo:,.0f}" + (f"-{hi:,.0f}" if hi > lo else ""), va="center", fontsize=7)
    ax.set_yticks(y, [b[0] for b in bars], fontsize=7)
    ax.set_xscale("log")
    ax.set_xlim(1, max(b[2] for b in bars) * 20)
    ax.set_xlabel("frames (images) per second, log scale")
    ax.grid(True, axis="x", which="both", alpha=0.3)
    handles = [plt.Rectangle((0, 0), 1, 1, color=COLORS[k]) for k in COLORS if any(b[3] == k for b in bars)]
    ax.legend(handles, [k for k in COLORS if any(b[3] == k for b in bars)], loc="lower right", fontsize=8,
              title="provenance", title_fontsize=8)
    ax.set_title("frames/s per platform (the networks differ: see the labels)", fontsize=9)
    return _save(fig, path)


# --- markdown --------------------------------------------------------------------------------------------

def _markdown(runs: list[Results], figures: dict) -> list[str]:
    lines = ["# Neuromorphic chips vs CPU and GPU: report", "",
             "Provenance of every number: **measured** (in the run named), **recorded** (measured earlier, "
             "read from a file), **modeled** (computed from the emulator's activity counts), **estimated** "
             "(a formula, given), **published** (from a paper or benchmark, never measured here).", ""]
    lines += _runs_section(runs)
    lines += _accuracy_section(runs, figures["accuracy"])
    lines += _baselines_section(runs)
    lines += ["## Energy per inference vs accuracy", "",
              f"![energy per inference vs accuracy]({figures['energy']})", "",
              "Only points whose energy is known are drawn; energy that is not measurable here is listed as such "
              "in the baselines table above, never as a number.", ""]
    lines += ["## Frames per second", "", f"![frames per second]({figures['fps']})", ""]
    lines += _gap_section(runs)
    lines += _published_section()
    lines += _verdict(runs)
    return lines


def _runs_section(runs: list[Results]) -> list[str]:
    lines = ["## Runs", "", "| results file | experiment | date | machine | seed | images | versions |",
             "|---|---|---|---|---|---|---|"]
    for r in runs:
        s = r.system
        v = ", ".join(f"{k} {val}" for k, val in s.get("versions", {}).items() if val)
        lines.append(f"| {r.path.name} | {r.name} | {r.date} | {s.get('cpu', '?')}, {s.get('usable_cpus', '?')} usable "
                     f"CPUs, {s.get('os', '?')} | {r.seed} | {r.conversion.get('n_images', 'n/a')} | {v} |")
    return lines + [""]


def _accuracy_section(runs: list[Results], figure: str | None) -> list[str]:
    lines = ["## Accuracy vs time step", ""]
    if figure is None:
        return lines + ["No emulation in these results.", ""]
    lines += [f"![accuracy vs time step]({figure})", ""]
    for r in runs:
        if not r.chips:
            continue
        T = max(c.timesteps for c in r.chips.values())
        steps = _shown_steps(T)
        ann = r.conversion["ann_accuracy"]
        lines += [f"{r.name}: {r.conversion['n_images']} test images; the ANN (float forward pass) scores "
                  f"{_pct(ann, 'measured')}. Accuracy (%, modeled by the emulator) after step:", "",
                  "| system | " + " | ".join(map(str, steps)) + " | synaptic events/image | spikes/image |",
                  "|---|" + "---|" * (len(steps) + 2)]
        for c in r.chips.values():
            acc = [f"{100 * c.accuracy_by_step[t - 1]:.2f}" if t <= c.timesteps else "" for t in steps]
            lines.append(f"| {_chip_label(c.name)} | " + " | ".join(acc) +
                         f" | {_fmt(c.cost.get('synops_per_image'))} | {_fmt(c.cost.get('spikes_per_image'))} |")
        lines.append("")
    return lines


def _baselines_section(runs: list[Results]) -> list[str]:
    lines = ["## CPU and GPU baselines (the same ANN)", "",
             "| platform | device | batch | images/s | latency p50 (ms) | latency p99 (ms) | energy/image (mJ) | "
             "dynamic energy/image (mJ) | estimate (mJ) |", "|---|---|---|---|---|---|---|---|---|"]
    notes = []
    for r in runs:
        for b in r.baselines:
            tag = f"{r.name}, {b.source}" + (f" from {b.file}" if b.file else "")
            for p in b.results.platforms:
                if not p.points:
                    lines.append(f"| {p.name} ({tag}) | {p.status} | | | | | | | |")
                    continue
                for pt in p.points:
                    est = _fmt(pt.energy_per_image_estimate, 1e3) if pt.energy_per_image_estimate else ""
                    lines.append(f"| {p.name} ({tag}) | {p.device} | {pt.batch} | {_rate(pt.throughput)} | "
                                 f"{_fmt(pt.latency_p50)} | {_fmt(pt.latency_p99)} | {_fmt(pt.energy_per_image, 1e3)} "
                                 f"| {_fmt(pt.dynamic_energy_per_image, 1e3)} | {est} |")
                notes.append(f"- {p.name} ({tag}): {p.runtime}; {p.driver + '; ' if p.driver else ''}"
                             f"energy: {p.energy_source}; argmax agreement with the IR: {_fmt(p.agreement, 100, '%')}; "
                             f"settings: window {b.results.settings.get('window_s')} s, warm-up "
                             f"{b.results.settings.get('warmup_s')} s, inputs: {b.results.settings.get('inputs')}; "
                             f"date {b.results.date}.")
    if len(lines) == 4:
        lines.append("| no baselines in these results | | | | | | | | |")
    return lines + [""] + notes + [""]


def _gap_section(runs: list[Results]) -> list[str]:
    lines = ["## The gap at equal accuracy", "",
             f"Equal accuracy: within {EQUAL_ACCURACY_POINTS} percentage points of the ANN on the same images. "
             "Chip rows use the chip model's cost; references use the baselines at batch 1 and at their best batch.",
             "", "| system | accuracy | steps to equal accuracy | energy/inference | frames/s | latency | "
             "energy ratio vs references | frames/s ratio vs references |", "|---|---|---|---|---|---|---|---|"]
    for r in runs:
        ann = r.conversion.get("ann_accuracy")
        refs = _references(r)
        for c in r.chips.values():
            t = _steps_to(c, ann - EQUAL_ACCURACY_POINTS / 100) if ann is not None else None
            steps = f"{t} of {c.timesteps} (modeled)" if t else f"not reached in {c.timesteps} steps"
            e = c.cost.get("energy_per_image")
            energy = _fmt(e, 1e6, "uJ") if e and e.value is not None else f"n/a: {e.note if e else 'no cost'}"
            if c.name == "float":
                syn = c.cost["synops_per_image"]
                energy += f"; {_fmt(syn)} synaptic events/image over {c.timesteps} steps"
            ratio = "n/a: no chip energy" if not (e and e.value) else "; ".join(
                f"{e.value / ref.point.energy_per_image.value:.3g}x {ref.label}" for ref in refs
                if ref.point.energy_per_image.value)
            fps, latency = c.cost.get("frames_per_second"), c.cost.get("latency")
            fps_text = _fmt(fps) if fps else "n/a: no chip timing model"
            latency_text = _fmt(latency, 1e3, "ms") if latency else "n/a: no chip timing model"
            fps_ratio = "; ".join(f"{fps.value / ref.point.throughput.value:.3g}x {ref.label}" for ref in refs
                                  if ref.point.throughput.value) if fps else "n/a: no chip timing model"
            lines.append(f"| {r.name}: {_chip_label(c.name)} | {_pct(c.accuracy_by_step[-1], 'modeled')} at "
                         f"T={c.timesteps} | {steps} | {energy} | {fps_text} | {latency_text} | "
                         f"{ratio or 'n/a: no reference energy measurable'} | {fps_ratio} |")
        for name in QUESTION_CHIPS:
            if name not in r.chips:
                why = ("registered but not run in this experiment (add it to emulation.chips)"
                       if name in chips.available() else "no chip model yet")
                lines.append(f"| {r.name}: {name} | {why} | | | | | | |")
        for ref in refs:
            acc = "ANN: " + _pct(ann, "measured") if ann is not None else "n/a"
            pt = ref.point
            lines.append(f"| {r.name}: {ref.label} | {acc} | - | {_fmt(pt.energy_per_image, 1e6, 'uJ')} | "
                         f"{_rate(pt.throughput)} | {_fmt(pt.latency_p50, unit='ms')} p50 | reference | "
                         "reference |")
        if not any(ref.platform.name.startswith("gpu") for ref in refs):
            lines.append(f"| {r.name}: GPU | no GPU baseline in these results (no GPU measured, none recorded) "
                         "| | | | | | |")
    return lines + [""]


def _published_section() -> list[str]:
    lines = ["## Published points (never measured here)", "",
             "| system | task | accuracy | energy/inference | frames/s | note | source |",
             "|---|---|---|---|---|---|---|"]
    for p in PUBLISHED_POINTS:
        acc = _pct(p.accuracy, PUBLISHED) if p.accuracy is not None else ""
        energy = f"{p.energy_j * 1e6:.4g} uJ ({PUBLISHED})" if p.energy_j is not None else ""
        fps = "" if p.fps is None else (f"{p.fps[0]:,.0f}" if p.fps[0] == p.fps[1] else
                                        f"{p.fps[0]:,.0f}-{p.fps[1]:,.0f}") + f" ({PUBLISHED})"
        lines.append(f"| {p.system} | {p.task} | {acc} | {energy} | {fps} | {p.note} | {p.source} |")
    return lines + [""]


def _verdict(runs: list[Results]) -> list[str]:
    lines = ["## Verdict (generated from the numbers above)", ""]
    for r in runs:
        ann = r.conversion.get("ann_accuracy")
        for c in r.chips.values():
            t = _steps_to(c, ann - EQUAL_ACCURACY_POINTS / 100) if ann is not None else None
            reach = f"comes within {EQUAL_ACCURACY_POINTS} points of it after {t} steps" if t else \
                f"does not come within {EQUAL_ACCURACY_POINTS} points of it in {c.timesteps} steps"
            lines.append(f"- {r.name}, {_chip_label(c.name)}: {_pct(c.accuracy_by_step[-1], 'modeled')} after "
                         f"{c.timesteps} steps on {c.n_images} images against the ANN's {_pct(ann, 'measured')}; it "
                         f"{reach}, with {_fmt(c.cost['synops_per_image'])} synaptic events per image.")
        refs = _references(r)
        for ref in refs:
            pt = ref.point
            energy = (f"{_fmt(pt.energy_per_image, 1e3, 'mJ')} per image" if pt.energy_per_image.value is not None
                      else f"energy {NOT_MEASURABLE} ({pt.energy_per_image.note})")
            lines.append(f"- {r.name}, {ref.label} on {ref.platform.device}: {_rate(pt.throughput)} "
                         f"images/s, {_fmt(pt.latency_p50, unit='ms')} per batch (p50), {energy}.")
        if not any(ref.platform.name.startswith("gpu") for ref in refs):
            lines.append(f"- {r.name}: no GPU number: no GPU was measured in this run and none was recorded.")
        missing = [n for n in QUESTION_CHIPS if n not in r.chips or r.chips[n].cost["energy_per_image"].value is None]
        if missing:
            lines.append(f"- {r.name}: no modeled energy or frames/s for {', '.join(missing)} yet, so the gap at equal "
                         "accuracy cannot be stated from this run; the published chip points (TrueNorth: 99.42 % at "
                         "121 uJ per image, ESS15; Loihi: 98.44 % at 29.4 ms per image, NxTF) come from other "
                         "networks and are not a comparison on equal terms.")
    sizes = [r.conversion["n_images"] for r in runs if r.conversion]
    lines += ["", "Caveats: chip numbers here are modeled from emulated activity, CPU/GPU numbers are measured; "
              "GPU energy is board power (the whole card) while published chip energies are chip power; "
              "GPU and CPU throughput grows with batch size while the chips run one image at a time (batch 1 is "
              "the fair latency comparison, the best batch the fair throughput one)"
              + "".join(f"; accuracy on {n} images moves in steps of {100 / n:.2g} points" for n in sizes) + ".", ""]
    return lines


# --- command line ---------------------------------------------------------------------------------------

def add_parser(subparsers) -> None:
    """The ``neuro report`` subcommand."""
    p = subparsers.add_parser("report", help="write the markdown report and figures from results files",
                              description="Write report.md and its PNG figures from one or more results files.")
    p.add_argument("results", nargs="+", help="results files written by `neuro run`")
    p.add_argument("-o", "--output", required=True, help="folder for report.md and the figures")


def cmd_report(args) -> None:
    print(f"wrote {write_report(args.results, args.output)}")
