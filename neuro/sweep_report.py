"""A sweep's points as one tidy table, and its report: accuracy and energy against each axis, Pareto fronts.

``write_table(sweep_dir)`` writes ``sweep.csv`` (and ``sweep.parquet`` where pyarrow is installed): one row per
point and chip (``COLUMNS`` after the axes' columns), plus one row per failed or unfinished point with its
status and error. Energies, frames/s and latencies are the chip cost model's, with their low and high bounds
(``ChipRun.cost`` Values); the float SNN has none. ``write_report`` draws from that table.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from neuro import results
from neuro.atomic import atomic_path
from neuro.errors import NeuroError

#: cost key in the results file -> column stem (value, then _low and _high where the chip gives a range)
RANGED = {"energy_per_image": "energy_j", "energy_per_image_at_equal_accuracy": "energy_at_equal_accuracy_j",
          "frames_per_second": "frames_per_second", "latency": "latency_s"}
COLUMNS = ("point", "status", "chip", "timesteps", "images", "ann_accuracy", "accuracy", "equal_accuracy_step",
           *(f"{stem}{end}" for stem in RANGED.values() for end in ("", "_low", "_high")),
           "synops_per_image", "spikes_per_image", "cores", "chips", "coefficients", "emulator_seconds", "error")


def rows(sweep_dir) -> tuple[list[str], list[dict]]:
    """The axes and the table's rows (dicts), in point order."""
    from neuro import sweep

    out = Path(sweep_dir)
    manifest = sweep.read_manifest(out)
    axes = list(manifest["axes"])
    table = []
    for p in manifest["points"]:
        folder = sweep.point_folder(out, p["id"])
        base = {"point": p["id"], **{a: _cell(v) for a, v in p["values"].items()}}
        h5, error = folder / f"{p['id']}.h5", folder / sweep.ERROR
        run = None
        if h5.exists():
            try:
                run = results.read(h5)
            except NeuroError as e:
                base["error"] = str(e)
        status = "failed" if error.exists() else "incomplete"
        if error.exists():
            base["error"] = json.loads(error.read_text()).get("error", "")
        if run is not None and run.chips and not error.exists():
            status = "done" if _complete(run) else "incomplete"
            for chip in run.chips.values():
                table.append({**base, "status": status, **_chip_row(run, chip)})
            continue
        table.append({**base, "status": status})
    return axes, table


def _complete(run: results.Results) -> bool:
    from neuro.experiment import parse_toml

    chips = parse_toml(run.config, run.path).get("emulation", {}).get("chips", ["float"])
    return set(chips) <= set(run.chips) and bool(run.conversion)


def _cell(v):
    return json.dumps(v) if isinstance(v, (list, dict)) else v


def _chip_row(run: results.Results, chip: results.ChipRun) -> dict:
    cost = chip.cost
    row = {"chip": chip.name, "timesteps": chip.timesteps, "images": chip.n_images,
           "ann_accuracy": run.conversion.get("ann_accuracy"), "accuracy": float(chip.accuracy_by_step[-1]),
           "equal_accuracy_step": _num(cost.get("equal_accuracy_step")),
           "synops_per_image": _num(cost.get("synops_per_image")), "spikes_per_image": _num(cost.get("spikes_per_image")),
           "cores": chip.coefficients.get("cores"), "chips": chip.coefficients.get("chips"),
           "coefficients": chip.coefficients.get("name"), "emulator_seconds": chip.seconds}
    for key, stem in RANGED.items():
        v = cost.get(key)
        row[stem], row[f"{stem}_low"], row[f"{stem}_high"] = _num(v), _num(v, "low"), _num(v, "high")
    return row


def _num(v, attr: str = "value"):
    x = getattr(v, attr, None) if v is not None else None
    return float(x) if x is not None else None


def write_table(sweep_dir) -> list[Path]:
    """``sweep.csv`` (and ``sweep.parquet`` with pyarrow) in the sweep folder, written atomically."""
    frame = table(sweep_dir)
    out = Path(sweep_dir)
    written = [out / "sweep.csv"]
    with atomic_path(written[0]) as tmp:
        frame.to_csv(tmp, index=False)
    try:
        import pyarrow  # noqa: F401
    except ImportError:
        return written
    written.append(out / "sweep.parquet")
    with atomic_path(written[1]) as tmp:
        frame.to_parquet(tmp, index=False)
    return written


def table(sweep_dir):
    """The table as a pandas DataFrame: the axes' columns, then ``COLUMNS``."""
    import pandas as pd

    axes, data = rows(sweep_dir)
    columns = ["point", *axes, *(c for c in COLUMNS if c != "point")]
    return pd.DataFrame(data, columns=columns)


# --- the report -------------------------------------------------------------------------------------------

def pareto(energy, accuracy) -> np.ndarray:
    """Mask of the points no other point beats: none has lower-or-equal energy and higher-or-equal accuracy with
    one of them strictly better."""
    e, a = np.asarray(energy, float), np.asarray(accuracy, float)
    keep = np.ones(len(e), bool)
    for i in range(len(e)):
        better = (e <= e[i]) & (a >= a[i]) & ((e < e[i]) | (a > a[i]))
        keep[i] = not better.any()
    return keep


