"""The report: ``report.md`` and PNG figures drawn from one or more results files (``neuro.results``).

Sections: the runs; accuracy vs time step; the CPU/GPU baselines (measured, recorded or estimated); energy
per inference vs accuracy; frames/s; the gap at equal accuracy (each emulated system at the first step within
the tolerance of the ANN, against every reference platform); the same at the configured T; the chip models'
calibration, assumptions and compile deviations; the published points; a generated verdict. Every number
carries its provenance (measured, recorded, modeled, estimated, published), modeled and estimated ones their
low-high range; a number that does not exist says why.

Several results files (e.g. MNIST and CIFAR-10) make one report: an overall verdict per file, one energy-vs-error
figure of every file, then per file a section holding what its own report holds (its dataset's caveats with it),
the published points once at the end.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

import chips
from neuro import compare, results
from neuro.atomic import atomic_path
from neuro.baselines import estimate
from neuro.baselines.results import Value
from neuro.compare import ChipRow, Reference
from neuro.errors import NeuroError
from neuro.experiment import SCHEMA, parse_toml
from neuro.published import (GPU_POINTS, HEADLINE_FPS, HEADLINE_POWER_RATIO, MER14_CPU_POWER_DENSITY_W_CM2,
                             MER14_POWER_DENSITY_W_CM2, OTHER_CHIPS, PublishedPoint)
from neuro.results import PUBLISHED, Results

#: A 1-minute load average above this when the CPU baselines start means other work shared the cores.
BUSY_LOAD = 0.5
COLORS = {"measured": "C0", "recorded": "C1", "modeled": "C2", "estimated": "C3", PUBLISHED: "0.45"}
#: Data specs (``[data] dataset``) as section headings; any other spec (an image folder) is shown as given.
DATASET_TITLES = {"mnist": "MNIST", "cifar10": "CIFAR-10"}
#: Caveats that travel with a dataset's section (docs/datasets.md, "The JPEG copy and its caveat").
DATASET_NOTES = {"cifar10": "the shared CIFAR-10 copy (`cifar10-jpeg.tar.xz`) holds JPEG re-encodings (quality 75, "
                            "4:2:0), not the canonical pixels (`docs/datasets.md`). `neuro.datasets` reads it where "
                            "the canonical `cifar-10-python.tar.gz` is absent, and a results file does not record "
                            "which of the two it read: with the shared data it is the JPEG copy. Accuracies on it "
                            "are not comparable point for point with published CIFAR-10 figures."}
FIGURE_NOTES = {"cifar10": "the JPEG copy's pixels, not the canonical ones, unless the canonical archive was read "
                           "(see the data note of its section)."}


def write_report(results_paths, out_dir) -> Path:
    """Read every results file (all must be readable, none given twice), write ``out_dir/report.md`` and its
    figures: one file as one report; several as one section each (its figures prefixed with the section's
    number), an overall verdict and one energy-vs-error figure of every dataset."""
    runs = [results.read(p) for p in _distinct_paths(results_paths)]
    _check_distinct_runs(runs)
    studies = [_Study(r) for r in runs]
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    if len(studies) == 1:
        lines = _markdown(studies, _figures(studies[0], out_dir))
    else:
        combined = _combined_energy_figure(studies, out_dir / "energy_vs_accuracy_all.png")
        sections = [_figures(s, out_dir, f"{k}-") for k, s in enumerate(studies, 1)]
        lines = _multi_markdown(studies, sections, combined)
    text = "\n".join(lines) + "\n"
    path = out_dir / "report.md"
    with atomic_path(path) as tmp:
        tmp.write_text(text)
    return path


def _distinct_paths(paths) -> list[Path]:
    """The results paths, each once: a file named twice (by any path) is an error."""
    seen = {}
    for p in map(Path, paths):
        key = p.resolve()
        if key in seen:
            raise NeuroError(f"results file {p} is given twice (also as {seen[key]}): give each results file once")
        seen[key] = p
    return list(seen.values())


def _check_distinct_runs(runs: list[Results]) -> None:
    """Two files holding the same run (a copy: same config and start time) would make two identical sections."""
    seen = {}
    for r in runs:
        key = (r.config, r.date, r.seed)
        if key in seen:
            raise NeuroError(f"{seen[key].path} and {r.path} hold the same run (experiment {r.name!r} started "
                             f"{r.date}): give one of them")
        seen[key] = r


def _figures(s: "_Study", out_dir: Path, prefix: str = "") -> dict:
    """The figures of one results file, named ``prefix`` + the figure's name."""
    return {"accuracy": _accuracy_figure(s.run, out_dir / f"{prefix}accuracy_vs_steps.png"),
            "energy": _energy_figure(s, out_dir / f"{prefix}energy_vs_accuracy.png"),
            "fps": _fps_figure(s, out_dir / f"{prefix}frames_per_second.png")}


