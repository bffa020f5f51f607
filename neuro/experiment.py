"""One experiment from a TOML file: conversion, emulation on each chip, the CPU/GPU baselines, one results file.

``run_experiment(config, out_dir)`` writes ``out_dir/<config stem>.h5`` part by part (see
``neuro.results``); with ``resume=True`` the parts already in that file are skipped. The TOML keys,
their defaults and checks are in ``SCHEMA``; ``experiments/mnist.toml`` is the default experiment.
Paths in the file (model, recorded baselines, an ``imagefolder:PATH`` data set) are relative to the file.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

import numpy as np

import chips
from neuro import datasets, results
from neuro.baselines import PLATFORMS, Settings, measure, read_json, system
from neuro.baselines.results import Value
from neuro.errors import NeuroError
from neuro.sim import Engine

FLOAT = "float"  # the float SNN itself, no chip model
REQUIRED = object()


def _positive(v):
    return None if v >= 1 else "must be at least 1"


def _one_of(*choices):
    return lambda v: None if v in choices else f"must be one of {', '.join(map(repr, choices))}"


def _each(check):
    return lambda vs: next((f"{v!r} {err}" for v in vs if (err := check(v))), None)


#: section -> key -> (type, default, check returning an error text or None); "" is the top level.
SCHEMA = {
    "": {"seed": (int, 0, None)},
    "data": {"dataset": (str, "mnist", datasets.spec_error), "images": (int, 1000, _positive),
             "select": (str, "first", _one_of("first", "spread"))},
    "model": {"path": (str, REQUIRED, None)},
    "conversion": {
        "calibration": (int, 1000, _positive),
        "percentile": (float, 99.9, lambda v: None if 0 < v <= 100 else "must be in (0, 100]"),
        "reset": (str, "subtract", _one_of("subtract", "zero")),
        "leak": (float, 0.0, lambda v: None if 0 <= v < 1 else "must be in [0, 1)"),
        "v_init": (float, 0.5, None),
        "readout": (str, "potential", _one_of("potential", "spikes")),
        "pool_neurons": (bool, False, None),
    },
    "emulation": {
        "chips": (list[str], [FLOAT], None),
        "timesteps": (int, 32, _positive),
        "encoding": (str, "current", _one_of("current", "rate")),
        "batch_size": (int, 256, _positive),
        "coefficients": (str, "", None),       # empty: each chip's default set
    },
    "baselines": {
        "platforms": (list[str], list(PLATFORMS), _each(_one_of(*PLATFORMS))),
        "batches": (list[int], list(Settings.batches), _each(_positive)),
        "window_s": (float, Settings.window_s, lambda v: None if v > 0 else "must be positive"),
        "warmup_s": (float, Settings.warmup_s, lambda v: None if v >= 0 else "must not be negative"),
        "idle_s": (float, Settings.idle_s, lambda v: None if v > 0 else "must be positive"),
        "threads": (int, 0, lambda v: None if v >= 0 else "must be 0 (every usable CPU) or more"),
        "recorded": (list[str], [], None),
    },
    "report": {
        # "equal accuracy": within this many percentage points of the ANN on the same images
        "tolerance": (float, 0.5, lambda v: None if 0 <= v <= 100 else "must be in [0, 100] (percentage points)"),
    },
}


@dataclass
class Config:
    """A validated experiment: ``values[section][key]`` with defaults filled in, and the file's text."""

    path: Path
    text: str
    values: dict

    @property
    def name(self) -> str:
        return self.path.stem

    @property
    def seed(self) -> int:
        return self.values[""]["seed"]

    def __getitem__(self, section: str) -> dict:
        return self.values[section]

    def resolve(self, relative: str) -> Path:
        return (self.path.parent / relative).resolve()


def load_config(path) -> Config:
    """Read and check an experiment file; every mistake is a one-line NeuroError naming the key and the fix."""
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as e:
        raise NeuroError(f"cannot read experiment file {path}: {e.strerror}") from None
    config = Config(path, text, _validate(path, parse_toml(text, path)))
    given = [("model.path", config["model"]["path"])]
    given += [("baselines.recorded", r) for r in config["baselines"]["recorded"]]
    for key, rel in given:
        if not config.resolve(rel).is_file():
            raise NeuroError(f"{path}: {key} names {rel!r}, which does not exist (paths are relative to the TOML "
                             "file): fix the path")
    for name in config["emulation"]["chips"]:
        if name != FLOAT and name not in chips.available():
            raise NeuroError(f"{path}: key 'emulation.chips' names {name!r}, neither {FLOAT!r} nor a chip model: "
                             f"use {FLOAT!r} or one of: {', '.join(chips.available()) or 'none registered yet'}")
    return config