def write_report(sweep_dir, out_dir) -> Path:
    """``sweep.md`` with figures: accuracy and energy against each swept axis (mean over the other axes, bars from
    their least to their greatest), and each chip's Pareto front of energy against accuracy."""
    from neuro import sweep

    frame = table(sweep_dir)
    axes = list(sweep.read_manifest(sweep_dir)["axes"])
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    done = frame[frame["status"] == "done"]
    lines = [f"# Sweep {Path(sweep_dir).resolve().name}", "",
             f"{frame['point'].nunique()} points, {done['point'].nunique()} done; "
             f"{frame.loc[frame['status'] != 'done', 'point'].nunique()} failed or unfinished. "
             "Table: sweep.csv in the sweep folder (one row per point and chip).", ""]
    if done.empty:
        raise NeuroError(f"no finished point in {sweep_dir}: run the sweep (neuro sweep ... --resume) first")
    for axis in axes:
        if done[axis].nunique() < 2:
            continue
        for column, label, log in (("accuracy", "accuracy at T (%)", False), ("energy_j", "energy per image (J)", True)):
            name = f"{column}_vs_{_file(axis)}.png"
            if _by_axis(done, axis, column, label, log, out / name):
                lines += [f"![{label} against {axis}]({name})", ""]
    lines += ["## Pareto fronts: energy per image against accuracy", "",
              "Per chip, the points that no other point beats on both (the energy bars: the cost model's low-high "
              "range).", ""]
    costed = done.dropna(subset=["energy_j"])
    if costed.empty:
        lines += ["No chip with an energy model in this sweep (the float SNN has none).", ""]
    else:
        lines += [f"![Pareto fronts]({_pareto_figure(costed, out / 'pareto.png')})", ""]
        for chip, g in costed.groupby("chip"):
            front = g[pareto(g["energy_j"], g["accuracy"])].sort_values("energy_j")
            lines += [f"### {chip}", "", "| point | " + " | ".join(axes) + " | accuracy | energy/image (low-high) |",
                      "|---" * (len(axes) + 3) + "|"]
            for _, r in front.iterrows():
                lines.append(f"| {r['point']} | " + " | ".join(str(r[a]) for a in axes) +
                             f" | {100 * r['accuracy']:.2f} % | {_energy(r)} |")
            lines.append("")
    failed = frame[frame["status"] != "done"].drop_duplicates("point")
    if not failed.empty:
        lines += ["## Failed or unfinished points", ""]
        lines += [f"- {r['point']} ({r['status']}): {r['error'] if isinstance(r['error'], str) else ''}"
                  for _, r in failed.iterrows()]
        lines.append("")
    path = out / "sweep.md"
    with atomic_path(path) as tmp:
        tmp.write_text("\n".join(lines))
    return path


def _file(axis: str) -> str:
    return "".join(c if c.isalnum() else "_" for c in axis)


def _energy(r) -> str:
    import pandas as pd

    from neuro.report import sig

    if pd.isna(r["energy_j_low"]):
        return f"{sig(r['energy_j'] * 1e6)} uJ"
    return f"{sig(r['energy_j'] * 1e6)} uJ ({sig(r['energy_j_low'] * 1e6)}-{sig(r['energy_j_high'] * 1e6)})"


def _by_axis(done, axis: str, column: str, label: str, log: bool, path: Path) -> bool:
    from neuro.plots import plt

    data = done.dropna(subset=[column])
    if data.empty:
        return False
    numeric = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in data[axis])
    values = sorted(data[axis].unique()) if numeric else list(dict.fromkeys(data[axis]))
    fig, ax = plt.subplots(figsize=(6.4, 4.2), dpi=120)
    for chip, g in data.groupby("chip"):
        stats = g.groupby(axis)[column].agg(["mean", "min", "max"]).reindex(values).dropna()
        x = stats.index.to_numpy(float) if numeric else np.array([values.index(v) for v in stats.index], float)
        scale = 100 if column == "accuracy" else 1
        mean = scale * stats["mean"].to_numpy()
        err = [mean - scale * stats["min"].to_numpy(), scale * stats["max"].to_numpy() - mean]
        ax.errorbar(x, mean, yerr=err, marker="o", capsize=3, label=chip)
    if not numeric:
        ax.set_xticks(range(len(values)), [str(v) for v in values])
    elif len(values) > 2 and min(values) > 0 and max(values) / min(values) >= 8:
        ax.set_xscale("log", base=2)
    if log:
        ax.set_yscale("log")
    ax.set_xlabel(axis)
    ax.set_ylabel(label)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    ax.set_title(f"{label} against {axis} (mean over the other axes; bars: their range)", fontsize=8)
    _save(fig, path)
    return True


def _pareto_figure(costed, path: Path) -> str:
    from neuro.plots import plt

    fig, ax = plt.subplots(figsize=(6.4, 4.2), dpi=120)
    for i, (chip, g) in enumerate(costed.groupby("chip")):
        color = f"C{i}"
        low = (g["energy_j"] - g["energy_j_low"].fillna(g["energy_j"])).clip(lower=0)
        high = (g["energy_j_high"].fillna(g["energy_j"]) - g["energy_j"]).clip(lower=0)
        ax.errorbar(g["energy_j"], 100 * g["accuracy"], xerr=[low, high], fmt="o", color=color, alpha=0.35,
                    capsize=2)
        front = g[pareto(g["energy_j"], g["accuracy"])].sort_values("energy_j")
        ax.plot(front["energy_j"], 100 * front["accuracy"], "-o", color=color, label=f"{chip} front")
    ax.set_xscale("log")
    ax.set_xlabel("energy per image (J, modeled)")
    ax.set_ylabel("accuracy at T (%)")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    _save(fig, path)
    return path.name


def _save(fig, path: Path) -> None:
    from neuro.plots import plt

    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)