class _Study:
    """One results file with its reference platforms and its emulated systems at equal accuracy."""

    def __init__(self, run: Results):
        self.run = run
        self.ann = run.conversion.get("ann_accuracy")
        self.refs = compare.references(run, results.read_snn(run.path).ann) if run.conversion else []
        self.rows = compare.chip_rows(run)
        self.dataset = _setting(run, "data", "dataset")

    @property
    def name(self) -> str:
        return self.run.name

    @property
    def dataset_title(self) -> str:
        """"MNIST", "CIFAR-10", or the data spec (an image folder's path)."""
        return DATASET_TITLES.get(self.dataset, self.dataset)

    @property
    def title(self) -> str:
        """The section heading: dataset, images, experiment and results file (two runs of one dataset differ)."""
        n = self.run.conversion.get("n_images")
        images = f", {n:,} test images" if n is not None else ""
        return f"{self.dataset_title}{images}: experiment {self.name} ({self.run.path})"

    @property
    def short_note(self) -> str:
        """The dataset's caveat in short ("" if it has none)."""
        return f"{self.dataset_title}: {FIGURE_NOTES[self.dataset]}" if self.dataset in FIGURE_NOTES else ""

    def data_note(self) -> list[str]:
        """The dataset's caveat as a paragraph, or nothing."""
        return [f"**Data**: {DATASET_NOTES[self.dataset]}", ""] if self.dataset in DATASET_NOTES else []

    def figure_note(self) -> list[str]:
        """The line beside each figure of this dataset, or nothing."""
        return [self.short_note, ""] if self.short_note else []


def _setting(run: Results, section: str, key: str):
    """A key of the run's experiment file, or its default (``neuro.experiment.SCHEMA``)."""
    return parse_toml(run.config, run.path).get(section, {}).get(key, SCHEMA[section][key][1])


# --- numbers ---------------------------------------------------------------------------------------------

PREFIXES = ((1e-9, "n"), (1e-6, "u"), (1e-3, "m"), (1.0, ""))


def sig(x: float, digits: int = 2) -> str:
    """``x`` to ``digits`` significant figures, thousands separated (2 significant figures: ranges are wide)."""
    if x == 0 or not math.isfinite(x):
        return f"{x:g}"
    e = math.floor(math.log10(abs(x)))
    r = round(x, digits - 1 - e)
    return f"{r:,.0f}" if abs(r) >= 10 ** (digits - 1) else f"{r:.{digits - 1 - e}f}"


def _scale(x: float, unit: str) -> tuple[float, str]:
    """A prefix for J, s and W so the number reads in 1..1000 (e.g. 6.1e-4 J -> 610 uJ)."""
    if unit not in ("J", "s", "W") or x == 0:
        return 1.0, unit
    scale, prefix = next(((s, p) for s, p in reversed(PREFIXES) if abs(x) >= s), PREFIXES[0])
    return scale, prefix + unit


def fmt(v: Value | None, unit: str = "") -> str:
    """A number with its range (or std) and provenance, or why there is none: "610 (300-1,200) uJ (modeled)"."""
    if v is None:
        return "n/a"
    if v.value is None:
        return f"{v.provenance}" + (f": {v.note}" if v.note and v.provenance != "n/a" else "")
    scale, shown = _scale(v.value, unit)
    text = sig(v.value / scale)
    if v.low is not None and not (sig(v.low / scale) == text == sig(v.high / scale)):
        text += f" ({sig(v.low / scale)}-{sig(v.high / scale)})"
    elif v.std:
        text += f" ± {sig(v.std / scale)}"
    return f"{text}{' ' + shown if shown else ''} ({v.provenance})"


def _pct(fraction: float, provenance: str) -> str:
    return f"{100 * fraction:.2f} % ({provenance})"


def _accuracy(row: ChipRow) -> str:
    lo, hi = row.interval
    where = f"after step {row.step}" if row.step else "best over the run"
    return f"{100 * row.accuracy:.1f} % [{100 * lo:.1f}-{100 * hi:.1f}] ({where}; modeled)"


def _label(name: str) -> str:
    return "float SNN (no chip)" if name == "float" else name


def _shown_steps(T: int) -> list[int]:
    return sorted({2 ** k for k in range(T.bit_length()) if 2 ** k <= T} | {T})


def _variants(row: ChipRow) -> dict[str, dict[str, Value]]:
    """The chip's costs under alternative assumptions, ``{label: {"energy": .., "fps": .., "latency": ..}}``."""
    out = {}
    for key, v in row.run.cost.items():
        if "@" in key and key.split("@")[0].endswith("_at_equal_accuracy"):
            base, label = key.split("@", 1)
            out.setdefault(label, {})[base.replace("_at_equal_accuracy", "")] = v
    return out


# --- figures ---------------------------------------------------------------------------------------------

def _save(fig, path: Path) -> str:
    from neuro.plots import plt  # matplotlib: imported only to draw (neuro --help stays light)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)
    return path.name


def _accuracy_figure(run: Results, path: Path) -> str | None:
    from neuro import plots  # matplotlib: imported only to draw (neuro --help stays light)
    curves = {_label(c.name): c.accuracy_by_step for c in run.chips.values()}
    if not curves:
        return None
    ann = run.conversion["ann_accuracy"] if run.conversion else None
    n = next(iter(c.n_images for c in run.chips.values()))
    plots.accuracy_vs_steps(curves, path, ann_accuracy=ann,
                            title=f"accuracy after each time step ({n} test images; emulated, modeled)")
    return path.name


@dataclass
class EnergyPoint:
    """What an energy figure draws for one platform: energy per inference at an accuracy."""

    platform: str                              # a chip, a reference platform at one batch, a published system
    energy: Value                              # J per inference, with its range and provenance
    accuracy: float
    interval: tuple[float, float] | None       # a chip's 95 % interval of accuracy; None for the rest
    step: int | None = None                    # a chip's equal-accuracy step
    n_images: int | None = None                # the images the accuracy is measured on (None: published)

    @property
    def error(self) -> float:
        """Error rate (%) where a log axis can show it: no error at all is drawn at half an image (50 / n %)."""
        return 100 * (1 - self.accuracy) if self.accuracy < 1 or not self.n_images else 50 / self.n_images