def parse_toml(text: str, path) -> dict:
    """TOML text as a dict (tomllib, or tomli on Python 3.10); bad syntax is a NeuroError naming ``path``."""
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        try:
            import tomli as tomllib
        except ModuleNotFoundError:
            raise NeuroError("reading experiment files needs Python 3.11, or on 3.10 the tomli package: "
                             "pip install tomli") from None
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise NeuroError(f"{path} is not valid TOML ({e}): fix the syntax") from None


def _validate(path: Path, raw: dict) -> dict:
    values = {}
    top = {k: v for k, v in raw.items() if not isinstance(v, dict)}
    tables = {k: v for k, v in raw.items() if isinstance(v, dict)}
    for section in tables.keys() - SCHEMA.keys():
        raise NeuroError(f"{path}: unknown table [{section}]: use {', '.join(f'[{s}]' for s in SCHEMA if s)}")
    for section, keys in SCHEMA.items():
        given = top if section == "" else tables.get(section, {})
        for key in given.keys() - keys.keys():
            where = f"[{section}]" if section else "the top level"
            raise NeuroError(f"{path}: unknown key {_key(section, key)!r}: keys allowed in {where} are "
                             f"{', '.join(keys)}")
        values[section] = {}
        for key, (kind, default, check) in keys.items():
            if key not in given:
                if default is REQUIRED:
                    raise NeuroError(f"{path}: missing key {_key(section, key)!r}: add it under [{section}]")
                values[section][key] = default
                continue
            value = given[key]
            if not _is(value, kind):
                raise NeuroError(f"{path}: key {_key(section, key)!r} must be {_describe(kind)}, got {value!r}")
            if check is not None and (err := check(value)):
                raise NeuroError(f"{path}: key {_key(section, key)!r} {err}, got {value!r}")
            values[section][key] = float(value) if kind is float else value
    return values


def _key(section: str, key: str) -> str:
    return f"{section}.{key}" if section else key


def _is(value, kind) -> bool:
    if kind is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if kind is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if kind in (str, bool):
        return isinstance(value, kind)
    item = kind.__args__[0]
    return isinstance(value, list) and all(_is(v, item) for v in value)


def _describe(kind) -> str:
    names = {int: "an integer", float: "a number", str: "a string", bool: "true or false"}
    return names[kind] if kind in names else f"a list of {names[kind.__args__[0]].split(' ', 1)[1]}s"


# --- the run --------------------------------------------------------------------------------------------

def run_experiment(config_path, out_dir, resume: bool = False, progress: bool = True) -> Path:
    """Run the experiment in ``config_path``; returns the results file ``out_dir/<name>.h5``."""
    config = load_config(config_path)
    out = Path(out_dir) / f"{config.name}.h5"
    done = set()
    if out.exists():
        if not resume:
            raise NeuroError(f"{out} already exists: resume it (--resume) or write into another folder")
        done = results.parts(out)
        if "meta" in done and _validate(out, parse_toml(results.read_config(out), out)) != config.values:
            raise NeuroError(f"{config.path} differs from the config stored in {out}: write into another folder, "
                             "or resume with the original config")
    say = (lambda msg: print(f"[{config.name}] {msg}", file=sys.stderr, flush=True)) if progress else (lambda m: None)
    seed = config.seed
    if "meta" not in done:
        results.add_part(out, "meta", lambda g: results.write_meta(g, config.name, config.text, seed,
                                                                  _system(), system.utc_now()))
    data = config["data"]
    images, labels = datasets.load(_dataset(config), split="test")
    images, labels = select_images(images, labels, data["images"], data["select"])
    if "conversion" in done:
        snn, ann_accuracy = results.read_snn(out), results.read(out).conversion["ann_accuracy"]
    else:
        say("converting the ANN")
        snn = _convert(config, seed)
        ann_accuracy = snn.ann.accuracy(images, labels)
        results.add_part(out, "conversion", lambda g: results.write_conversion(g, snn, ann_accuracy, len(images)))
    target = EqualAccuracy(ann_accuracy, config["report"]["tolerance"])
    for chip in config["emulation"]["chips"]:
        if f"chips/{chip}" not in done:
            say(f"emulating on {chip}")
            run = _emulate(chip, snn, images, labels, config["emulation"], seed, progress, target)
            results.add_part(out, f"chips/{chip}", lambda g: results.write_chip(g, run))
    if "baselines" not in done:
        say("measuring the baselines")
        runs = _baselines(config, images, f"{data['dataset']} test split, {len(images)} images ({data['select']})")
        results.add_part(out, "baselines", lambda g: results.write_baselines(g, runs))
    say(f"wrote {out}")
    return out


