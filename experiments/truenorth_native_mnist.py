"""Run the trained TrueNorth-native MNIST (or CIFAR-10) networks on the emulated chip over the 10,000 test images.

All members sit side by side on one chip, fed the same input, one image per tick (pipelined, one tick per
layer). Per member and for the ensembles of the first k members: accuracy from the numpy integer forward,
equal to the chip's output spikes on every image the chip runs (all for MNIST; ``--chip-images``, the first
1,000 by default, for CIFAR-10, whose chip run takes far longer), cores, depth, activity per image (steady
state, from each member's spikes and the chip's crossbars and routes: ``chips.truenorth.native.activity``)
and energy per image and frames/s from ``chips.truenorth.cost`` at 1 kHz and at the fastest tick the activity
allows ("max"), 0.8 V and 0.70 V, whole chips (every core of the chip ticks and leaks) and the share of the
cores used, each with its low-high range; the input packets from off chip are charged. The chip's own
counters over the whole run (pipe fill and drain included) are recorded too.

Usage (from the repository root):

    NEURO_DATA=../shared/datasets python experiments/truenorth_native_mnist.py [--dataset mnist]
        [--model experiments/models/truenorth_native.npz] [--images 10000] [--chip-images N]

Writes docs/figures/truenorth_native_mnist.json and docs/figures/truenorth_native_vs_ess15.png; with
``--dataset cifar10`` docs/figures/truenorth_native_cifar10.json and docs/figures/truenorth_native_vs_ess16.png
(CIFAR-10 from the shared JPEG copy: its pixels are JPEG re-encodings, not the canonical ones).
"""

from __future__ import annotations

import argparse
import datetime
import json
import sys
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from chips.truenorth import calibration_line, cost  # noqa: E402
from chips.truenorth.core import CHIP_CORES  # noqa: E402
from chips.truenorth.native import (DATASET_LEVELS, activity, build_chip, classify, encode, forward,  # noqa: E402
                                    load_members)
from neuro.atomic import atomic_path  # noqa: E402
from neuro.datasets import load  # noqa: E402

TICK_HZ = 1000.0                         # real time (MER14)
VOLTAGES = (0.8, 0.70)                   # AKO15 Fig. 17's 0.8 V and the envelope's low end; calibrated 0.70-0.80 V
ESS15 = ((121e-6, 99.42, "ESS15, 64 members"), (0.408e-6, 92.7, "ESS15, 1 member"))   # ESS15 proceedings [pub]
# ESS16's CIFAR-10 rows (docs/references.md section 1, [unsure]): one chip 83.4 % at ~1,250 frames/s and ~204 mW,
# i.e. 204 mW / 1,250 frames/s = 163 uJ per image [derived]; 8 chips 89.3 % (its energy is not in our sources: None)
ESS16 = ((0.204 / 1250, 83.4, "ESS16, 1 chip"), (None, 89.3, "ESS16, 8 chips"))
CHUNK = 1000
# per dataset: model, record, figure, published points and their source, default chip images, figure limits
DATASETS = {
    "mnist": {"model": "experiments/models/truenorth_native.npz", "json": "truenorth_native_mnist.json",
              "png": "truenorth_native_vs_ess15.png", "name": "MNIST", "published": ESS15,
              "source": "ESS15 proceedings [pub]", "chip_images": None, "xlim": (0.2, 1000), "ylim": (92.3, 99.8),
              "ranges": False, "note": "", "text_at": (0.97, "top")},
    "cifar10": {"model": "experiments/models/truenorth_native_cifar10.npz", "json": "truenorth_native_cifar10.json",
                "png": "truenorth_native_vs_ess16.png", "name": "CIFAR-10", "published": ESS16,
                "source": "ESS16 per-dataset table as docs/references.md section 1 quotes it [unsure]",
                "chip_images": 1000, "xlim": (1, 1000), "ylim": None, "ranges": True,
                "note": " (JPEG copy)", "text_at": (0.03, "bottom")},
}


def _span(values) -> str:
    """"a" or "low-high" of integers, with thousands separators."""
    lo, hi = min(values := list(values)), max(values)
    return f"{lo:,}" if lo == hi else f"{lo:,}-{hi:,}"