def energy_points(s: _Study) -> list[EnergyPoint]:
    """The chips at their equal-accuracy step, then the ANN on each reference platform (cheapest first)."""
    out = [EnergyPoint(_label(row.name), row.energy, row.accuracy, row.interval, row.step, row.run.n_images)
           for row in s.rows if row.energy is not None and row.energy.value is not None]
    if s.ann is not None:
        out += [EnergyPoint(ref.label, ref.energy, s.ann, None, None, s.run.conversion["n_images"])
                for ref in sorted(s.refs, key=lambda r: r.energy.value)]
    return out


def _published_energy_points() -> list[EnergyPoint]:
    return [EnergyPoint(f"{p.system} ({p.task})", Value(p.energy_j, "J/image", PUBLISHED), p.accuracy, None)
            for p in published_points() if p.accuracy is not None and p.energy_j is not None]


def _errorbar(ax, pt: EnergyPoint, **style):
    """``pt`` as error rate (%) against energy, with the energy's range and the accuracy's interval as bars."""
    lo, hi = compare.bounds(pt.energy)
    err = pt.error
    yerr = None if pt.interval is None else [[err - 100 * (1 - pt.interval[1])], [100 * (1 - pt.interval[0]) - err]]
    return ax.errorbar([pt.energy.value], [err], xerr=[[pt.energy.value - lo], [hi - pt.energy.value]], yerr=yerr,
                       ms=6, capsize=2, zorder=3, **style)


def _energy_axes(ax, title: str, x_room: float, points: list[EnergyPoint]) -> None:
    """Log-log axes of error rate against energy, with room for the labels; says where no error was drawn."""
    if any(pt.accuracy == 1 and pt.n_images for pt in points):
        ax.text(0.01, 0.01, "no error on all n images: drawn at 50 / n % (half an image)", transform=ax.transAxes,
                fontsize=6, color="0.3")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("energy per inference (J, log scale)")
    ax.set_ylabel("error rate (%, log scale) = 100 - accuracy")
    ax.grid(True, which="both", alpha=0.3)
    ax.set_title(title, fontsize=8)
    lo, hi = ax.get_xlim()
    ax.set_xlim(lo, hi * x_room)
    lo, hi = ax.get_ylim()
    ax.set_ylim(lo / 4, hi * 2)