def select_images(images, labels, n: int, how: str = "first"):
    """The first ``n`` images, or (``how="spread"``) ``n`` spread evenly over the split, every (len / n)-th one:
    class-balanced on a split stored class by class, as the CIFAR-10 JPEG copy's (docs/datasets.md)."""
    n = min(n, len(images))
    idx = slice(0, n) if how == "first" else (np.arange(n) * len(images)) // n
    return images[idx], labels[idx]


def _system() -> dict:
    """The machine and the versions of every library that shapes the numbers."""
    info = system.describe()
    for pkg in ("numba", "h5py", "matplotlib"):
        info["versions"][pkg] = metadata.version(pkg)
    return info


def _dataset(config: Config) -> str:
    """The data spec, an ``imagefolder:PATH`` taken relative to the TOML file like every path in it."""
    spec = config["data"]["dataset"]
    if spec.startswith(datasets.IMAGEFOLDER):
        return datasets.IMAGEFOLDER + str(config.resolve(spec[len(datasets.IMAGEFOLDER):]))
    return spec


def _convert(config: Config, seed: int):
    from neuro import ann
    from neuro.convert import convert

    c = config["conversion"]
    net = ann.load_model(config.resolve(config["model"]["path"]))
    train, _ = datasets.load(_dataset(config), split="train")
    rng = np.random.default_rng(seed)
    calib = train[np.sort(rng.choice(len(train), min(c["calibration"], len(train)), replace=False))]
    snn = convert(net, calib, percentile=c["percentile"], reset=c["reset"], leak=c["leak"], v_init=c["v_init"],
                  readout=c["readout"], pool_neurons=c["pool_neurons"])
    snn.info["model_file"] = config["model"]["path"]
    return snn


@dataclass(frozen=True)
class EqualAccuracy:
    """The ANN's accuracy on the emulated images and the tolerance (percentage points) that counts as equal."""

    ann_accuracy: float
    tolerance_points: float

    def first_step(self, accuracy_by_step) -> int | None:
        """First step (1-based) whose accuracy is within the tolerance of the ANN's, or None if none is."""
        slack = 1e-9  # accuracies are multiples of 1 / images: do not let rounding decide
        hit = np.nonzero(np.asarray(accuracy_by_step) >= self.ann_accuracy - self.tolerance_points / 100 - slack)[0]
        return int(hit[0]) + 1 if hit.size else None


def _emulate(chip: str, snn, images, labels, emulation: dict, seed: int, progress: bool,
             target: EqualAccuracy) -> results.ChipRun:
    """The float SNN, or the SNN compiled by the chip model registered as ``chip`` (a program with
    ``.snn``, ``.backend()``, ``.cost(result, steps, coefficients)`` and ``.deviations``); cost: the modeled
    activity, and energy, frames/s and latency from the chip's cost model, at the configured T and at the
    first step of equal accuracy (with the activity up to that step)."""
    program = None if chip == FLOAT else chips.compile_for(chip, snn, emulation["encoding"])
    engine = Engine(program.snn, program.backend()) if program else Engine(snn)
    start = time.perf_counter()
    sim = engine.run(images, labels, emulation["timesteps"], encoding=emulation["encoding"], seed=seed,
                     batch_size=emulation["batch_size"], progress=progress)
    seconds = time.perf_counter() - start
    step = target.first_step(sim.accuracy_by_step)
    best = float(np.max(sim.accuracy_by_step))
    within = f"within {target.tolerance_points:g} points of the ANN's {100 * target.ann_accuracy:.2f} %"
    cost = {"equal_accuracy_step": Value(step, "steps", results.MODELED,
                                         f"first step {within}" if step else
                                         f"does not reach the ANN's accuracy within {sim.timesteps} steps "
                                         f"({within}); best {100 * best:.2f} %")}
    cost.update(_activity(sim, f"counted by the emulator over {sim.timesteps} steps"))
    if step:
        cost.update(_activity(sim.until(step), f"counted by the emulator over the first {step} steps",
                              "_at_equal_accuracy"))
    if program is None:
        cost["energy_per_image"] = Value(None, "J/image", results.NOT_MODELED,
                                         "float SNN: no chip, so no energy coefficients")
        return results.chip_run(chip, sim, seconds, {}, cost, [])
    coefficients = emulation["coefficients"] or None
    c = program.cost(sim, sim.timesteps, coefficients)
    cost.update(_chip_cost(c, f"{type(program).__module__} cost model, {c.coefficients} coefficients, "
                              f"{sim.timesteps} steps per inference (the configured T)"))
    if step:
        cost.update(_chip_cost(program.cost(sim.until(step), step, coefficients),
                               f"{type(program).__module__} cost model, {c.coefficients} coefficients, {step} "
                               f"steps per inference (equal accuracy)", "_at_equal_accuracy"))
    info = {"name": c.coefficients, "cores": c.cores, "chips": c.chips,
            "assumptions": list(getattr(c, "assumptions", [])), "calibration": getattr(c, "calibration", "")}
    return results.chip_run(chip, sim, seconds, info, cost, program.deviations)