def _costs(act: dict, cores: int, depth: int) -> list:
    """Energy per image and frames/s at each tick and voltage, whole chips and per-core share, pipelined; the
    first two rows are 1 kHz at 0.8 V (whole, share)."""
    rows = []
    for tick in (TICK_HZ, "max"):
        for voltage in VOLTAGES:
            for whole in (True, False):
                c = cost(act["sops"], act["spikes"] + act["inputs"], act["hops"], cores, ticks_per_inference=depth,
                         tick_hz=tick, voltage=voltage, pipelined=True, whole_chips=whole,
                         input_packets_per_tick=act["inputs"])
                rows.append({"voltage": voltage, "tick_hz": c.tick_hz, "tick": "real time" if tick == TICK_HZ
                             else "fastest", "leakage": "whole chips" if whole else "per core",
                             "energy_per_image_j": c.energy_per_inference_j, "frames_per_second": c.frames_per_second,
                             "power_w": c.power_w, "latency_s": c.latency_s,
                             "input_packets_per_tick": c.input_packets_per_tick,
                             "ranges": {k: list(v) for k, v in c.ranges.items()}})
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dataset", choices=sorted(DATASETS), default="mnist", help="data set (default mnist)")
    parser.add_argument("--model", type=Path, help="model (default: the dataset's in experiments/models)")
    parser.add_argument("--out", type=Path, default=Path("docs/figures"))
    parser.add_argument("--images", type=int, default=10000, help="first N test images (default all 10,000)")
    parser.add_argument("--chip-images", type=int, help="first N of them also run on the chip (default: all for "
                        "MNIST, 1,000 for CIFAR-10)")
    args = parser.parse_args(argv)
    ds = DATASETS[args.dataset]
    args.model = args.model or Path(ds["model"])
    members = load_members(args.model)
    x, y = load(args.dataset, split="test")
    x, y = x[:args.images], y[:args.images]
    bits = encode(x, DATASET_LEVELS[args.dataset])
    n_chip = min(len(bits), args.chip_images or ds["chip_images"] or len(bits))
    t0 = time.perf_counter()
    chip, layout = build_chip(members, bits.shape[1:])
    run = classify(members, bits[:n_chip], built=(chip, layout), progress=True)
    chip_seconds = time.perf_counter() - t0
    numpy_scores = np.zeros((len(members), len(bits), run.scores.shape[2]), np.int64)

    acts = [{"sops": 0.0, "spikes": 0.0, "hops": 0.0, "inputs": 0.0} for _ in members]
    for m, member in enumerate(members):
        for start in range(0, len(bits), CHUNK):
            b = bits[start:start + CHUNK]
            spikes, scores = forward(member, b)
            numpy_scores[m, start:start + len(b)] = scores
            on_chip = max(0, min(len(b), n_chip - start))            # of these images, those the chip ran
            if not np.array_equal(scores[:on_chip], run.scores[m, start:start + on_chip]):
                print(f"error: member {m}: chip and numpy forward differ on images {start}..", file=sys.stderr)
                return 1
            a = activity(chip, layout, m, b.reshape(len(b), -1), [s.reshape(len(b), -1) for s in spikes])
            for key in acts[m]:
                acts[m][key] += float(a[key].sum()) / len(bits)

    depth = layout.depth
    results = []
    for m, maps in enumerate(layout.members):
        cores = sum(len(lm.cores) for lm in maps)
        acc = float((numpy_scores[m].argmax(1) == y).mean())
        results.append({"name": f"member {m}", "members": [m], "accuracy": acc, "cores": cores, "activity": acts[m],
                        "cost": _costs(acts[m], cores, depth)})
    for k in range(2, len(members) + 1):
        cores = sum(r["cores"] for r in results[:k])
        act = {key: sum(a[key] for a in acts[:k]) for key in acts[0]}
        acc = float((numpy_scores[:k].sum(0).argmax(1) == y).mean())
        results.append({"name": f"ensemble of {k}", "members": list(range(k)), "accuracy": acc, "cores": cores,
                        "activity": act, "cost": _costs(act, cores, depth)})
    for r in results:
        c, lo_hi = r["cost"][0], r["cost"][0]["ranges"]["energy_per_inference_j"]
        print(f"{r['name']}: {100 * r['accuracy']:.2f} %, {r['cores']} cores, depth {depth}, "
              f"{c['frames_per_second']:.0f} frames/s, {1e3 * c['power_w']:.1f} mW, "
              f"{1e6 * c['energy_per_image_j']:.2f} uJ/image "
              f"({1e6 * lo_hi[0]:.2f}-{1e6 * lo_hi[1]:.2f}; {c['voltage']} V, {c['leakage']}; per core "
              f"{1e6 * r['cost'][1]['energy_per_image_j']:.2f} uJ; {c['input_packets_per_tick']:.0f} input packets "
              f"per tick)")
    print(calibration_line())

    record = {
        "what": f"TrueNorth-native {ds['name']} networks run on the emulated chip (chips.truenorth.chip), pipelined",
        "model": str(args.model),
        "test_images": int(len(y)),
        "depth_ticks": depth,
        "results": results,
        "chip_run": {"cores": layout.n_cores, "ticks": run.ticks, "sops": run.sops, "neuron_spikes": run.neuron_spikes,
                     "hops": run.hops, "chip_crossings": run.chip_crossings, "chunk_images": 2000,
                     "note": "totals over every tick of the run, pipe fill and drain of each chunk included",
                     "seconds": round(chip_seconds, 1)},
        "chip_equals_numpy_forward": True,
        "chip_images": n_chip,
        "chips": -(-layout.n_cores // CHIP_CORES),
        "activity_note": "per image = per tick with the pipe full: every layer works on a different image each tick",
        "cost_model": "chips.truenorth.cost(pipelined=True, ticks_per_inference=depth); whole chips: every "
                      "core of every chip used ticks and every chip leaks; per core: the used cores' ticks and "
                      "cores / 4096 of a chip's leakage; input packets charged as chip crossings",
        "calibration": calibration_line(),
        "published": [{"name": n, "energy_per_image_j": e, "accuracy": a / 100, "source": ds["source"]}
                      for e, a, n in ds["published"]],
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "command": "python experiments/truenorth_native_mnist.py " + " ".join(sys.argv[1:] if argv is None else argv),
    }
    if args.dataset == "cifar10":
        record["accuracy_source"] = (f"numpy integer forward on {len(y)} test images, equal to the chip's scores on "
                                     f"the first {n_chip}")
        record["data_note"] = "CIFAR-10 from the shared JPEG copy: pixels are JPEG re-encodings, not canonical"
        record["published_note"] = ("ESS16 one chip: 83.4 % at ~1,250 frames/s and ~204 mW, 163 uJ/image derived "
                                    "as 204 mW / 1,250 frames/s; ESS16 8 chips: 89.3 %, energy not in our sources")
    with atomic_path(args.out / ds["json"]) as tmp:
        tmp.write_text(json.dumps(record, indent=2) + "\n")

    fig, ax = plt.subplots(figsize=(8, 5))
    singles = [r for r in results if len(r["members"]) == 1]
    for i, r in enumerate(results):
        color = "C0" if r in singles else f"C{len(r['members'])}"
        whole, per_core = (1e6 * c["energy_per_image_j"] for c in r["cost"][:2])
        acc = 100 * r["accuracy"]
        if r in singles and i:
            label = None
        elif len(singles) == 1:
            label = f"ours, 1 member ({acc:.2f} %, {r['cores']} cores)"
        elif r in singles:
            label = f"single members ({100 * min(s['accuracy'] for s in singles):.2f}-" \
                    f"{100 * max(s['accuracy'] for s in singles):.2f} %, " \
                    f"{_span(s['cores'] for s in singles)} cores each)"
        else:
            label = f"{r['name']} ({acc:.2f} %, {r['cores']} cores)"
        ax.plot([per_core, whole], [acc, acc], color=color, lw=1, alpha=0.5, zorder=1)
        ax.scatter(whole, acc, color=color, zorder=2, label=label)
        ax.scatter(per_core, acc, facecolor="white", edgecolor=color, zorder=2)
        if ds["ranges"]:                                           # the cost model's low-high energy range
            for c in r["cost"][:2]:
                e, (lo, hi) = 1e6 * c["energy_per_image_j"], (1e6 * v for v in c["ranges"]["energy_per_inference_j"])
                ax.errorbar(e, acc, xerr=[[e - lo], [hi - e]], color=color, capsize=3, lw=1, zorder=1)
    for e, a, n in ds["published"]:
        if e is None:                                              # accuracy only: a line across
            ax.axhline(a, color="k", ls="--", lw=1, zorder=1)
            ax.annotate(f"{n}: {a} % (published; energy not in our sources)", (ds["xlim"][1], a),
                        textcoords="offset points", xytext=(-4, 4), ha="right", fontsize=8)
            continue
        ax.scatter(e * 1e6, a, marker="*", s=160, color="k", zorder=3)
        ax.annotate(f"{n}\n(published)", (e * 1e6, a), textcoords="offset points", xytext=(9, -3), va="center",
                    fontsize=8)
    paper = ds["published"][0][2].split(",")[0]
    ax.scatter([], [], marker="*", s=160, color="k", label=f"{paper} (published)")
    ax.text(0.02, ds["text_at"][0],
            "ours, emulated chip: filled = whole-chip leakage,\nhollow = per-core leakage (cores / 4096)"
            + ("\nenergy modeled; bars: the cost model's low-high range" if ds["ranges"] else ""),
            transform=ax.transAxes, va=ds["text_at"][1], fontsize=8)
    ax.set_xscale("log")
    ax.set_xlabel("energy per image (uJ); ours at 0.8 V, 1 kHz tick, pipelined: 1,000 frames/s")
    ax.set_ylabel(f"{ds['name']}{ds['note']} test accuracy (%), {len(y):,} images")
    ax.set_title(f"TrueNorth-native {ds['name']} on the emulated chip vs {paper}")
    ax.grid(True, which="both", alpha=0.3)
    ax.set_xlim(*ds["xlim"])
    if ds["ylim"]:
        ax.set_ylim(*ds["ylim"])
    ax.legend(fontsize=8, loc="lower right" if ds["text_at"][1] == "top" else "center right")
    fig.tight_layout()
    with atomic_path(args.out / ds["png"]) as tmp:
        fig.savefig(tmp, dpi=120, format="png")
    print(f"wrote {args.out / ds['json']} and {args.out / ds['png']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