def _energy_figure(s: _Study, path: Path) -> str:
    """Energy per inference vs error rate, log-log; ranges as bars; published points marked."""
    from neuro.plots import plt  # matplotlib: imported only to draw (neuro --help stays light)
    fig, ax = plt.subplots(figsize=(7.4, 5.0), dpi=120)
    seen = set()

    def point(pt: EnergyPoint, label: str, marker: str, offset=(5, 3)):
        v = pt.energy
        _errorbar(ax, pt, fmt=marker, color=COLORS.get(v.provenance, "k"),
                  label=v.provenance if v.provenance not in seen else None)
        seen.add(v.provenance)
        ax.annotate(label, (v.value, pt.error), textcoords="offset points", xytext=offset, fontsize=6,
                    arrowprops=dict(arrowstyle="-", lw=0.4, color="0.5") if offset != (5, 3) else None)

    refs = 0  # the references share one accuracy: labels fanned out below and above
    points = energy_points(s)
    for pt in points:
        if pt.interval is not None:
            point(pt, f"{pt.platform} (step {pt.step})", "s")
            continue
        offset = (-30, -(14 + 9 * (refs // 2))) if refs % 2 else (10, 14 + 9 * (refs // 2))
        point(pt, pt.platform, "o", offset)
        refs += 1
    for pt in _published_energy_points():
        point(pt, pt.platform, "^")
    ax.legend(loc="upper right", fontsize=7, title="provenance", title_fontsize=7)
    _energy_axes(ax, "energy per inference vs error: chips at equal accuracy, the ANN on CPUs and GPUs\n"
                     "(bars: low-high range of modeled/estimated energy, 95 % interval of accuracy)", 30, points)
    return _save(fig, path)


#: The combined figure: a marker per platform (with a colour of tab20), a fill and error-bar style per results file.
PLATFORM_MARKERS = "sDo^v<>PXph*d"
FILE_STYLES = (("full", "-"), ("none", "--"), ("left", ":"), ("bottom", "-."), ("right", (0, (5, 1))),
               ("top", (0, (1, 3))))


def study_labels(studies: list[_Study]) -> list[str]:
    """Each results file's name in the combined figure: its dataset, with the experiment and, if need be, the
    file where two share a dataset."""
    def unique(labels):
        return [label for label in labels if labels.count(label) > 1]

    labels = [s.dataset_title for s in studies]
    labels = [f"{label}: {s.name}" if label in unique(labels) else label for label, s in zip(labels, studies)]
    return [f"{label} ({s.run.path})" if label in unique(labels) else label for label, s in zip(labels, studies)]


def combined_energy_points(studies: list[_Study]) -> dict[str, list[EnergyPoint]]:
    """Every results file's energy points (``energy_points``) under its label (``study_labels``)."""
    return {label: energy_points(s) for label, s in zip(study_labels(studies), studies)}


def _platform_key(pt: EnergyPoint) -> str:
    """A platform and the provenance of its energy: one colour and marker in the combined figure."""
    provenance = f"({pt.energy.provenance})"
    chip = " at equal accuracy" if pt.interval is not None else ""
    return pt.platform + chip + ("" if pt.platform.endswith(provenance) else f" {provenance}")


def _combined_energy_figure(studies: list[_Study], path: Path) -> str:
    """Energy per inference vs error rate of every results file in one log-log figure (``combined_energy_points``),
    the published points in grey."""
    from neuro.plots import plt  # matplotlib: imported only to draw (neuro --help stays light)
    from matplotlib.lines import Line2D

    points = combined_energy_points(studies)
    platforms = list(dict.fromkeys(_platform_key(pt) for pts in points.values() for pt in pts))
    colours = plt.get_cmap("tab20")
    style = {key: (colours(i % 20), PLATFORM_MARKERS[i % len(PLATFORM_MARKERS)]) for i, key in enumerate(platforms)}
    files = {label: FILE_STYLES[i % len(FILE_STYLES)] for i, label in enumerate(points)}
    fig, ax = plt.subplots(figsize=(10.5, 6.0), dpi=120)
    for label, pts in points.items():
        fill, line = files[label]
        for pt in pts:
            colour, marker = style[_platform_key(pt)]
            bars = _errorbar(ax, pt, fmt=marker, color=colour, fillstyle=fill, markeredgewidth=1.2)
            for collection in bars[2]:
                collection.set_linestyle(line)
    for pt in _published_energy_points():
        _errorbar(ax, pt, fmt="^", color=COLORS[PUBLISHED])
        ax.annotate(pt.platform, (pt.energy.value, pt.error), textcoords="offset points",
                    xytext=(5, 3), fontsize=5, color="0.35")
    platform_legend = ax.legend(
        [Line2D([], [], ls="", marker=m, color=c) for c, m in style.values()] +
        [Line2D([], [], ls="", marker="^", color=COLORS[PUBLISHED])],
        platforms + ["published (other networks)"], loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=6,
        title="platform (provenance of its energy)", title_fontsize=7)
    ax.add_artist(platform_legend)
    ax.legend([Line2D([], [], color="k", ls=line, marker="o", fillstyle=fill) for fill, line in files.values()],
              list(files), loc="lower left", bbox_to_anchor=(1.01, 0.0), fontsize=7, title="results file",
              title_fontsize=7)
    _energy_axes(ax, "energy per inference vs error, every results file: chips at equal accuracy, the ANN on CPUs "
                     "and GPUs\n(bars: low-high range of modeled/estimated energy, 95 % interval of accuracy)", 3,
                 [pt for pts in points.values() for pt in pts])
    return _save(fig, path)


def _fps_figure(s: _Study, path: Path) -> str:
    from neuro.plots import plt  # matplotlib: imported only to draw (neuro --help stays light)
    bars = []  # (label, point, low, high, provenance)
    for row in s.rows:
        if row.frames_per_second is not None:
            v = row.frames_per_second
            bars.append((f"{s.name}: {_label(row.name)} at equal accuracy", v.value, *compare.bounds(v),
                         v.provenance))
    for ref in s.refs:
        v = ref.images_per_s
        bars.append((f"{s.name}: {ref.label}", v.value, *compare.bounds(v), v.provenance))
    for p in published_points():
        if p.fps is not None:
            bars.append((f"{p.system}: {p.task}"[:70], (p.fps[0] + p.fps[1]) / 2, *p.fps, PUBLISHED))
    fig, ax = plt.subplots(figsize=(8.4, 0.34 * len(bars) + 1.4), dpi=120)
    y = np.arange(len(bars))[::-1]
    for yi, (label, v, lo, hi, prov) in zip(y, bars):
        ax.barh(yi, v, color=COLORS.get(prov, "k"), height=0.6)
        if hi > lo:
            ax.errorbar([v], [yi], xerr=[[v - lo], [hi - v]], fmt="none", ecolor="k", capsize=2, lw=0.8)
        ax.text(hi * 1.15, yi, sig(v) + (f" ({sig(lo)}-{sig(hi)})" if hi > lo else ""), va="center", fontsize=6)
    ax.axvspan(*HEADLINE_FPS, color="0.85", zorder=0, label="ESS16: 1,200-2,600 frames/s")
    ax.set_yticks(y, [b[0] for b in bars], fontsize=6)
    ax.set_xscale("log")
    ax.set_xlim(1, max(b[3] for b in bars) * 1000)  # room for the numbers
    ax.set_xlabel("frames (images) per second, log scale")
    ax.grid(True, axis="x", which="both", alpha=0.3)
    kinds = [k for k in COLORS if any(b[4] == k for b in bars)]
    ax.legend([plt.Rectangle((0, 0), 1, 1, color=COLORS[k]) for k in kinds] +
              [plt.Rectangle((0, 0), 1, 1, color="0.85")], kinds + ["ESS16 claim"], loc="center right",
              fontsize=7, title="provenance", title_fontsize=7)
    ax.set_title("frames/s per platform (bars: ranges; published points come from other networks)", fontsize=8)
    return _save(fig, path)


# --- markdown --------------------------------------------------------------------------------------------

INTRO = ["# Neuromorphic chips vs CPU and GPU: report", "",
         "Provenance of every number: **measured** (in the run named), **recorded** (measured earlier, "
         "read from a file), **modeled** (a chip model applied to the emulator's activity counts), "
         "**estimated** (a formula over published device figures, `docs/estimates.md`), **published** (from a "
         "paper or benchmark, never measured here). Modeled and estimated numbers carry their low-high range "
         "in brackets, measured means their standard deviation over repeats; two significant figures.", ""]


def _markdown(studies: list[_Study], figures: dict) -> list[str]:
    """The report of one results file."""
    return INTRO + [line for s in studies for line in s.data_note()] + _body(studies, figures)


def _body(studies: list[_Study], figures: dict, published: bool = True) -> list[str]:
    """Every section of a report on ``studies`` (the published points only if ``published``)."""
    notes = [line for s in studies for line in s.figure_note()]
    lines = _runs_section([s.run for s in studies])
    lines += _accuracy_section(studies, figures["accuracy"], notes)
    lines += _baselines_section(studies)
    lines += ["## Energy per inference vs accuracy", "", f"![energy per inference vs accuracy]({figures['energy']})",
              "", "Chips at their equal-accuracy step (error bars: the cost model's range and the accuracy's 95 % "
              "interval); the ANN on each reference platform at its accuracy; published points with an accuracy "
              "(triangles) come from other networks.", ""] + notes
    lines += ["## Frames per second", "", f"![frames per second]({figures['fps']})", ""] + notes
    lines += _gap_section(studies)
    lines += _fixed_t_section(studies)
    lines += _chip_models_section(studies)
    lines += _published_section() if published else []
    lines += _verdict(studies)
    return lines


def _multi_markdown(studies: list[_Study], figures: list[dict], combined: str) -> list[str]:
    """The report of several results files: the overall verdict, the combined figure, then one section per file
    (a one-file report one heading level down, less the published points, which close the report once)."""
    lines = INTRO + ["## Overall verdict (generated from the sections below)", "",
                     "Per results file, the headline claims where a chip reaches the ANN's accuracy (each section's "
                     "verdict has the ranges, the reference platforms and the caveats):", ""]
    lines += [f"- **{s.title}**. {_in_short(s)}" + (f" {s.short_note}" if s.short_note else "") for s in studies]
    lines += ["", "## Energy per inference vs accuracy, every results file", "",
              f"![energy per inference vs accuracy, every results file]({combined})", "",
              "Each platform one colour and marker, each results file one fill and error-bar style (legends); chips at "
              "their equal-accuracy step (a chip that never gets there has no point: its section says why), the ANN "
              "on each reference platform at its accuracy; bars: the low-high range of modeled and estimated energy "
              "and the 95 % interval of the chips' accuracy; published points (grey triangles) come from other "
              "networks.", ""]
    lines += [line for s in studies for line in s.figure_note()]
    for s, section_figures in zip(studies, figures):
        lines += [f"## {s.title}", ""] + s.data_note()
        lines += [("#" + line if line.startswith("#") else line) for line in _body([s], section_figures, False)]
    return lines + _published_section()


def _runs_section(runs: list[Results]) -> list[str]:
    lines = ["## Runs", "", "| results file | experiment | date | machine | seed | images | versions |",
             "|---|---|---|---|---|---|---|"]
    for r in runs:
        s = r.system
        v = ", ".join(f"{k} {val}" for k, val in s.get("versions", {}).items() if val)
        lines.append(f"| {r.path.name} | {r.name} | {r.date} | {s.get('cpu', '?')}, {s.get('usable_cpus', '?')} usable "
                     f"CPUs, {s.get('os', '?')} | {r.seed} | {r.conversion.get('n_images', 'n/a')} | {v} |")
    return lines + [""]


def _accuracy_section(studies: list[_Study], figure: str | None, notes: list[str]) -> list[str]:
    lines = ["## Accuracy vs time step", ""]
    if figure is None:
        return lines + ["No emulation in these results.", ""]
    lines += [f"![accuracy vs time step]({figure})", ""] + notes
    for s in studies:
        r = s.run
        if not r.chips:
            continue
        T = max(c.timesteps for c in r.chips.values())
        steps = _shown_steps(T)
        n = r.conversion["n_images"]
        lo, hi = compare.wilson_interval(round(s.ann * n), n)
        lines += [f"{r.name}: {n} test images; the ANN (float forward pass) scores {_pct(s.ann, 'measured')} "
                  f"[95 % interval {100 * lo:.1f}-{100 * hi:.1f}]. Accuracy (%, modeled by the emulator) after step:",
                  "", "| system | " + " | ".join(map(str, steps)) + " | equal accuracy | synaptic events/image | "
                  "spikes/image |", "|---|" + "---|" * (len(steps) + 3)]
        for row in s.rows:
            c = row.run
            acc = [f"{100 * c.accuracy_by_step[t - 1]:.2f}" if t <= c.timesteps else "" for t in steps]
            reach = f"step {row.step}: {_accuracy(row)}" if row.step else row.reach
            lines.append(f"| {_label(c.name)} | " + " | ".join(acc) + f" | {reach} | "
                         f"{fmt(c.cost.get('synops_per_image'))} | {fmt(c.cost.get('spikes_per_image'))} |")
        lines += ["", "Accuracy intervals: Wilson 95 % for a binomial proportion; on "
                  f"{n} images accuracy moves in steps of {100 / n:.2g} points.", ""]
    return lines


def _baselines_section(studies: list[_Study]) -> list[str]:
    lines = ["## CPU and GPU baselines (the same ANN)", "",
             "Measured platforms (throughput: mean ± standard deviation over the timed windows), with their energy "
             "measured where a counter is readable and otherwise estimated; reference GPUs estimated from the "
             "network's FLOPs and bytes when none was measured or recorded.", "",
             "| platform | device | batch | images/s | latency per batch | energy/image | power |",
             "|---|---|---|---|---|---|---|"]
    notes = []
    for s in studies:
        for b in s.run.baselines:
            for p in b.results.platforms:
                if not p.points:
                    lines.append(f"| {p.name} ({s.name}, {b.source}) | {p.status} | | | | | |")
                    continue
                load = b.results.system.get("load_average_1min")
                if p.name.startswith("cpu") and load is not None and load > BUSY_LOAD:
                    notes.append(f"- **Busy machine**: 1-minute load average {load:.1f} on "
                                 f"{b.results.system.get('usable_cpus')} CPUs when {p.name} was measured: its "
                                 "threads wait for cores other work holds, so its images/s understate the CPU "
                                 "(docs/results.md, \"CPU baselines on a busy machine\"); measure on a quiet machine.")
                notes.append(f"- {p.name} ({s.name}, {b.source}{' from ' + b.file if b.file else ''}): {p.runtime}; "
                             f"{p.driver + '; ' if p.driver else ''}{p.threads} threads; energy: {p.energy_source}; "
                             f"argmax agreement with the IR: {fmt(p.agreement)}; window "
                             f"{b.results.settings.get('window_s')} s, warm-up {b.results.settings.get('warmup_s')} s; "
                             f"inputs: {b.results.settings.get('inputs')}; date {b.results.date}.")
        for ref in s.refs:
            lines.append(f"| {ref.label} ({s.name}) | {ref.kind} | {ref.batch} | {fmt(ref.images_per_s)} | "
                         f"{fmt(ref.latency, 's')} | {fmt(ref.energy, 'J')} | {fmt(ref.power, 'W')} |")
        if s.refs:
            notes += sorted({f"- {ref.label.split(' batch')[0]}: {ref.note}" for ref in s.refs if ref.note})
    if len(lines) == 6:
        lines.append("| no baselines in these results | | | | | | |")
    checks = ["", "Held-out checks of the GPU estimator (published measurements it was not fitted to; "
              "`neuro.baselines.estimate.CHECKS`):", "", "| published point | published | estimate | "
              "estimate / published | bound |", "|---|---|---|---|---|"]
    for c in estimate.CHECKS:
        checks.append(f"| {c.name} | {sig(c.published, 3)} {c.unit} ({PUBLISHED}) | {sig(c.estimate.point)} "
                      f"({sig(c.estimate.low)}-{sig(c.estimate.high)}) {c.unit} (estimated) | {c.ratio:.2f}x | "
                      f"within {c.bound:g}x: {'yes' if c.within else 'NO'} |")
    return lines + [""] + notes + checks + [""]


def _gap_section(studies: list[_Study]) -> list[str]:
    lines = ["## The gap at equal accuracy", ""]
    for s in studies:
        tol = _tolerance(s.run)
        lines += [f"{s.name}: each emulated system costed at the first step whose accuracy on the same images is "
                  f"within {tol:g} points of the ANN's {_pct(s.ann, 'measured')}, with the activity up to that step; "
                  "a system that never gets there gets no ratio. Ratios are chip / reference (energy and power below "
                  "1: the chip uses less; frames/s above 1: the chip is faster), ranges from both sides.", "",
                  "| system | accuracy [95 %] | steps | energy/inference | frames/s | latency | power |",
                  "|---|---|---|---|---|---|---|"]
        for row in s.rows:
            if row.step is None:
                lines.append(f"| {_label(row.name)} | {_accuracy(row)} | {row.reach} "
                             "| no ratio | | | |")
                continue
            if row.energy is None:
                syn = row.run.cost.get("synops_per_image_at_equal_accuracy")
                lines.append(f"| {_label(row.name)} | {_accuracy(row)} | {row.step} | no chip: {fmt(syn)} synaptic "
                             "events/image | | | |")
                continue
            lines.append(f"| {_label(row.name)} | {_accuracy(row)} | {row.step} | {fmt(row.energy, 'J')} | "
                         f"{fmt(row.frames_per_second)} | {fmt(row.latency, 's')} | {fmt(row.power, 'W')} |")
        for name in chips.available():
            if name not in s.run.chips:
                lines.append(f"| {name} | registered but not run in this experiment (add it to emulation.chips) "
                             "| | | | | |")
        lines += ["", "| chip | against | energy ratio | frames/s ratio | power ratio |", "|---|---|---|---|---|"]
        for row in s.rows:
            if row.energy is None:
                continue
            for ref in s.refs:
                lines.append(f"| {_label(row.name)} | {ref.label} | {fmt(compare.ratio(row.energy, ref.energy))} | "
                             f"{fmt(compare.ratio(row.frames_per_second, ref.images_per_s))} | "
                             f"{fmt(compare.ratio(row.power, ref.power))} |")
        lines.append("")
    return lines


def _tolerance(run: Results) -> float:
    return float(_setting(run, "report", "tolerance"))


def _fixed_t_section(studies: list[_Study]) -> list[str]:
    lines = ["## At the configured T (fixed; not at equal accuracy)", "",
             "The same chips costed over every step of the run, whatever their accuracy: for reference only.", "",
             "| system | T | accuracy at T | energy/inference | frames/s | latency |", "|---|---|---|---|---|---|"]
    for s in studies:
        for c in s.run.chips.values():
            if "frames_per_second" not in c.cost:
                continue
            lines.append(f"| {s.name}: {_label(c.name)} | {c.timesteps} | {_pct(c.accuracy_by_step[-1], 'modeled')} | "
                         f"{fmt(c.cost['energy_per_image'], 'J')} | {fmt(c.cost['frames_per_second'])} | "
                         f"{fmt(c.cost['latency'], 's')} |")
    return lines + [""]


def _chip_models_section(studies: list[_Study]) -> list[str]:
    lines = ["## The chip models: calibration, assumptions, deviations", ""]
    for s in studies:
        for c in s.run.chips.values():
            if not c.coefficients:
                continue
            k = c.coefficients
            lines += [f"**{s.name}: {c.name}** ({k.get('name')} coefficients; cores: {k.get('cores')}; chips: "
                      f"{k.get('chips')}).", ""]
            if k.get("calibration"):
                lines += [f"- Checked against published measurements it was not fitted to: {k['calibration']}"]
            lines += [f"- Range: {a}" for a in k.get("assumptions", [])]
            lines += [f"- Under another assumption ({label}): energy {fmt(v.get('energy_per_image'), 'J')}, "
                      f"{fmt(v.get('frames_per_second'))} frames/s"
                      for label, v in _variants(next(r for r in s.rows if r.name == c.name)).items()]
            lines += [f"- Compiler deviation from the converted network: {d}" for d in c.deviations]
            lines.append("")
    return lines


def published_points() -> tuple[PublishedPoint, ...]:
    """Every registered chip's own published points, then the GPU and other chips' points."""
    return chips.published_points() + GPU_POINTS + OTHER_CHIPS


def _published_section() -> list[str]:
    lines = ["## Published points (never measured here)", "",
             "| system | task | accuracy | energy/inference | frames/s | note | source |",
             "|---|---|---|---|---|---|---|"]
    for p in published_points():
        acc = _pct(p.accuracy, PUBLISHED) if p.accuracy is not None else ""
        energy = fmt(Value(p.energy_j, "J", PUBLISHED), "J") if p.energy_j is not None else ""
        fps = "" if p.fps is None else (f"{sig(p.fps[0], 3)}" if p.fps[0] == p.fps[1] else
                                        f"{sig(p.fps[0], 3)}-{sig(p.fps[1], 3)}") + f" ({PUBLISHED})"
        lines.append(f"| {p.system} | {p.task} | {acc} | {energy} | {fps} | {p.note} | {p.source} |")
    return lines + [""]


# --- the verdict -----------------------------------------------------------------------------------------

def _verdict(studies: list[_Study]) -> list[str]:
    lines = ["## Verdict (generated from the numbers above)", "",
             "Rule: every platform runs as fast as its published limits allow (chips unthrottled or at their "
             "fastest tick, CPUs and GPUs at their best batch as well as at batch 1); chips at equal accuracy.", ""]
    for s in studies:
        lines += [f"### {s.name}", ""]
        gpus, cpus = _pick(s.refs, "gpu"), _pick(s.refs, "cpu")
        lines += [_in_short(s), ""]
        for row in s.rows:
            if row.name == "float":
                continue
            if row.step is None:
                lines.append(f"- **{row.name}**, equal accuracy: {row.reach}; no ratio is stated for it.")
                continue
            lines.append(f"- **{row.name}** at equal accuracy ({_accuracy(row)}): {fmt(row.energy, 'J')} per image, "
                         f"{fmt(row.frames_per_second)} frames/s, latency {fmt(row.latency, 's')}, "
                         f"power {fmt(row.power, 'W')}.")
            for ref in gpus + cpus:
                lines.append(f"  - against {ref.label}: " + _against(row.energy, row.frames_per_second, row.power,
                                                                       ref))
            lines += ["  - " + t for t in _batch_flip(row, gpus) + _claims(row, gpus + cpus)]
        lines += [f"- Power density, as MER14 framed the claim: TrueNorth's {MER14_POWER_DENSITY_W_CM2 * 1e3:g} mW/cm2 "
                  f"against {MER14_CPU_POWER_DENSITY_W_CM2[0]:g}-{MER14_CPU_POWER_DENSITY_W_CM2[1]:g} W/cm2 for a CPU is "
                  f"1/{sig(MER14_CPU_POWER_DENSITY_W_CM2[0] / MER14_POWER_DENSITY_W_CM2)}-1/"
                  f"{sig(MER14_CPU_POWER_DENSITY_W_CM2[1] / MER14_POWER_DENSITY_W_CM2)} ({PUBLISHED}): even the "
                  "published comparison behind \"1/10,000 the power\" is a density, not a power per inference of the "
                  "same task.", ""]
    lines += ["Caveats: chip numbers are modeled from emulated activity; CPU and GPU energies are estimated unless "
              "a counter was read (see the provenance of each); GPU power is the whole board's (memory, regulators, "
              "fans) while chip power is the chip's alone, which favours the chips: a chip's board adds its own "
              "idle draw (the Loihi board of Blouw et al. 2019 idled at 29 mW); the chips classify one image at a "
              "time while CPU and GPU throughput grows with the batch (batch 1 is the fair latency comparison, the "
              "best batch the fair throughput one).", ""]
    return lines


def _in_short(s: _Study) -> str:
    """One line: the headline claims for each chip that reaches the ANN's accuracy, or that none does."""
    reached = [row for row in s.rows if row.name != "float" and row.step]
    if not reached:
        return "In short: no chip reaches the ANN's accuracy in this run, so no ratio is stated."
    return "In short: " + " ".join(_summary(row, _pick(s.refs, "gpu")) for row in reached)


def _pick(refs: list[Reference], kind: str) -> list[Reference]:
    """Batch 1 and the best batch of the first platform of this kind (measured before estimated)."""
    mine = [r for r in refs if r.kind == kind]
    if not mine:
        return []
    first = mine[0].label.split(" batch")[0]
    return [r for r in mine if r.label.split(" batch")[0] == first]


def _times(v: Value, smaller: str, larger: str) -> str:
    """"1,200x (300-5,000x) less" for a chip/reference ratio below 1, "3x more" above."""
    lo, hi = compare.bounds(v)

    def span(a, b):
        return "" if sig(a) == sig(b) else f" ({sig(a)}-{sig(b)}x)"

    if hi < 1:
        return f"{sig(1 / v.value)}x{span(1 / hi, 1 / lo)} {smaller}"
    if lo > 1:
        return f"{sig(v.value)}x{span(lo, hi)} {larger}"
    return f"{sig(v.value)}x ({sig(lo)}-{sig(hi)}x: the ranges overlap, no clear winner)"


def _against(energy: Value, fps: Value, power: Value, ref: Reference) -> str:
    e, f, p = (compare.ratio(energy, ref.energy), compare.ratio(fps, ref.images_per_s),
               compare.ratio(power, ref.power))
    return (f"energy per image {_times(e, 'less', 'more')}; frames/s {_times(f, 'slower', 'faster')}; "
            f"power {_times(p, 'less', 'more')} ({e.provenance}).")


def _batch_flip(row: ChipRow, gpus: list[Reference]) -> list[str]:
    """Whether the energy verdict against the GPU changes between batch 1 and its best batch."""
    if len(gpus) < 2:
        return []

    def verdict(ref: Reference) -> str:
        lo, hi = compare.bounds(compare.ratio(row.energy, ref.energy))
        return "less" if hi < 1 else "more" if lo > 1 else "about as much (the ranges overlap)"

    first, best = verdict(gpus[0]), verdict(gpus[-1])
    if first == best:
        return [f"batch size does not change the energy verdict against {gpus[0].label.split(' batch')[0]}"]
    return [f"batch size flips the energy verdict: {first} energy per image than {gpus[0].label}, {best} than "
            f"{gpus[-1].label}"]


def _claims(row: ChipRow, refs: list[Reference]) -> list[str]:
    """Whether ESS16's frames/s and the "1/10,000 the power" claim hold for this chip, and what flips them."""
    out = []
    variants = {"as modeled": {"frames_per_second": row.frames_per_second, "energy_per_image": row.energy,
                               "latency": row.latency}, **_variants(row)}
    fps_verdicts = {label: _fps_claim(v["frames_per_second"]) for label, v in variants.items()}
    out.append(f"claim \"1,200-2,600 frames/s\" (ESS16): {fps_verdicts['as modeled']}" +
               "".join(f"; {label}: {verdict}" for label, verdict in fps_verdicts.items()
                       if label != "as modeled" and verdict != fps_verdicts["as modeled"]) + ".")
    for ref in _distinct_power(refs):
        verdicts = {}
        for label, v in variants.items():
            power = compare.ratio(v["energy_per_image"], v["latency"], "W")
            verdicts[label] = _power_claim(compare.ratio(power, ref.power))
        out.append(f"claim \"1/10,000 the power\" against {ref.label}: {verdicts['as modeled']}" +
                   "".join(f"; {label}: {verdict}" for label, verdict in verdicts.items()
                           if label != "as modeled" and verdict != verdicts["as modeled"]) + ".")
    return out


def _distinct_power(refs: list[Reference]) -> list[Reference]:
    """One reference per platform and power (an estimated power does not depend on the batch)."""
    seen, out = set(), []
    for ref in refs:
        key = (ref.label.split(" batch")[0], ref.power.value, ref.power.low, ref.power.high)
        if key not in seen:
            seen.add(key)
            out.append(ref)
    return out


def _summary(row: ChipRow, gpus: list[Reference]) -> str:
    """One sentence: the two claims and the energy against the GPU at batch 1 and at its best batch."""
    fps = _fps_claim(row.frames_per_second).split(" (")[0]
    text = f"**{row.name}**: \"1,200-2,600 frames/s\" {fps}"
    if gpus:
        power = compare.ratio(row.power, gpus[0].power)
        text += (f"; \"1/10,000 the power\" of {gpus[0].label.split(' batch')[0]} "
                 f"{_power_claim(power).split(' (')[0]}; energy per image against it "
                 + ", ".join(f"at batch {g.batch}: {_times(compare.ratio(row.energy, g.energy), 'less', 'more')}"
                             for g in gpus))
    return text + "."


def _fps_claim(fps: Value) -> str:
    lo, hi = compare.bounds(fps)
    if lo >= HEADLINE_FPS[0]:
        return f"holds ({fmt(fps)} frames/s, at least 1,200 even at the low end)"
    if hi < HEADLINE_FPS[0]:
        return f"does not hold ({fmt(fps)} frames/s, below 1,200 even at the high end)"
    return f"undecided ({fmt(fps)} frames/s: the range straddles 1,200)"


def _power_claim(r: Value) -> str:
    lo, hi = compare.bounds(r)
    text = f"power ratio {sig(r.value)} ({sig(lo)}-{sig(hi)})"
    if hi <= HEADLINE_POWER_RATIO:
        return f"holds ({text}, at most 1/10,000)"
    if lo > HEADLINE_POWER_RATIO:
        return f"does not hold ({text}, 1/{sig(1 / r.value)} rather than 1/10,000)"
    return f"undecided ({text}: the range straddles 1/10,000)"


# --- command line ---------------------------------------------------------------------------------------

def add_parser(subparsers) -> None:
    """The ``neuro report`` subcommand."""
    p = subparsers.add_parser("report", help="write the markdown report and figures from results files",
                              description="Write report.md and its PNG figures from one or more results files: "
                                          "several make one report, a section per file (e.g. MNIST and CIFAR-10) "
                                          "and one energy-vs-accuracy figure of them all.")
    p.add_argument("results", nargs="+", help="results files written by `neuro run`, each once")
    p.add_argument("-o", "--output", required=True, help="folder for report.md and the figures")


def cmd_report(args) -> None:
    print(f"wrote {write_report(args.results, args.output)}")