def _activity(sim, how: str, suffix: str = "") -> dict[str, Value]:
    return {f"synops_per_image{suffix}": Value(sim.per_image("synops"), "synaptic events/image", results.MODELED, how),
            f"spikes_per_image{suffix}": Value(sim.per_image("spikes"), "spikes/image", results.MODELED, how)}


def _chip_cost(c, how: str, suffix: str = "") -> dict[str, Value]:
    """A chip cost result as Values with their low-high ranges (``c.ranges``, where the chip gives them), and the
    same cost under the chip's alternative assumptions (``c.variants``: label -> energy, frames/s, latency) as
    ``key@label``."""
    ranges = getattr(c, "ranges", {})
    if getattr(c, "calibration", ""):
        how += f"; {c.calibration}"

    def value(attr: str, unit: str) -> Value:
        low, high = ranges.get(attr, (None, None))
        return Value(float(getattr(c, attr)), unit, results.MODELED, how, low, high)

    out = {f"energy_per_image{suffix}": value("energy_per_inference_j", "J/image"),
           f"frames_per_second{suffix}": value("frames_per_second", "frames/s"),
           f"latency{suffix}": value("latency_s", "s")}
    for label, v in getattr(c, "variants", {}).items():  # the same cost under another assumption, as a point
        note = f"{how}; under another assumption: {label}"
        out.update({f"energy_per_image{suffix}@{label}": Value(v["energy_per_inference_j"], "J/image",
                                                               results.MODELED, note),
                    f"frames_per_second{suffix}@{label}": Value(v["frames_per_second"], "frames/s",
                                                                results.MODELED, note),
                    f"latency{suffix}@{label}": Value(v["latency_s"], "s", results.MODELED, note)})
    return out


def _baselines(config: Config, images, inputs: str) -> list[results.BaselineRun]:
    b = config["baselines"]
    runs = []
    if b["platforms"]:
        settings = Settings(tuple(b["batches"]), b["window_s"], b["warmup_s"], b["idle_s"], b["threads"] or None)
        measured = measure(config.resolve(config["model"]["path"]), images, settings, tuple(b["platforms"]), inputs)
        runs.append(results.BaselineRun("measured", "", measured))
    for rel in b["recorded"]:
        runs.append(results.BaselineRun("recorded", rel, read_json(config.resolve(rel))))
    return runs


# --- command line ---------------------------------------------------------------------------------------

def add_parser(subparsers) -> None:
    """The ``neuro run`` subcommand."""
    p = subparsers.add_parser("run", help="run an experiment (TOML): conversion, emulation, baselines -> HDF5",
                              description="Run an experiment file and write one HDF5 results file into a folder.")
    p.add_argument("config", help="experiment file, e.g. experiments/mnist.toml")
    p.add_argument("-o", "--output", required=True, help="folder for the results file <config name>.h5")
    p.add_argument("--resume", action="store_true", help="finish an interrupted run: skip the parts already written")
    p.add_argument("--no-progress", action="store_true", help="no progress messages or bars")


def cmd_run(args) -> None:
    path = run_experiment(args.config, args.output, resume=args.resume, progress=not args.no_progress)
    print(f"wrote {path}")
